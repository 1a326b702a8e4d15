/* itnio_preload (csrc/itnio_embed.h): the core and the Lua layer into package.preload.
 * Only in build/libitnio.a, never in the module (which exports luaopen_itnio_core alone). */
#include <lauxlib.h>
#include "itnio_embed.h"
#include "itnio_chunks.h"

int luaopen_itnio_core(lua_State *L);

/* The loader require calls for one Lua module: compiles its source and runs it with
 * require's arguments (name, ":preload:"), as the file searcher would. */
static int load_chunk(lua_State *L) {
  const itnio_chunk *c = (const itnio_chunk *)lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbufferx(L, c->source, c->len, c->chunkname, "t") != LUA_OK)
    return lua_error(L);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

__attribute__((visibility("default"))) void itnio_preload(lua_State *L) {
  const itnio_chunk *c;
  luaL_checkversion(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);   /* package.preload */
  lua_pushcfunction(L, luaopen_itnio_core);
  lua_setfield(L, -2, "itnio.core");
  for (c = itnio_chunks; c->module != NULL; c++) {
    lua_pushlightuserdata(L, (void *)c);
    lua_pushcclosure(L, load_chunk, 1);
    lua_setfield(L, -2, c->module);
  }
  lua_pop(L, 1);
}
