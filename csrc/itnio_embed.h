/* lua-itnio in a C host: the module linked in (build/libitnio.a, `make static`), for Lua 5.4.
 *
 *   lua_State *L = luaL_newstate();
 *   luaL_openlibs(L);
 *   itnio_preload(L);                  // now require "itnio" needs no file on disk
 *
 * Link with: build/libitnio.a -llua5.4 -lcurl -lcrypto. The Lua layer needs lua-cjson
 * (require "cjson.safe") from the host's package.cpath, as it does as a module.
 *
 * itnio_preload puts itnio.core and every module of the Lua layer into package.preload; it
 * loads nothing yet. It only calls the Lua API, so if it raises (out of memory) nothing leaks.
 * The core calls curl_global_init when it is first required in a state, unless the registry
 * holds a true "itnio.no_curl_global_init" then: a host with threads calls curl_global_init
 * itself, once, before they start, and sets that field in each state (examples/embed/host.c). */
#ifndef ITNIO_EMBED_H
#define ITNIO_EMBED_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

void itnio_preload(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
