/***
 * The C core of lua-itnio: checks a task against every rule while writing its body, signs a
 * request, and moves it over libcurl. The module `itnio` is built on it; use the core
 * directly for a dry check (`encode_recall_update`) or your own transport. Programming
 * errors (a wrong argument type) raise; bad data comes back as `nil, errs`.
 * @module itnio.core
 */

/*** The version of lua-itnio (the one place it is written).
 * @field _VERSION */

/*** The most broken rules one `encode_recall_update` reports (100).
 * @field MAX_ERRORS */

/* luaopen_itnio_core: registers the core's functions, nothing else. */
#include "itnio.h"

static const luaL_Reg core_funcs[] = {
  { "sign",                 itnio_sign },
  { "consteq",              itnio_consteq },
  { "encode_recall_update", itnio_encode_recall_update },
  { "now",                  itnio_clock_now },
  { "time",                 itnio_clock_time },
  { "sleep",                itnio_clock_sleep },
  { "base64",               itnio_base64 },
  { NULL, NULL }
};

__attribute__((visibility("default"))) int luaopen_itnio_core(lua_State *L) {
  const char *bad = itnio_schema_problem();
  if (bad) return luaL_error(L, "itnio: schema row %s has a condition on a row after it", bad);
  itnio_newlibtable(L, core_funcs);
  itnio_setfuncs(L, core_funcs);
  lua_pushliteral(L, ITNIO_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushinteger(L, ITNIO_MAX_ERRORS);
  lua_setfield(L, -2, "MAX_ERRORS");
  itnio_http_open(L);
  itnio_multi_open(L);
  return 1;
}
