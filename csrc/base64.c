/* core.base64(bytes) -> text: RFC 4648 standard Base64, padded, on one line (what baseFile
 * wants), through OpenSSL's EVP_EncodeBlock. The input goes in bounded chunks (a multiple of
 * 3 bytes, so only the last chunk pads) into an output buffer a userdata owns: a raise at any
 * point (out of memory) leaks nothing, and the output is sized once, never rebuilt. */
/***
 * @submodule itnio.core
 */
#include <openssl/evp.h>

#include "itnio.h"

#define CHUNK (48 * 1024)   /* input bytes per EVP_EncodeBlock call; a multiple of 3 */

_Static_assert(CHUNK % 3 == 0, "CHUNK must be whole groups of 3 bytes");

/*** Standard padded Base64 (RFC 4648) of some bytes, on one line.
 * @function base64
 * @tparam string bytes
 * @treturn string */
int itnio_base64(lua_State *L) {
  size_t n, out, off;
  const char *s;
  itnio_buf *b;
  luaL_checktype(L, 1, LUA_TSTRING);   /* no number coercion: bytes are a string */
  s = lua_tolstring(L, 1, &n);
  if (n > (((size_t)-1) / 4 - 1) * 3) return luaL_error(L, "itnio.core.base64: input too large");
  out = (n / 3 + (n % 3 != 0)) * 4;
  b = itnio_buf_new(L, out + 1);       /* + 1: EVP_EncodeBlock writes a NUL after each block */
  for (off = 0; off < n; off += CHUNK) {
    size_t len = n - off < CHUNK ? n - off : CHUNK;
    int w = EVP_EncodeBlock((unsigned char *)b->p + b->len, (const unsigned char *)s + off, (int)len);
    if (w < 0 || (size_t)w != (len / 3 + (len % 3 != 0)) * 4)
      return luaL_error(L, "itnio.core.base64: OpenSSL's encoder failed");
    b->len += (size_t)w;
  }
  itnio_buf_pushresult(L, b);
  return 1;
}
