/* itnio.cli.signals: SIGINT and SIGTERM for the command line (itnio --batch), as a request to
 * stop. Part of the command line, not of the client: a library must not take its host's
 * signals (nginx, a game engine). Debian 12's luaposix, the library made for this, has no
 * build for Lua 5.4, and its signal() tells neither an inherited SIG_IGN nor SIG_DFL (it
 * hands back a wrapper function for both), so the command line keeps these few lines.
 *
 *   local signals = require "itnio.cli.signals"
 *   signals.catch()     -> the signals it now catches ("INT", "TERM"): one ignored on entry
 *                          (a program started with & from a script, nohup) stays ignored,
 *                          as the shells and GNU tools leave it
 *   signals.caught()    -> "INT", "TERM" or nil: the first one that came
 *
 * A second signal, after the first, takes its own way out at once (the default action), so
 * the shell sees the program end by it. Waits on the client's sockets return early when one
 * comes (no SA_RESTART). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>

__attribute__((visibility("default"))) int luaopen_itnio_cli_signals(lua_State *L);

static volatile sig_atomic_t caught_signal;   /* the first SIGINT or SIGTERM, or 0 */

static void on_signal(int sig) {
  if (caught_signal) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  caught_signal = sig;
}

/* Catches sig unless it was ignored on entry: 1 if it now catches it, 0 if it leaves it be. */
static int catch_one(lua_State *L, int sig) {
  struct sigaction sa, old;
  if (sigaction(sig, NULL, &old) != 0) return luaL_error(L, "itnio: cannot read the action of signal %d", sig);
  if (old.sa_handler == SIG_IGN) return 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   /* no SA_RESTART: a wait on the sockets returns, and the loop looks */
  if (sigaction(sig, &sa, NULL) != 0) return luaL_error(L, "itnio: cannot catch signal %d", sig);
  return 1;
}

static int l_catch(lua_State *L) {
  int n = 0;
  if (catch_one(L, SIGINT)) { lua_pushliteral(L, "INT"); n++; }
  if (catch_one(L, SIGTERM)) { lua_pushliteral(L, "TERM"); n++; }
  return n;
}

static int l_caught(lua_State *L) {
  int sig = caught_signal;
  if (sig == SIGINT) lua_pushliteral(L, "INT");
  else if (sig == SIGTERM) lua_pushliteral(L, "TERM");
  else lua_pushnil(L);
  return 1;
}

__attribute__((visibility("default"))) int luaopen_itnio_cli_signals(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_catch);
  lua_setfield(L, -2, "catch");
  lua_pushcfunction(L, l_caught);
  lua_setfield(L, -2, "caught");
  return 1;
}
