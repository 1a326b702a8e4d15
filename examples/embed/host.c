/* A C host that embeds Lua 5.4 with lua-itnio linked in (build/libitnio.a, `make static`).
 *
 *   host                             one update; prints the result
 *   host --threads N --updates M     N threads at once, each with its own lua_State and its own
 *                                    client, each updating M tasks: one Lua state per call, as
 *                                    an IVR engine runs them
 *
 * The server: ITNIO_BASE_URL, ITNIO_API_KEY, ITNIO_API_SECRET; ITNIO_CAFILE (a CA file for
 * HTTPS) and ITNIO_KEY_ID (the task, 299) if needed. Exits 0 only if every update succeeded.
 *
 *   make static
 *   cc -pthread -Icsrc $(pkg-config --cflags lua5.4) examples/embed/host.c build/libitnio.a \
 *      -llua5.4 -lcurl -lcrypto -o host
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "itnio_embed.h"

/* What each state runs, with (updates, worker number): returns the last result as a line. */
static const char UPDATE_TASKS[] =
  "local updates, worker = ...\n"
  "local itnio = require 'itnio'\n"
  "local client = assert(itnio.new{\n"
  "  api_key = os.getenv 'ITNIO_API_KEY', api_secret = os.getenv 'ITNIO_API_SECRET',\n"
  "  base_url = os.getenv 'ITNIO_BASE_URL', cafile = os.getenv 'ITNIO_CAFILE',\n"
  "})\n"
  "local res, err\n"
  "for i = 1, updates do\n"
  "  res, err = client:recall_update{\n"
  "    keyId = tonumber(os.getenv 'ITNIO_KEY_ID' or '299'),\n"
  "    recallType = 0, recallInterval = 30, recallNum = 1,\n"
  "    nodeList = { { source = 1, voiceFileId = ('call-%d-%d.wav'):format(worker, i),\n"
  "                   hangUpSms = 0, toSeat = 0 } },\n"
  "  }\n"
  "  if not res then error(tostring(err), 0) end\n"
  "end\n"
  "client:close()\n"
  "return ('updated: code %d (%s) after %d attempt(s), HTTP %d')\n"
  "  :format(res.code, res.message, res.attempts, res.http_status)\n";

typedef struct worker {
  pthread_t thread;
  int       number, updates;
  int       host_owns_curl;   /* main called curl_global_init: the core must not */
  int       ok;
  char      message[512];     /* the last result, or what went wrong */
} worker;

/* The state's setup, in protected mode: a raise (out of memory) is an error, not a panic. */
static int setup(lua_State *L) {
  worker *w = (worker *)lua_touserdata(L, 1);
  luaL_openlibs(L);
  itnio_preload(L);                           /* require "itnio" needs no file on disk */
  if (w->host_owns_curl) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "itnio.no_curl_global_init");
  }
  return 0;
}

static void *run_worker(void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = luaL_newstate();
  int rc;
  if (L == NULL) {
    snprintf(w->message, sizeof w->message, "cannot create a Lua state");
    return NULL;
  }
  lua_pushcfunction(L, setup);
  lua_pushlightuserdata(L, w);
  rc = lua_pcall(L, 1, 0, 0);
  if (rc == LUA_OK) rc = luaL_loadbufferx(L, UPDATE_TASKS, sizeof UPDATE_TASKS - 1, "=host", "t");
  if (rc == LUA_OK) {
    lua_pushinteger(L, w->updates);
    lua_pushinteger(L, w->number);
    rc = lua_pcall(L, 2, 1, 0);
  }
  /* What came back, as tostring shows it: the result line, or the error (an itnio error is a
   * table whose __tostring is one line; luaL_tolstring calls it). */
  snprintf(w->message, sizeof w->message, "%s", luaL_tolstring(L, -1, NULL));
  w->ok = rc == LUA_OK;
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = 0, updates = 1, i, failed = 0;
  worker *workers;

  for (i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--updates") == 0) updates = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--threads N] [--updates M]\n", argv[0]);
      return 2;
    }
  }
  if (updates < 1) updates = 1;

  if (threads < 1) {                          /* one state; the core calls curl_global_init */
    worker w = { .number = 1, .updates = updates };
    run_worker(&w);
    fprintf(w.ok ? stdout : stderr, "%s\n", w.message);
    return w.ok ? 0 : 1;
  }

  /* curl_global_init is not thread-safe: once, here, before any thread starts. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "curl_global_init failed\n");
    return 1;
  }
  workers = calloc((size_t)threads, sizeof *workers);
  if (workers == NULL) return 1;
  for (i = 0; i < threads; i++) {
    workers[i].number = i + 1;
    workers[i].updates = updates;
    workers[i].host_owns_curl = 1;
    if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
      fprintf(stderr, "cannot start thread %d\n", i + 1);
      threads = i;                            /* join the ones that started */
      failed++;
      break;
    }
  }
  for (i = 0; i < threads; i++) {
    pthread_join(workers[i].thread, NULL);
    if (!workers[i].ok) {
      fprintf(stderr, "thread %d: %s\n", workers[i].number, workers[i].message);
      failed++;
    }
  }
  if (failed == 0)
    printf("%d threads x %d updates: all succeeded\n", threads, updates);
  free(workers);
  curl_global_cleanup();
  return failed == 0 ? 0 : 1;
}
