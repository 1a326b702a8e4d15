/* alloc_count: how many Lua allocations a call makes. A Lua 5.4 with a counting allocator runs
 * bench/allocs.lua, which calls the allocs() this program gives it before and after N
 * sequential calls and a batch of N tasks against the sandbox.
 *
 *   alloc_count SCRIPT ARGS...       (bench/run: alloc_count bench/allocs.lua URL KEY SECRET N)
 *
 * An allocation is the allocator asked for a new block, or for a larger one (a string, a
 * table, its array or hash part, a closure, a userdata...); frees and shrinks are not. */
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static unsigned long long count, bytes;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (ptr == NULL || nsize > osize) {
    count++;
    bytes += ptr == NULL ? nsize : nsize - osize;
  }
  return realloc(ptr, nsize);
}

/* allocs() -> allocations so far, bytes so far */
static int allocs(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)count);
  lua_pushinteger(L, (lua_Integer)bytes);
  return 2;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i;
  if (argc < 2) {
    fprintf(stderr, "usage: alloc_count SCRIPT ARGS...\n");
    return 2;
  }
  L = lua_newstate(counting_alloc, NULL);
  if (!L) return 1;
  luaL_openlibs(L);
  lua_register(L, "allocs", allocs);
  lua_createtable(L, argc, 0);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, argv[1]) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "alloc_count: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
