/* The transfer layer every libcurl transfer shares, the easy handle's (http.c) and the multi
 * handle's (multi.c): the options of a client's handle, the callbacks that fill an answer's
 * bounded headers and body, one request's setup, and its outcome as Lua sees it (an answer,
 * or a failure with its reason). Also libcurl's global state and the header parser.
 *
 * libcurl's callbacks only append to buffers the transfer owns; they never call Lua and
 * never raise. */
/***
 * @submodule itnio.core
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <curl/curl.h>

#include "itnio.h"

#define RECV_BUFFER 4096   /* libcurl's receive buffer (its default is 16 KiB) */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  itnio_xfer *x = (itnio_xfer *)ud;
  size_t n = size * nmemb;
  if (x->body.len + n > x->max_body) { x->too_large = 1; return 0; }
  if (!itnio_membuf_add(&x->body, data, n)) { x->oom = 1; return 0; }
  return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  itnio_xfer *x = (itnio_xfer *)ud;
  size_t n = size * nmemb;
  /* A new status line (after 100 Continue, say): keep only the last answer's headers. */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) x->head.len = 0;
  if (x->head.len + n > ITNIO_MAX_HEAD) { x->head_too_large = 1; return 0; }
  if (!itnio_membuf_add(&x->head, data, n)) { x->oom = 1; return 0; }
  return n;
}

/* Frees everything the transfer owns; safe to call twice (__gc after :close()). */
void itnio_xfer_release(itnio_xfer *x) {
  free(x->url);
  x->url = NULL;
  itnio_membuf_free(&x->req);
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
  itnio_membuf_free(&x->body);
  itnio_membuf_free(&x->head);
}

/* Points the handle's callbacks and error buffer at x (again after curl_easy_duphandle). */
void itnio_xfer_bind(lua_State *L, itnio_xfer *x) {
  itnio_curl_ok(L, curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf), "ERRORBUFFER");
  itnio_curl_ok(L, curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body), "WRITEFUNCTION");
  itnio_curl_ok(L, curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, (void *)x), "WRITEDATA");
  itnio_curl_ok(L, curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header), "HEADERFUNCTION");
  itnio_curl_ok(L, curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, (void *)x), "HEADERDATA");
}

/* opts[name] as a string without CR or LF, or NULL when absent. Raises on a wrong type. */
static const char *opt_string(lua_State *L, int opts, const char *name) {
  const char *s;
  size_t n;
  lua_getfield(L, opts, name);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "itnio: option %s must be a string, got %s", name, luaL_typename(L, -1));
  s = lua_tolstring(L, -1, &n);
  if (strlen(s) != n || strpbrk(s, "\r\n"))
    luaL_error(L, "itnio: option %s must not contain NUL, CR or LF", name);
  lua_pop(L, 1);   /* the opts table keeps the string alive */
  return s;
}

int itnio_curl_ok(lua_State *L, CURLcode rc, const char *what) {
  if (rc != CURLE_OK) luaL_error(L, "itnio: libcurl refused %s (%s)", what, curl_easy_strerror(rc));
  return 1;
}

/* Makes x's easy handle and sets what stays the same for every request from the options
 * table at index opts: cafile, capath, proxy (a URL, or true: the environment's; none when
 * unset), user_agent, max_body (bytes), insecure
 * (verification stays on unless it is exactly true). x must already be owned by a userdata. */
void itnio_xfer_configure(lua_State *L, itnio_xfer *x, int opts) {
  const char *s;
  int insecure;
  CURL *e;
  x->max_body = ITNIO_MAX_BODY;
  x->easy = e = curl_easy_init();
  if (!e) luaL_error(L, "itnio: curl_easy_init failed");

  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR");
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https"), "REDIR_PROTOCOLS_STR");
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L), "FOLLOWLOCATION");
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L), "TCP_KEEPALIVE");
  /* libcurl allocates its receive buffer for each transfer and frees it after; at its default
   * 16 KiB, that malloc and free, next to a Lua heap, keeps moving glibc's heap top (trim,
   * grow, touch new pages) on every few requests. The API's answers are a few hundred bytes. */
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER), "BUFFERSIZE");
  itnio_xfer_bind(L, x);

  lua_getfield(L, opts, "insecure");
  insecure = lua_toboolean(L, -1) && lua_type(L, -1) == LUA_TBOOLEAN;
  lua_pop(L, 1);
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L), "SSL_VERIFYPEER");
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L), "SSL_VERIFYHOST");
  if ((s = opt_string(L, opts, "cafile")))     itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_CAINFO, s), "CAINFO");
  if ((s = opt_string(L, opts, "capath")))     itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_CAPATH, s), "CAPATH");
  /* A proxy only when asked: a URL, or true for the environment's (http_proxy, https_proxy,
   * all_proxy, no_proxy, as libcurl reads them). Unset, "" turns libcurl's own reading of the
   * environment off, so the key, the Sign and the body never go to a proxy nobody chose. */
  lua_getfield(L, opts, "proxy");
  if (lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    s = opt_string(L, opts, "proxy");
    itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_PROXY, s ? s : ""), "PROXY");
  }
  if ((s = opt_string(L, opts, "user_agent"))) itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_USERAGENT, s), "USERAGENT");

  lua_getfield(L, opts, "fast");
  x->fast = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, opts, "max_body");
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1024.0 * 1024 * 1024))
      luaL_error(L, "itnio: option max_body must be a number of bytes from 1 to 1 GiB");
    x->max_body = (size_t)n;
  }
  lua_pop(L, 1);
  itnio_curl_ok(L, curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_body), "MAXFILESIZE");
}

static const char *error_reason(CURLcode rc, const itnio_xfer *x) {
  if (x->head_too_large) return "protocol";
  if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) return "too_large";
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:   return "resolve";
    case CURLE_COULDNT_CONNECT:         return "connect";
    case CURLE_OPERATION_TIMEDOUT:      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:          return "tls";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:            return "reset";
    case CURLE_WEIRD_SERVER_REPLY:      return "protocol";
    case CURLE_OUT_OF_MEMORY:           return "memory";
    default:                            return "other";
  }
}

/* Pushes the last answer's headers as a table: lower-case names, repeated ones joined by
 * ", ". Linear in the block's size: repeats are gathered first and joined once, so 70,000
 * repeats of one name cost what one long header does (joining as they come was quadratic). */
void itnio_push_headers(lua_State *L, const char *block, size_t len) {
  const char *p = block, *end;
  int t, repeats = 0;
  lua_newtable(L);
  if (!block) return;
  t = lua_gettop(L);
  end = block + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon, *v, *ve;
    char name[64];
    size_t nl;
    if (!eol) eol = end;
    colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p && (size_t)(colon - p) < sizeof name) {
      nl = (size_t)(colon - p);
      for (size_t i = 0; i < nl; i++) {
        char c = p[i];
        name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
      }
      v = colon + 1;
      ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      lua_pushlstring(L, name, nl);
      lua_pushvalue(L, -1);
      lua_rawget(L, t);
      if (lua_isnil(L, -1)) {                 /* the first: the value itself */
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_rawset(L, t);
      } else if (lua_type(L, -1) == LUA_TSTRING) {   /* the second: both, in a list */
        lua_createtable(L, 4, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_rawseti(L, -2, 2);
        lua_rawset(L, t);
        repeats = 1;
      } else {                                /* more: appended to the list */
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_rawseti(L, -2, (int)itnio_rawlen(L, -2) + 1);
        lua_pop(L, 2);
      }
    }
    p = eol + 1;
  }
  if (!repeats) return;
  lua_pushnil(L);
  while (lua_next(L, t)) {                    /* join each list once, in a buffer we own */
    if (lua_type(L, -1) == LUA_TTABLE) {
      int list = lua_gettop(L);
      size_t i, n = (size_t)itnio_rawlen(L, list);
      itnio_buf *b = itnio_buf_new(L, 256);
      for (i = 1; i <= n; i++) {
        size_t l;
        const char *s;
        lua_rawgeti(L, list, (int)i);
        s = lua_tolstring(L, -1, &l);
        if (i > 1) itnio_buf_addlit(L, b, ", ");
        itnio_buf_addmem(L, b, s, l);
        lua_pop(L, 1);
      }
      lua_pushvalue(L, list - 1);
      itnio_buf_pushresult(L, b);
      lua_rawset(L, t);                       /* an existing key: allowed inside lua_next */
      lua_pop(L, 1);                          /* the buffer's userdata */
    }
    lua_pop(L, 1);
  }
}

static long seconds_to_ms(lua_State *L, int idx, const char *name, double dflt) {
  double s = luaL_optnumber(L, idx, dflt);
  if (!(s > 0 && s <= 86400)) luaL_error(L, "itnio: %s must be more than 0 and at most 86400 seconds", name);
  return (long)(s * 1000.0 + 0.5) > 0 ? (long)(s * 1000.0 + 0.5) : 1;
}

/* Reads one request from the arguments at a, a+1, ..., a+5: method, url, header lines
 * ("Name: value"), body, timeout, connect_timeout; checks them all, then sets them on x.
 * The body is read in place, never copied (see body_mode in itnio.h). */
void itnio_xfer_request(lua_State *L, itnio_xfer *x, int a, int body_mode) {
  const char *method = luaL_checkstring(L, a);
  size_t urllen, nh, blen = 0, i;
  const char *url = luaL_checklstring(L, a + 1, &urllen);
  const char *body = NULL;
  long timeout_ms, connect_ms;
  int is_post = 0, match;
  const struct curl_slist *old;
  CURL *e = x->easy;

  luaL_checktype(L, a + 2, LUA_TTABLE);
  if (body_mode == ITNIO_BODY_OWN) body = x->req.p ? x->req.p : "", blen = x->req.len;
  else if (!lua_isnoneornil(L, a + 3)) body = luaL_checklstring(L, a + 3, &blen);
  timeout_ms = seconds_to_ms(L, a + 4, "timeout", 10);
  connect_ms = seconds_to_ms(L, a + 5, "connect_timeout", 3);
  if (strcmp(method, "POST") == 0) is_post = 1;
  else if (strcmp(method, "GET") == 0) is_post = 0;
  else luaL_argerror(L, a, "method must be GET or POST");
  if (strlen(url) != urllen || strpbrk(url, "\r\n \t"))
    luaL_argerror(L, a + 1, "url must not contain white space, CR, LF or NUL");

  /* Check every header line first: nothing below may raise while the list is half built.
   * The lines change once a second (Timestamp, Sign): while they are the same as the last
   * request's, its list is kept, which spares libcurl a copy of every line. */
  nh = (size_t)itnio_rawlen(L, a + 2);
  old = x->hdrs;
  match = old != NULL;
  for (i = 1; i <= nh; i++) {
    size_t n;
    const char *line;
    lua_rawgeti(L, a + 2, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, a + 2, "header lines must be strings");
    line = lua_tolstring(L, -1, &n);
    if (strlen(line) != n || strpbrk(line, "\r\n") || !strchr(line, ':'))
      luaL_argerror(L, a + 2, "a header line must be 'Name: value' without CR, LF or NUL");
    if (match) {
      if (old && strcmp(old->data, line) == 0) old = old->next;
      else match = 0;
    }
    lua_pop(L, 1);
  }
  /* An empty Expect stops libcurl's 100-continue round trip on large bodies (POST only). */
  if (match) match = is_post ? (old && !old->next && strcmp(old->data, "Expect:") == 0) : old == NULL;
  if (!match) {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    for (i = 1; i <= nh; i++) {
      struct curl_slist *l;
      lua_rawgeti(L, a + 2, (int)i);
      l = curl_slist_append(x->hdrs, lua_tostring(L, -1));   /* libcurl copies the line */
      lua_pop(L, 1);
      if (!l) luaL_error(L, "itnio: not enough memory for the request headers");
      x->hdrs = l;
    }
    if (is_post) {
      struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
      if (!l) luaL_error(L, "itnio: not enough memory for the request headers");
      x->hdrs = l;
    }
  }

  /* A client sends to one URL: libcurl copies it only when it changes. */
  if (!x->url || strcmp(x->url, url) != 0) {
    char *copy = (char *)malloc(urllen + 1);
    if (!copy) luaL_error(L, "itnio: not enough memory for the URL");
    memcpy(copy, url, urllen + 1);
    if (curl_easy_setopt(e, CURLOPT_URL, copy) != CURLE_OK) {
      free(copy);
      luaL_error(L, "itnio: libcurl refused the URL");
    }
    free(x->url);
    x->url = copy;
  }
  x->body.len = x->head.len = 0;
  x->too_large = x->head_too_large = x->oom = 0;
  x->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  if (is_post) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");   /* read in place: see body_mode */
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
}

/* Did any byte of the request leave this process (could the server have seen it)? */
int itnio_xfer_sent(itnio_xfer *x) {
  long status = 0, reqsize = 0;
  curl_off_t upload = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &reqsize);
  curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &upload);
  return status != 0 || reqsize > 0 || upload > 0;
}

/* Pushes the answer's raw header block. A plain success's block is the same, byte for byte,
 * from one answer to the next but for its Date (once a second): the last one is kept, as a
 * Lua string in the owner's user value (slot 0) and as bytes in *last, and handed out again
 * while the next one is the same, so that the common answer allocates no string for it. */
static void push_head(lua_State *L, itnio_xfer *x, itnio_membuf *last, int owner) {
  const char *p = x->head.p ? x->head.p : "";
  size_t n = x->head.len;
  if (last && last->p && last->len == n && memcmp(last->p, p, n) == 0) {
    itnio_getuservalue(L, owner);
    lua_rawgeti(L, -1, 0);
    lua_remove(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) return;
    lua_pop(L, 1);
  }
  lua_pushlstring(L, p, n);
  if (!last) return;
  last->len = 0;
  if (!itnio_membuf_add(last, p, n)) { itnio_membuf_free(last); return; }   /* (no cache, then) */
  itnio_getuservalue(L, owner);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 0);
  lua_pop(L, 1);
}

/* After a transfer ended with rc: lets go of the request and pushes its outcome, one value
 * of one shape whatever the transport (and returns how many values it pushed):
 *   -> { status, headers, body, reused }           an answer (any HTTP status); headers with
 *                                                   lower-case names
 *   -> { plain = true, message, head, reused }     a plain success (itnio_plain_success),
 *      with the handle's `fast` option: no body is handed over; message may be absent; head
 *      is the raw header block (see push_head), parsed only when someone reads the headers.
 *      The table has room for the result's fields: the Lua layer makes the result of it in
 *      place (itnio.internal.outcome)
 *   -> nil, { reason, code, message, sent, answered }   when no whole answer came: reason is
 *      TransportError's; answered, whether a status line came before it failed
 * reused: the answer came on a kept-alive connection. *last and owner: see push_head (last
 * NULL: no cache). *plain is set to whether the outcome is a plain success. */
int itnio_xfer_finish(lua_State *L, itnio_xfer *x, CURLcode rc, itnio_membuf *last, int owner,
                      int *plain) {
  long status = 0, nconn = 0;
  int sent = itnio_xfer_sent(x);
  const char *msg;
  size_t mlen;
  *plain = 0;
  curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, NULL);   /* (the header list stays, for reuse) */
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);

  if (rc != CURLE_OK || x->oom) {
    const char *reason = x->oom ? "memory" : error_reason(rc, x);
    lua_pushnil(L);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "code");
    if (x->head_too_large)
      lua_pushliteral(L, "the answer's headers pass 64 KiB");
    else if (x->too_large)
      lua_pushfstring(L, "the answer is larger than %d bytes (max_body)", (int)x->max_body);
    else
      lua_pushstring(L, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent");
    lua_pushboolean(L, status != 0);
    lua_setfield(L, -2, "answered");
    return 2;
  }
  if (x->fast && itnio_plain_success(status, x->body.p, x->body.len, &msg, &mlen)) {
    *plain = 1;
    lua_createtable(L, 0, 8);   /* 4 fields now, 4 more when it becomes the result */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "plain");
    if (msg) {
      lua_pushlstring(L, msg, mlen);
      lua_setfield(L, -2, "message");
    }
    push_head(L, x, last, owner);
    lua_setfield(L, -2, "head");
  } else {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
    itnio_push_headers(L, x->head.p, x->head.len);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.len);
    lua_setfield(L, -2, "body");
  }
  lua_pushboolean(L, nconn == 0);
  lua_setfield(L, -2, "reused");
  if (x->body.cap > ITNIO_KEEP_BUF) itnio_membuf_free(&x->body);   /* keep small buffers for the next call */
  return 1;
}

/* ---- the answer that needs no decision ---- */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

int itnio_plain_success(long status, const char *body, size_t n, const char **msg, size_t *msglen) {
  const char *p = body, *end = body + n;
  int seen_code = 0, seen_msg = 0, seen_data = 0;
  *msg = NULL;
  *msglen = 0;
  if (status != 200 || !body) return 0;
  p = skip_ws(p, end);
  if (p == end || *p++ != '{') return 0;
  for (;;) {
    const char *key;
    size_t kl;
    p = skip_ws(p, end);
    if (p == end || *p++ != '"') return 0;
    key = p;
    while (p < end && *p != '"' && *p != '\\') p++;
    if (p == end || *p != '"') return 0;
    kl = (size_t)(p - key);
    p = skip_ws(p + 1, end);
    if (p == end || *p++ != ':') return 0;
    p = skip_ws(p, end);
    if (p == end) return 0;
    if (kl == 4 && memcmp(key, "code", 4) == 0) {
      if (seen_code++) return 0;
      if (*p == '0') p++;
      else if (end - p >= 3 && memcmp(p, "\"0\"", 3) == 0) p += 3;
      else return 0;
    } else if (kl == 3 && memcmp(key, "msg", 3) == 0) {
      const char *s;
      if (seen_msg++ || *p++ != '"') return 0;
      s = p;
      while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
      if (p == end || *p != '"') return 0;
      *msg = s;
      *msglen = (size_t)(p - s);
      p++;
    } else if (kl == 4 && memcmp(key, "data", 4) == 0) {
      if (seen_data++ || end - p < 4 || memcmp(p, "null", 4) != 0) return 0;
      p += 4;
    } else {
      return 0;
    }
    p = skip_ws(p, end);
    if (p == end) return 0;
    if (*p == ',') { p++; continue; }
    if (*p++ != '}') return 0;
    break;
  }
  return seen_code && skip_ws(p, end) == end;
}

/*** Whether an answer is a plain success, which needs no decision: HTTP 200 and a body of
 * "code" 0 (or "0"), at most a plain "msg" and a null "data". The client's libcurl handles
 * recognise it themselves (opts `fast`); the nginx transport asks this, the same test.
 * @function plain_success
 * @tparam int status the HTTP status
 * @tparam string body the answer's body
 * @treturn boolean whether it is one
 * @treturn string|nil its message, when it has one */
int itnio_plain_success_lua(lua_State *L) {
  size_t n, ml;
  const char *msg;
  lua_Integer status = luaL_checkinteger(L, 1);
  const char *body = luaL_checklstring(L, 2, &n);
  if (!itnio_plain_success((long)status, body, n, &msg, &ml)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  if (msg) lua_pushlstring(L, msg, ml); else lua_pushnil(L);
  return 2;
}


/*** An answer's raw header block as a table: lower-case names, repeats joined by ", ".
 * @function parse_headers
 * @tparam string block the raw header lines of an answer ("Name: value", CRLF-ended)
 * @treturn table */
/* core.parse_headers(block) -> { ["lower-case name"] = value } for a raw header block. */
int itnio_parse_headers(lua_State *L) {
  size_t n;
  const char *block = luaL_checklstring(L, 1, &n);
  itnio_push_headers(L, block, n);
  return 1;
}

/*** The version of the libcurl in use.
 * @function curl_version
 * @treturn string */
/* core.curl_version() -> "7.88.1" */
/* libcurl's curl_version_info writes its static table on every call: asked once per
 * process, under a lock, so that threads loading the core at once do not race on it. */
int itnio_curl_version(lua_State *L) {
  static char version[64];
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&lock);
  if (!version[0]) snprintf(version, sizeof version, "%s", curl_version_info(CURLVERSION_NOW)->version);
  lua_pushstring(L, version);
  pthread_mutex_unlock(&lock);
  return 1;
}

/* libcurl's global state; a host that owns it sets registry["itnio.no_curl_global_init"] =
 * true before requiring the module. curl_global_init counts its calls, so every Lua state
 * that loads the module may call it. */
void itnio_xfer_global_init(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "itnio.no_curl_global_init");
  if (!lua_toboolean(L, -1) && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    luaL_error(L, "itnio: curl_global_init failed");
  lua_pop(L, 1);
}
