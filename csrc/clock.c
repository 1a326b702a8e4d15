/* Clocks and a sleep: for the Lua layer's retry loop outside nginx (inside nginx it uses
 * ngx.now and ngx.sleep, which do not block the worker), and the multi handle's timer. */
/***
 * @submodule itnio.core
 */
#include <errno.h>
#include <time.h>

#include "itnio.h"

double itnio_mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*** Seconds on a monotonic clock, for durations and deadlines.
 * @function now
 * @treturn number */
int itnio_clock_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)itnio_mono_now());
  return 1;
}

/*** Unix time in seconds, with a fraction (the Timestamp header).
 * @function time
 * @treturn number */
int itnio_clock_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/*** Blocks the thread for some seconds (outside nginx only: it would stall a worker).
 * @function sleep
 * @tparam number seconds 0 to 86400 */
int itnio_clock_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec req, rem;
  if (!(s >= 0 && s <= 86400)) return luaL_argerror(L, 1, "seconds must be from 0 to 86400");
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
  while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
  return 0;
}
