/* Base64 (RFC 4648): the encoder of the upload builders and the check of baseFile.
 *
 * core.base64(bytes) -> text: standard Base64, padded, on one line (what baseFile wants),
 * core.base64_file(f, max) -> text | nil, why: the same of an open file, read a chunk at a time
 * (the file's bytes are never held whole: only the text is),
 * through OpenSSL's EVP_EncodeBlock. The input goes in bounded chunks (a multiple of
 * 3 bytes, so only the last chunk pads) into an output buffer a userdata owns: a raise at any
 * point (out of memory) leaks nothing, and the output is sized once, never rebuilt. */
/***
 * @submodule itnio.core
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <lualib.h>   /* LUA_FILEHANDLE (5.1, LuaJIT; lauxlib.h has it from 5.2) */

#include "itnio.h"

#define CHUNK (48 * 1024)   /* input bytes per EVP_EncodeBlock call; a multiple of 3 */
/* A file is read FILE_CHUNK bytes at a time into a buffer on the C stack, kept small for a
 * host's thread whose stack is small. */
#define FILE_CHUNK (12 * 1024)

_Static_assert(CHUNK % 3 == 0, "CHUNK must be whole groups of 3 bytes");
_Static_assert(FILE_CHUNK % 3 == 0, "FILE_CHUNK must be whole groups of 3 bytes");

/*** Standard padded Base64 (RFC 4648) of some bytes, on one line.
 * @function base64
 * @tparam string bytes the bytes (a file's contents)
 * @treturn string their Base64 text */
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

/* The FILE of a Lua file handle (io.open's): Lua 5.2+ keep it in a luaL_Stream; 5.1 and
 * LuaJIT in a userdata whose first field it is. A closed handle raises. */
static FILE *check_file(lua_State *L, int idx) {
#if LUA_VERSION_NUM >= 502
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (p->closef == NULL || p->f == NULL) luaL_argerror(L, idx, "the file is closed");
  return p->f;
#else
  FILE **p = (FILE **)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (*p == NULL) luaL_argerror(L, idx, "the file is closed");
  return *p;
#endif
}

static int file_fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/*** Standard padded Base64 (RFC 4648) of what is left of an open file, on one line, read a
 * chunk at a time: the file's bytes are never held whole, only the text. Reading stops one
 * byte past max. The file stays open (its owner closes it).
 * @function base64_file
 * @tparam file f a file open for reading (`io.open(path, "rb")`)
 * @tparam number max the most bytes it may have
 * @treturn string its Base64 text
 * @return[2] nil
 * @treturn[2] string why: `"too large"`, or the system's reason it could not be read */
int itnio_base64_file(lua_State *L) {
  FILE *f = check_file(L, 1);
  lua_Number maxn = luaL_checknumber(L, 2);
  unsigned char in[FILE_CHUNK];
  size_t max, total = 0, have = 0, hint = 0;
  struct stat st;
  itnio_buf *b;
  if (!(maxn >= 0)) return luaL_argerror(L, 2, "max must be a number of bytes, 0 or more");
  max = maxn >= (lua_Number)(((size_t)-1) / 4) ? ((size_t)-1) / 4 : (size_t)maxn;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= max)
    hint = (size_t)st.st_size;   /* (a pipe or a device says nothing: the buffer grows) */
  b = itnio_buf_new(L, (hint / 3 + 1) * 4 + 1);
  clearerr(f);
  for (;;) {
    size_t n = fread(in + have, 1, sizeof in - have, f), whole;
    int w;
    total += n;
    if (total > max) return file_fail(L, "too large");
    have += n;
    if (n == 0) {
      if (ferror(f)) return file_fail(L, strerror(errno ? errno : EIO));
      break;
    }
    whole = have / 3 * 3;   /* only whole groups of 3 now: the last one pads, at the end */
    if (whole == 0) continue;
    itnio_buf_reserve(L, b, whole / 3 * 4 + 1);
    w = EVP_EncodeBlock((unsigned char *)b->p + b->len, in, (int)whole);
    if (w < 0 || (size_t)w != whole / 3 * 4)
      return luaL_error(L, "itnio.core.base64_file: OpenSSL's encoder failed");
    b->len += (size_t)w;
    memmove(in, in + whole, have - whole);
    have -= whole;
  }
  if (have) {
    int w;
    itnio_buf_reserve(L, b, 5);
    w = EVP_EncodeBlock((unsigned char *)b->p + b->len, in, (int)have);
    if (w != 4) return luaL_error(L, "itnio.core.base64_file: OpenSSL's encoder failed");
    b->len += 4;
  }
  itnio_buf_pushresult(L, b);
  return 1;
}

/* RFC 4648 section 4 alphabet; '=' only as one or two final pad characters. */
static const unsigned char b64[256] = {
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
  ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
  ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
  ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
  ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
  ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
  ['y'] = 1, ['z'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
  ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
};

const char *itnio_base64_problem(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i, body = n;
  if (n && s[n - 1] == '=') body--;
  if (n > 1 && body < n && s[n - 2] == '=') body--;
  for (i = 0; i < body; i++) {
    if (b64[s[i]]) continue;
    if (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t')
      return "it contains white space or line breaks (send Base64 on one line)";
    if (s[i] == '-' || s[i] == '_')
      return "it uses the URL-safe alphabet ('-', '_'); use RFC 4648 standard Base64 ('+', '/')";
    if (s[i] == '=') return "'=' may appear only as padding at the end";
    return "it contains a character outside the Base64 alphabet";
  }
  if (n % 4) return "its length is not a multiple of 4 (Base64 must be padded with '=')";
  return NULL;
}
