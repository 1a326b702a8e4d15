/* The Http class: a userdata "itnio.Http" that owns one libcurl easy handle, so consecutive
 * requests of one client ride one keep-alive connection. perform blocks until the answer
 * (the curl transport's send). Everything a transfer needs is in xfer.c.
 *
 * Memory: the userdata is made (zeroed, with __gc) before curl_easy_init, and owns every C
 * allocation after that (the handle, the header list of the request in flight, the answer's
 * buffers), so a Lua error at any point leaks nothing. */
/***
 * @submodule itnio.core
 */
#include "itnio.h"

/* The blocking handle: one transfer, performed in place. */
typedef struct itnio_http {
  itnio_xfer   x;
  itnio_membuf last_head;   /* the last plain success's header block (xfer.c, push_head) */
} itnio_http;

static itnio_http *check_http(lua_State *L) {
  itnio_http *h = (itnio_http *)luaL_checkudata(L, 1, ITNIO_HTTP_MT);
  if (!h->x.easy) luaL_error(L, "itnio: the HTTP handle is closed");
  return h;
}

/*** A blocking HTTP handle (the curl transport's): one libcurl easy handle, so
 * consecutive requests ride one kept-alive connection. It closes itself when collected.
 * @type Http */

/*** A blocking HTTP handle on one libcurl easy handle (keep-alive between calls).
 * @function http_new
 * @tparam table opts `cafile`, `capath`, `proxy` (a URL, or true for the environment's;
 * none when unset), `user_agent`, `max_body` (bytes), `insecure` (exactly true: TLS not verified)
 * @treturn Http */
int itnio_http_new(lua_State *L) {
  itnio_http *h;
  luaL_checktype(L, 1, LUA_TTABLE);
  h = (itnio_http *)itnio_newuserdata1(L, sizeof *h);
  memset(h, 0, sizeof *h);
  luaL_getmetatable(L, ITNIO_HTTP_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 1, 0);   /* [0]: the last plain success's header block, as a string */
  itnio_setuservalue(L, -2);
  itnio_xfer_configure(L, &h->x, 1);
  return 1;
}

/*** Sends one request and waits for its answer.
 * @function Http:perform
 * @tparam string method GET or POST
 * @tparam string url http or https
 * @tparam {string,...} header_lines "Name: value" each, no CR, LF or NUL
 * @tparam[opt] string body the request's body
 * @tparam[opt=10] number timeout seconds for the whole transfer
 * @tparam[opt=3] number connect_timeout seconds for the connect
 * @treturn table the answer, `{ status, headers, body, reused }` (headers with lower-case
 * names; reused: a kept-alive connection carried it); with the handle's `fast` option, a
 * plain success (HTTP 200, `code` 0, at most a plain `msg` and a null `data`) comes as
 * `{ plain = true, message, head, reused }` instead, head the raw header block
 * @return[2] nil
 * @treturn[2] table `{ reason, code, message, sent, answered }` when no answer came */
int itnio_http_perform(lua_State *L) {
  itnio_http *h = check_http(L);
  int plain;
  itnio_xfer_request(L, &h->x, 2, ITNIO_BODY_REF);   /* the argument lives through the call */
  return itnio_xfer_finish(L, &h->x, curl_easy_perform(h->x.easy), &h->last_head, 1, &plain);
}

/*** Frees the handle and its connection; safe to call twice (and what the collector does).
 * @function Http:close */
int itnio_http_close(lua_State *L) {
  itnio_http *h = (itnio_http *)luaL_checkudata(L, 1, ITNIO_HTTP_MT);
  itnio_xfer_release(&h->x);
  itnio_membuf_free(&h->last_head);
  return 0;
}

int itnio_http_tostring(lua_State *L) {
  itnio_http *h = (itnio_http *)luaL_checkudata(L, 1, ITNIO_HTTP_MT);
  lua_pushfstring(L, "itnio.Http (%s)", h->x.easy ? "open" : "closed");
  return 1;
}
