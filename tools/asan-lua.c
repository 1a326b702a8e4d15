/* A minimal Lua 5.4 interpreter for `make asan`: `asan-lua [-e CHUNK] SCRIPT ARGS...` runs
 * CHUNK, then SCRIPT with arg set as lua.c sets it (`asan-lua -e CHUNK` alone runs CHUNK). It is linked with AddressSanitizer and UBSan, so the instrumented
 * core (build/asan/itnio/core.so) finds their runtime in the process itself; nothing is
 * preloaded, and the programs the specs start (nginx, openssl, sh) run uninstrumented, as
 * they would anywhere. */
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(an error that is not a string)", 1);
  return 1;
}

/* Runs the chunk on top of the stack (over the traceback at index 1) with nargs arguments. */
static int run(lua_State *L, int loaded, int nargs) {
  if (loaded != LUA_OK || lua_pcall(L, nargs, 0, 1) != LUA_OK) {
    fprintf(stderr, "asan-lua: %s\n", lua_tostring(L, -1));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, script = 1, bad;
  if (argc >= 3 && strcmp(argv[1], "-e") == 0) script = 3;
  if (argc < 2 || (script == 1 && argv[1][0] == '-')) {
    fprintf(stderr, "usage: asan-lua [-e CHUNK] SCRIPT [ARGS...]\n");
    return 2;
  }
  L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 1);   /* arg: [script] the script, [script+1..] its args, the rest below 0 */
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  bad = script == 3 && run(L, luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)"), 0);
  if (!bad && script < argc) {
    int loaded = luaL_loadfile(L, argv[script]);
    for (i = script + 1; loaded == LUA_OK && i < argc; i++) lua_pushstring(L, argv[i]);
    bad = run(L, loaded, loaded == LUA_OK ? argc - script - 1 : 0);
  }
  lua_close(L);
  return bad ? 1 : 0;
}
