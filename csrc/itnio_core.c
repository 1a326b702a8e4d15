/***
 * The C core of lua-itnio: checks a request's body against every rule of its endpoint while
 * writing it, signs a request, and moves it over libcurl. The module `itnio` is built on it;
 * use the core directly for a dry check (`encode`) or a transport of your own. Programming
 * errors (a wrong argument type) raise; bad data comes back as `nil, errs`.
 * @module itnio.core
 */

/*** The version of lua-itnio (the one place it is written: csrc/itnio.h).
 * @field _VERSION the version, as "major.minor.patch" */

/*** The most broken rules one `encode` reports.
 * @field MAX_ERRORS 100 */

/*** How many transfers a multi handle holds at once: a transfer's id is its generation times
 * this, plus its slot, plus one.
 * @field MULTI_SLOTS 2^20 */

/*** The event backend of the multi handle.
 * @field EVENTS `"epoll"` (Linux) or `"poll"` (elsewhere, or a build with EVENTS=poll) */

/* luaopen_itnio_core: the one place that registers the core's functions and the methods of
 * its classes (each file defines them; tools/check-doc reads the lists here). */
#include "itnio.h"

static const luaL_Reg core_funcs[] = {
  { "encode",               itnio_encode },
  { "endpoints",            itnio_endpoints_list },
  { "sign",                 itnio_sign },
  { "consteq",              itnio_consteq },
  { "sha1",                 itnio_sha1 },
  { "base64",               itnio_base64 },
  { "base64_file",          itnio_base64_file },
  { "http_new",             itnio_http_new },
  { "multi_new",            itnio_multi_new },
  { "redis_new",            itnio_redis_new },
  { "parse_headers",        itnio_parse_headers },
  { "plain_success",        itnio_plain_success_lua },
  { "curl_version",         itnio_curl_version },
  { "now",                  itnio_clock_now },
  { "time",                 itnio_clock_time },
  { "sleep",                itnio_clock_sleep },
  { NULL, NULL }
};

static const luaL_Reg http_methods[] = {
  { "perform", itnio_http_perform },
  { "close",   itnio_http_close },
  { NULL, NULL }
};

static const luaL_Reg redis_methods[] = {
  { "call",  itnio_redis_call },
  { "close", itnio_redis_close },
  { NULL, NULL }
};

static const luaL_Reg multi_methods[] = {
  { "add",       itnio_multi_add },
  { "add_task",  itnio_multi_add_task },
  { "perform",   itnio_multi_perform },
  { "next_done", itnio_multi_next_done },
  { "take",      itnio_multi_take },
  { "take_next", itnio_multi_take_next },
  { "redis",     itnio_multi_redis },
  { "cancel",    itnio_multi_cancel },
  { "wait",      itnio_multi_wait },
  { "count",     itnio_multi_count },
  { "fd",        itnio_multi_fd },
  { "timeout",   itnio_multi_timeout },
  { "close",     itnio_multi_close },
  { NULL, NULL }
};

/* Registers the metatable `name`: methods as __index, gc as __gc (and __close on 5.4, so a
 * to-be-closed variable frees it), tostring as __tostring. */
void itnio_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                 lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    int n = 0;
    while (methods[n].name) n++;
    lua_createtable(L, 0, n);
    itnio_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

__attribute__((visibility("default"))) int luaopen_itnio_core(lua_State *L) {
  const char *bad = itnio_schema_problem();
  if (bad) return luaL_error(L, "itnio: the schema row %s is malformed (see schema.c)", bad);
  itnio_xfer_global_init(L);
  itnio_class(L, ITNIO_HTTP_MT, http_methods, itnio_http_close, itnio_http_tostring);
  itnio_class(L, ITNIO_MULTI_MT, multi_methods, itnio_multi_close, itnio_multi_tostring);
  itnio_class(L, ITNIO_REDIS_MT, redis_methods, itnio_redis_gc, itnio_redis_tostring);
  itnio_newlibtable(L, core_funcs);
  itnio_setfuncs(L, core_funcs);
  lua_pushliteral(L, ITNIO_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushinteger(L, ITNIO_MAX_ERRORS);
  lua_setfield(L, -2, "MAX_ERRORS");
  lua_pushstring(L, itnio_events_backend);
  lua_setfield(L, -2, "EVENTS");
  lua_pushinteger(L, ITNIO_MULTI_SLOTS);
  lua_setfield(L, -2, "MULTI_SLOTS");
  return 1;
}
