/* The growable buffers. itnio_buf: memory a Lua userdata owns, grown with the state's
 * allocator; it raises when memory is short and the collector frees it after a raise (the
 * encoder's body, Base64, joined header values). itnio_membuf: plain malloc, never raises,
 * for libcurl's callbacks (an answer's headers and body), freed by the transfer that owns it. */
#include <stdlib.h>

#include "itnio.h"

#define BUF_MT    "itnio.Buffer"
#define SPARE_KEY "itnio.spare_buffer"   /* the registry's field for the encoder's spare */

static void buf_free(itnio_buf *b) {
  if (b->p) b->alloc(b->ud, b->p, b->cap, 0);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int buf_gc(lua_State *L) {
  buf_free((itnio_buf *)lua_touserdata(L, 1));
  return 0;
}

itnio_buf *itnio_buf_new(lua_State *L, size_t hint) {
  /* The box first, with its __gc, then the memory: a raise at any later point frees it. */
  itnio_buf *b = (itnio_buf *)itnio_newuserdata(L, sizeof *b);
  b->p = NULL;
  b->len = b->cap = 0;
  b->alloc = lua_getallocf(L, &b->ud);
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (hint) itnio_buf_reserve(L, b, hint);
  return b;
}

void itnio_buf_reserve(lua_State *L, itnio_buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (b->cap - b->len >= extra) return;
  if (extra > ((size_t)-1) / 2 - b->len) luaL_error(L, "itnio: body too large");
  need = b->len + extra;
  cap = b->cap ? b->cap : 256;
  cap += cap / 2;                           /* 1.5x growth ...                        */
  if (cap < need) cap = need + need / 8 + 64; /* ... or one big string plus some slack  */
  p = (char *)b->alloc(b->ud, b->p, b->cap, cap);
  if (!p) luaL_error(L, "itnio: not enough memory for a body of %d bytes", (int)(need > 0x7fffffff ? 0x7fffffff : need));
  b->p = p;
  b->cap = cap;
}

void itnio_buf_pushresult(lua_State *L, itnio_buf *b) {
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  buf_free(b);
}

/* The encoder's spare buffer: the registry holds at most one, idle. A borrower takes it out
 * (so a nested encode, from a finalizer run by the collector mid-walk, gets a new one), and
 * gives it back when done; one that raises leaves its buffer to the collector. */
itnio_buf *itnio_buf_borrow(lua_State *L, size_t hint) {
  itnio_buf *b;
  lua_getfield(L, LUA_REGISTRYINDEX, SPARE_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return itnio_buf_new(L, hint);
  }
  b = (itnio_buf *)lua_touserdata(L, -1);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, SPARE_KEY);
  b->len = 0;
  if (hint) itnio_buf_reserve(L, b, hint);
  return b;
}

void itnio_buf_pushkeep(lua_State *L, itnio_buf *b, int idx) {
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  itnio_buf_giveback(L, b, idx);
}

void itnio_buf_giveback(lua_State *L, itnio_buf *b, int idx) {
  if (b->cap > ITNIO_KEEP_BUF) {
    buf_free(b);
    return;
  }
  b->len = 0;
  lua_pushvalue(L, idx);
  lua_setfield(L, LUA_REGISTRYINDEX, SPARE_KEY);
}

int itnio_membuf_add(itnio_membuf *m, const char *s, size_t n) {
  if (m->cap - m->len < n) {
    size_t cap = m->cap ? m->cap : 1024;
    char *p;
    while (cap - m->len < n) {
      if (cap > ((size_t)-1) / 2) return 0;
      cap *= 2;
    }
    p = (char *)realloc(m->p, cap);
    if (!p) return 0;
    m->p = p;
    m->cap = cap;
  }
  memcpy(m->p + m->len, s, n);
  m->len += n;
  return 1;
}

void itnio_membuf_free(itnio_membuf *m) {
  free(m->p);
  m->p = NULL;
  m->len = m->cap = 0;
}
