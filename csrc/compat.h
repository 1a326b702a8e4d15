/* The few differences between Lua 5.1/LuaJIT and 5.4 that the core touches.
 * Shims carry private names so they never clash with what LuaJIT 2.1 exports. */
#ifndef ITNIO_COMPAT_H
#define ITNIO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#  define itnio_rawlen(L, i)           lua_rawlen((L), (i))
#  define itnio_setfuncs(L, l)         luaL_setfuncs((L), (l), 0)
#else
#  define itnio_rawlen(L, i)           lua_objlen((L), (i))
#  define itnio_setfuncs(L, l)         luaL_register((L), NULL, (l))
#endif

#if LUA_VERSION_NUM >= 504
#  define itnio_newuserdata(L, sz)     lua_newuserdatauv((L), (sz), 0)
#else
#  define itnio_newuserdata(L, sz)     lua_newuserdata((L), (sz))
#endif

/* A userdata with one Lua value of its own (a table): its user value, or 5.1's environment. */
#if LUA_VERSION_NUM >= 504
#  define itnio_newuserdata1(L, sz)    lua_newuserdatauv((L), (sz), 1)
#  define itnio_getuservalue(L, i)     ((void)lua_getiuservalue((L), (i), 1))
#  define itnio_setuservalue(L, i)     ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#  define itnio_newuserdata1(L, sz)    lua_newuserdata((L), (sz))
#  define itnio_getuservalue(L, i)     ((void)lua_getuservalue((L), (i)))
#  define itnio_setuservalue(L, i)     lua_setuservalue((L), (i))
#else
#  define itnio_newuserdata1(L, sz)    lua_newuserdata((L), (sz))
#  define itnio_getuservalue(L, i)     lua_getfenv((L), (i))
#  define itnio_setuservalue(L, i)     ((void)lua_setfenv((L), (i)))
#endif

#if LUA_VERSION_NUM >= 503
#  define itnio_isinteger(L, i)        lua_isinteger((L), (i))
#else
#  define itnio_isinteger(L, i)        0   /* every number is a double */
#endif

#if LUA_VERSION_NUM == 501
#  define itnio_newlibtable(L, l)      lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#else
#  define itnio_newlibtable(L, l)      luaL_newlibtable((L), (l))
#endif

#endif
