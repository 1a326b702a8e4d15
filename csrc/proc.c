/* The process, for a command line program (bin/itnio's campaigns): SIGINT and SIGTERM caught
 * as a request to stop, and whether a descriptor is a terminal. Nothing here runs unless the
 * program asks: a library must not take its host's signals (nginx, a game engine). */
/***
 * @submodule itnio.core
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <unistd.h>

#include "itnio.h"

static volatile sig_atomic_t caught_signal;   /* the first SIGINT or SIGTERM, or 0 */

/* The first signal asks to stop and is remembered; a second one (the user insists) takes
 * the signal's own way out at once: the default action, so the shell sees the signal. */
static void on_signal(int sig) {
  if (caught_signal) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  caught_signal = sig;
}

/*** Catches SIGINT and SIGTERM for a command line program: the first of them is only noted
 * (see `caught`); a second one ends the process at once, by that signal. Waits in the core
 * (`Multi:wait`) return early when one comes. Never call it from a library or inside nginx.
 * @function catch_signals
 * @treturn boolean true
 * @raise when the handlers cannot be installed */
int itnio_catch_signals(lua_State *L) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   /* no SA_RESTART: a wait on the sockets returns, and the loop looks */
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
    return luaL_error(L, "itnio: cannot catch SIGINT and SIGTERM");
  lua_pushboolean(L, 1);
  return 1;
}

/*** The signal `catch_signals` noted, if one came.
 * @function caught
 * @treturn string|nil `"INT"` or `"TERM"` */
int itnio_caught(lua_State *L) {
  int sig = caught_signal;
  if (sig == SIGINT) lua_pushliteral(L, "INT");
  else if (sig == SIGTERM) lua_pushliteral(L, "TERM");
  else lua_pushnil(L);
  return 1;
}

/*** Whether a descriptor is a terminal (2: standard error).
 * @function isatty
 * @tparam int fd the descriptor, 0 or more
 * @treturn boolean */
int itnio_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 65535, 1, "not a descriptor");
  lua_pushboolean(L, isatty((int)fd) == 1);
  return 1;
}
