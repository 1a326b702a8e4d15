/* What both libFuzzer targets share: a Lua 5.4 state with itnio.core preloaded, a driver
 * function written in Lua, and a call that aborts (a finding) when the driver raises. */
#ifndef ITNIO_FUZZ_HARNESS_H
#define ITNIO_FUZZ_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_itnio_core(lua_State *L);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A state whose registry["fuzz.driver"] is what the chunk `driver` returns. */
static lua_State *fuzz_state(const char *driver) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_itnio_core);
  lua_setfield(L, -2, "itnio.core");
  lua_pop(L, 2);
  if (luaL_loadstring(L, driver) || lua_pcall(L, 0, 1, 0)) {
    fprintf(stderr, "fuzz setup: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.driver");
  return L;
}

/* Pushes the driver; the caller pushes nargs arguments and calls fuzz_call. */
static void fuzz_driver(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.driver");
}

static void fuzz_call(lua_State *L, int nargs) {
  if (lua_pcall(L, nargs, 0, 0)) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_gc(L, LUA_GCSTEP, 0);
}

#endif
