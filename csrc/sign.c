/* The request signature: MD5(Api-Key .. secret .. Timestamp) as 32 lowercase hex digits
 * (the vendor's signing rule), through OpenSSL's EVP interface; and the SHA-1 that names a
 * Redis script. */
/***
 * @submodule itnio.core
 */
#include <math.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "itnio.h"

/* The timestamp argument as decimal text: a non-negative integer or a string of digits. */
static size_t timestamp_text(lua_State *L, int arg, char *out, size_t outsz) {
  if (lua_type(L, arg) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, arg, &n);
    if (n == 0 || n > 20 || n >= outsz) luaL_argerror(L, arg, "timestamp must be 1 to 20 decimal digits");
    for (size_t i = 0; i < n; i++)
      if (s[i] < '0' || s[i] > '9') luaL_argerror(L, arg, "timestamp must be decimal digits only");
    memcpy(out, s, n);
    return n;
  }
  if (lua_type(L, arg) == LUA_TNUMBER) {
    if (itnio_isinteger(L, arg)) {
      lua_Integer v = lua_tointeger(L, arg);
      if (v < 0 || v > (lua_Integer)ITNIO_SAFE_INT)
        luaL_argerror(L, arg, "timestamp must be whole seconds from 0 to 2^53-1");
      return (size_t)snprintf(out, outsz, "%lld", (long long)v);
    }
    {
      double d = (double)lua_tonumber(L, arg);
      if (!(d >= 0) || floor(d) != d || d > ITNIO_SAFE_INT)
        luaL_argerror(L, arg, "timestamp must be whole seconds from 0 to 2^53-1");
      return (size_t)snprintf(out, outsz, "%.0f", d);
    }
  }
  return (size_t)luaL_argerror(L, arg, "timestamp must be an integer or a string of digits");
}

static const char *check_string(lua_State *L, int arg, size_t *n) {
  luaL_checktype(L, arg, LUA_TSTRING);   /* no number coercion: a key is text */
  return lua_tolstring(L, arg, n);
}

/*** The request's Sign: the MD5 of the api_key, the secret and the timestamp, one after the
 * other, as 32 lowercase hex digits. In Lua: `MD5(api_key..secret..timestamp)`.
 * @function sign
 * @tparam string api_key the account's key
 * @tparam string secret the account's secret
 * @tparam int|string timestamp whole seconds since 1970, 0 to 2^53-1, or 1 to 20 decimal digits
 * @treturn string the digest
 * @raise on a wrong argument or if OpenSSL cannot hash */
/* core.sign(api_key, secret, timestamp) -> hex */
int itnio_sign(lua_State *L) {
  static const char hex[] = "0123456789abcdef";
  size_t kl, sl, tl;
  char ts[24], out[2 * EVP_MAX_MD_SIZE];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int ok;
  const char *key = check_string(L, 1, &kl);
  const char *secret = check_string(L, 2, &sl);
  EVP_MD_CTX *ctx;
  tl = timestamp_text(L, 3, ts, sizeof ts);
  /* From here to EVP_MD_CTX_free nothing may raise: the context is C memory. */
  ctx = EVP_MD_CTX_new();
  ok = ctx != NULL
    && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1
    && EVP_DigestUpdate(ctx, key, kl) == 1
    && EVP_DigestUpdate(ctx, secret, sl) == 1
    && EVP_DigestUpdate(ctx, ts, tl) == 1
    && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    unsigned long e = ERR_get_error();
    char msg[256];
    ERR_error_string_n(e, msg, sizeof msg);
    ERR_clear_error();
    return luaL_error(L, "itnio: MD5 failed (%s)", e ? msg : "no OpenSSL error");
  }
  for (unsigned int i = 0; i < mdlen; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  lua_pushlstring(L, out, 2 * (size_t)mdlen);
  return 1;
}

/*** The SHA-1 of a string, as 40 lowercase hex digits (what Redis names a script by:
 * the store's EVALSHA).
 * @function sha1
 * @tparam string s the bytes
 * @treturn string the digest
 * @raise when s is not a string, or if OpenSSL cannot hash */
int itnio_sha1(lua_State *L) {
  static const char hex[] = "0123456789abcdef";
  size_t n;
  const char *s = check_string(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char out[2 * EVP_MAX_MD_SIZE];
  if (EVP_Digest(s, n, md, &mdlen, EVP_sha1(), NULL) != 1) {
    ERR_clear_error();
    return luaL_error(L, "itnio: SHA-1 failed");
  }
  for (unsigned int i = 0; i < mdlen; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  lua_pushlstring(L, out, 2 * (size_t)mdlen);
  return 1;
}

/*** Compares two strings in constant time (for signatures).
 * @function consteq
 * @tparam string a one string
 * @tparam string b the other
 * @treturn boolean whether they are equal */
/* core.consteq(a, b) -> boolean: equality in time independent of where they differ. */
int itnio_consteq(lua_State *L) {
  size_t al, bl;
  const char *a = check_string(L, 1, &al);
  const char *b = check_string(L, 2, &bl);
  lua_pushboolean(L, al == bl && CRYPTO_memcmp(a, b, al) == 0);
  return 1;
}
