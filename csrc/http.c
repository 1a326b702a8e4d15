/* The libcurl transport: a userdata "itnio.Http" that owns one easy handle, so consecutive
 * requests of one client ride one keep-alive connection.
 *
 * Memory: the userdata is made (zeroed, with __gc) before curl_easy_init, and owns every C
 * allocation after that (the handle, the header list of the request in flight, the response
 * buffers), so a Lua error at any point leaks nothing. libcurl's callbacks only append to
 * those buffers; they never call Lua and never raise. */
#include <stdio.h>
#include <stdlib.h>
#include <curl/curl.h>

#include "itnio.h"

#define HTTP_MT            "itnio.Http"
#define DEFAULT_MAX_BODY   (1024 * 1024)

typedef struct membuf {
  char  *p;
  size_t len, cap;
} membuf;

typedef struct itnio_http {
  CURL              *easy;
  struct curl_slist *hdrs;        /* the request in flight's header list */
  membuf             body, head;  /* the response */
  size_t             max_body;
  int                too_large;   /* the answer passed max_body: the write callback stopped it */
  int                oom;         /* a callback could not allocate */
  char               errbuf[CURL_ERROR_SIZE];
} itnio_http;

static void membuf_free(membuf *m) {
  free(m->p);
  m->p = NULL;
  m->len = m->cap = 0;
}

/* Appends without ever raising (libcurl is on the C stack): 0 on failure. */
static int membuf_add(membuf *m, const char *s, size_t n) {
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

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  itnio_http *h = (itnio_http *)ud;
  size_t n = size * nmemb;
  if (h->body.len + n > h->max_body) { h->too_large = 1; return 0; }
  if (!membuf_add(&h->body, data, n)) { h->oom = 1; return 0; }
  return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  itnio_http *h = (itnio_http *)ud;
  size_t n = size * nmemb;
  /* A new status line (after 100 Continue, say): keep only the last answer's headers. */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) h->head.len = 0;
  if (h->head.len + n > h->max_body) { h->too_large = 1; return 0; }
  if (!membuf_add(&h->head, data, n)) { h->oom = 1; return 0; }
  return n;
}

/* Frees everything; safe to call twice (__gc after :close()). */
static void http_release(itnio_http *h) {
  if (h->easy) curl_easy_cleanup(h->easy);
  h->easy = NULL;
  curl_slist_free_all(h->hdrs);
  h->hdrs = NULL;
  membuf_free(&h->body);
  membuf_free(&h->head);
}

static itnio_http *check_http(lua_State *L) {
  itnio_http *h = (itnio_http *)luaL_checkudata(L, 1, HTTP_MT);
  if (!h->easy) luaL_error(L, "itnio: the HTTP handle is closed");
  return h;
}

static int http_gc(lua_State *L) {
  http_release((itnio_http *)luaL_checkudata(L, 1, HTTP_MT));
  return 0;
}

static int http_tostring(lua_State *L) {
  itnio_http *h = (itnio_http *)luaL_checkudata(L, 1, HTTP_MT);
  lua_pushfstring(L, "itnio.Http (%s)", h->easy ? "open" : "closed");
  return 1;
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

static int curl_ok(lua_State *L, CURLcode rc, const char *what) {
  if (rc != CURLE_OK) luaL_error(L, "itnio: libcurl refused %s (%s)", what, curl_easy_strerror(rc));
  return 1;
}

/* core.http_new(opts) -> itnio.Http. opts: cafile, capath, proxy, user_agent, max_body
 * (bytes), insecure (boolean; verification stays on unless it is exactly true). */
static int http_new(lua_State *L) {
  itnio_http *h;
  const char *s;
  int insecure;
  luaL_checktype(L, 1, LUA_TTABLE);
  h = (itnio_http *)itnio_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  luaL_getmetatable(L, HTTP_MT);
  lua_setmetatable(L, -2);
  h->max_body = DEFAULT_MAX_BODY;
  h->easy = curl_easy_init();
  if (!h->easy) return luaL_error(L, "itnio: curl_easy_init failed");

  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf), "ERRORBUFFER");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_REDIR_PROTOCOLS_STR, "https"), "REDIR_PROTOCOLS_STR");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L), "FOLLOWLOCATION");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L), "TCP_KEEPALIVE");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_body), "WRITEFUNCTION");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, (void *)h), "WRITEDATA");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, on_header), "HEADERFUNCTION");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, (void *)h), "HEADERDATA");

  lua_getfield(L, 1, "insecure");
  insecure = lua_toboolean(L, -1) && lua_type(L, -1) == LUA_TBOOLEAN;
  lua_pop(L, 1);
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L), "SSL_VERIFYPEER");
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L), "SSL_VERIFYHOST");
  if ((s = opt_string(L, 1, "cafile")))     curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_CAINFO, s), "CAINFO");
  if ((s = opt_string(L, 1, "capath")))     curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_CAPATH, s), "CAPATH");
  if ((s = opt_string(L, 1, "proxy")))      curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_PROXY, s), "PROXY");
  if ((s = opt_string(L, 1, "user_agent"))) curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_USERAGENT, s), "USERAGENT");

  lua_getfield(L, 1, "max_body");
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1024.0 * 1024 * 1024))
      return luaL_error(L, "itnio: option max_body must be a number of bytes from 1 to 1 GiB");
    h->max_body = (size_t)n;
  }
  lua_pop(L, 1);
  curl_ok(L, curl_easy_setopt(h->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_body), "MAXFILESIZE");
  return 1;
}

static const char *error_kind(CURLcode rc, const itnio_http *h) {
  if (h->too_large || rc == CURLE_FILESIZE_EXCEEDED) return "too_large";
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

/* Pushes the last answer's headers as a table: lower-case names, repeated ones joined by ", ". */
void itnio_http_push_headers(lua_State *L, const char *block, size_t len) {
  const char *p = block, *end;
  lua_newtable(L);
  if (!block) return;
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
      lua_rawget(L, -3);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

static long seconds_to_ms(lua_State *L, int idx, const char *name, double dflt) {
  double s = luaL_optnumber(L, idx, dflt);
  if (!(s > 0 && s <= 86400)) luaL_error(L, "itnio: %s must be from 0 to 86400 seconds", name);
  return (long)(s * 1000.0 + 0.5) > 0 ? (long)(s * 1000.0 + 0.5) : 1;
}

/* http:perform(method, url, headers, body, timeout, connect_timeout)
 *   -> status, headers, body, info          on an answer (any HTTP status)
 *   -> nil, { kind, code, message, sent }   when no answer came (transport failure)
 * headers is an array of "Name: value" lines; info = { reused = bool, seconds = n }. */
static int http_perform(lua_State *L) {
  itnio_http *h = check_http(L);
  const char *method = luaL_checkstring(L, 2);
  size_t urllen, nh, blen = 0, i;
  const char *url = luaL_checklstring(L, 3, &urllen);
  const char *body = NULL;
  long timeout_ms, connect_ms, status = 0, reqsize = 0, nconn = 0;
  curl_off_t upload = 0;
  double total = 0;
  CURLcode rc;
  int is_post;

  luaL_checktype(L, 4, LUA_TTABLE);
  if (!lua_isnoneornil(L, 5)) body = luaL_checklstring(L, 5, &blen);
  timeout_ms = seconds_to_ms(L, 6, "timeout", 10);
  connect_ms = seconds_to_ms(L, 7, "connect_timeout", 3);
  if (strcmp(method, "POST") == 0) is_post = 1;
  else if (strcmp(method, "GET") == 0) is_post = 0;
  else return luaL_argerror(L, 2, "method must be GET or POST");
  if (strlen(url) != urllen || strpbrk(url, "\r\n \t"))
    return luaL_argerror(L, 3, "url must not contain white space, CR, LF or NUL");

  /* Check every header line first: nothing below may raise while the list is half built. */
  nh = (size_t)itnio_rawlen(L, 4);
  for (i = 1; i <= nh; i++) {
    size_t n;
    const char *line;
    lua_rawgeti(L, 4, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 4, "header lines must be strings");
    line = lua_tolstring(L, -1, &n);
    if (strlen(line) != n || strpbrk(line, "\r\n") || !strchr(line, ':'))
      return luaL_argerror(L, 4, "a header line must be 'Name: value' without CR, LF or NUL");
    lua_pop(L, 1);
  }
  curl_slist_free_all(h->hdrs);
  h->hdrs = NULL;
  for (i = 1; i <= nh; i++) {
    struct curl_slist *l;
    lua_rawgeti(L, 4, (int)i);
    l = curl_slist_append(h->hdrs, lua_tostring(L, -1));   /* libcurl copies the line */
    lua_pop(L, 1);
    if (!l) return luaL_error(L, "itnio: not enough memory for the request headers");
    h->hdrs = l;
  }
  if (is_post) {
    /* An empty Expect stops libcurl's 100-continue round trip on large bodies. */
    struct curl_slist *l = curl_slist_append(h->hdrs, "Expect:");
    if (!l) return luaL_error(L, "itnio: not enough memory for the request headers");
    h->hdrs = l;
  }

  h->body.len = h->head.len = 0;
  h->too_large = h->oom = 0;
  h->errbuf[0] = '\0';
  curl_easy_setopt(h->easy, CURLOPT_URL, url);
  curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs);
  curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  if (is_post) {
    curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body ? body : "");   /* arg 5 stays alive */
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  } else {
    curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
  }

  rc = curl_easy_perform(h->easy);

  curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
  curl_slist_free_all(h->hdrs);
  h->hdrs = NULL;
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h->easy, CURLINFO_REQUEST_SIZE, &reqsize);
  curl_easy_getinfo(h->easy, CURLINFO_SIZE_UPLOAD_T, &upload);
  curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &nconn);
  curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &total);

  if (rc != CURLE_OK || h->oom) {
    const char *kind = h->oom ? "memory" : error_kind(rc, h);
    lua_pushnil(L);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "code");
    if (h->too_large)
      lua_pushfstring(L, "the answer is larger than %d bytes (max_body)", (int)h->max_body);
    else
      lua_pushstring(L, h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    lua_setfield(L, -2, "message");
    /* Could the server have seen the request? Not when no byte of it left this process. */
    lua_pushboolean(L, status != 0 || reqsize > 0 || upload > 0);
    lua_setfield(L, -2, "sent");
    lua_pushboolean(L, status != 0);
    lua_setfield(L, -2, "answered");
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)status);
  itnio_http_push_headers(L, h->head.p, h->head.len);
  lua_pushlstring(L, h->body.p ? h->body.p : "", h->body.len);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, nconn == 0);
  lua_setfield(L, -2, "reused");
  lua_pushnumber(L, (lua_Number)total);
  lua_setfield(L, -2, "seconds");
  if (h->body.cap > 64 * 1024) membuf_free(&h->body);   /* keep small buffers for the next call */
  return 4;
}

static int http_close(lua_State *L) {
  http_release((itnio_http *)luaL_checkudata(L, 1, HTTP_MT));
  return 0;
}

static const luaL_Reg http_methods[] = {
  { "perform", http_perform },
  { "close",   http_close },
  { NULL, NULL }
};

/* core.curl_version() -> "7.88.1" */
static int curl_version_text(lua_State *L) {
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  return 1;
}

void itnio_http_open(lua_State *L) {
  /* libcurl's global state; a host that owns it sets registry["itnio.no_curl_global_init"]
   * = true before requiring the module. curl_global_init counts its calls, so every Lua state that loads us may call it. */
  lua_getfield(L, LUA_REGISTRYINDEX, "itnio.no_curl_global_init");
  if (!lua_toboolean(L, -1) && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    luaL_error(L, "itnio: curl_global_init failed");
  lua_pop(L, 1);
  if (luaL_newmetatable(L, HTTP_MT)) {
    itnio_newlibtable(L, http_methods);
    itnio_setfuncs(L, http_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, http_gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, http_gc);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, http_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, HTTP_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, http_new);
  lua_setfield(L, -2, "http_new");
  lua_pushcfunction(L, curl_version_text);
  lua_setfield(L, -2, "curl_version");
}
