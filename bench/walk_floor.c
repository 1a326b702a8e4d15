/* walk_floor: the floor of any encoder that reads a Lua table through the Lua C API. A Lua
 * module whose value is one function, walk(t): it visits every key and value of t and of the
 * tables in it, as an encoder must (lua_next; the key's text; the value's type, then its
 * text or number), and writes nothing: no validation, no output. bench/build.lua times it
 * on the typical task, next to our encoder and C's snprintf of the same body, so that the
 * part of building a request that only reading the table costs is measured, not guessed.
 *
 * Built by bench/run for Lua 5.4 and LuaJIT: cc -O2 -shared -fPIC bench/walk_floor.c ...
 */
#include <lua.h>
#include <lauxlib.h>

static size_t visit(lua_State *L, int t) {
  size_t sum = 0, n;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING) { lua_tolstring(L, -2, &n); sum += n; }
    switch (lua_type(L, -1)) {
      case LUA_TSTRING: lua_tolstring(L, -1, &n); sum += n; break;
      case LUA_TNUMBER: sum += (size_t)(lua_tonumber(L, -1) != 0); break;
      case LUA_TTABLE: sum += visit(L, lua_gettop(L)); break;
      default: sum += 1; break;
    }
    lua_pop(L, 1);
  }
  return sum;
}

static int walk(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushinteger(L, (lua_Integer)visit(L, 1));
  return 1;
}

int luaopen_walk_floor(lua_State *L);
int luaopen_walk_floor(lua_State *L) {
  lua_pushcfunction(L, walk);
  return 1;
}
