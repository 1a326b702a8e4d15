/* Private header of the C core. Every symbol declared here is hidden, by the pragma below
 * (not only by the Makefile's -fvisibility=hidden: LuaRocks' builtin build passes no such
 * flag); the module exports luaopen_itnio_core and nothing else (tools/check-exports). Each
 * C file of csrc/ includes this header before it defines anything, so each definition takes the
 * hidden visibility of its declaration here.
 *
 * The files, in the order a call uses them (each section below is one file):
 *   itnio_core.c  luaopen_itnio_core: the one list that registers every function and method
 *   schema.c      the endpoints and their body rules, as data
 *   validate.c    walks a Lua table against an endpoint's rules, writing the JSON body
 *   json.c        JSON strings (checked as UTF-8 while escaped) and numbers
 *   buf.c         the growable buffers: one a userdata owns (raises), one libcurl fills (never)
 *   base64.c      Base64: the encoder (uploads) and the check (baseFile)
 *   sign.c        the request signature (MD5 through OpenSSL), constant-time compare
 *   xfer.c        the transfer layer every libcurl transfer shares
 *   http.c        the Http class: one easy handle, a blocking perform
 *   multi.c       the Multi class: one multi handle, many transfers, never blocking
 *   events.c      the multi handle's event backend: epoll on Linux, poll(2) elsewhere
 *   clock.c       monotonic and wall clocks, sleep */
#ifndef ITNIO_H
#define ITNIO_H

#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <curl/curl.h>
#include "compat.h"

/* The one exported symbol: declared before the hidden region, and defined in itnio_core.c
 * with the same explicit default visibility. */
__attribute__((visibility("default"))) int luaopen_itnio_core(lua_State *L);

/* Everything from here to the end of the header is hidden. The system and Lua headers are
 * included above, outside it: a hidden declaration of libcurl's or Lua's functions would
 * make the compiler expect them inside this module. */
#pragma GCC visibility push(hidden)

/* ---- the constants, each written once ---- */

#define ITNIO_VERSION      "0.1.0"
#define ITNIO_MAX_ERRORS   100   /* broken rules one encode reports */
#define ITNIO_MAX_FIELDS   32    /* rows of one schema (validate.c keeps a state per row) */
#define ITNIO_MAX_HEAD     (64 * 1024)   /* an answer's header block, as the nginx reader caps it */
#define ITNIO_KEEP_BUF     (64 * 1024)   /* a buffer kept for reuse past a call is at most this */
#define ITNIO_MAX_BODY     (1024 * 1024) /* an answer's body, unless the client says otherwise */
/* Integers must be exact in every JSON reader and in LuaJIT's doubles (RFC 8259, section 6). */
#define ITNIO_SAFE_INT     9007199254740991.0   /* 2^53 - 1 */
#define ITNIO_MULTI_SLOTS  ((lua_Integer)1 << 20)   /* transfers of one multi handle at once */

typedef struct itnio_buf itnio_buf;   /* buf.c */

/* ---- itnio_core.c ---- */

/* Registers a userdata class's metatable (methods, __gc and __close, __tostring, __name). */
void itnio_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                 lua_CFunction tostring);

/* ---- schema.c: the endpoints and their body rules, as data ---- */

enum itnio_kind  { ITNIO_K_INT, ITNIO_K_NUM, ITNIO_K_STR, ITNIO_K_LIST, ITNIO_K_STRLIST };
enum itnio_check { ITNIO_S_ANY, ITNIO_S_BASE64, ITNIO_S_DIGIT, ITNIO_S_SEATKEY, ITNIO_S_SMS };

#define ITNIO_F_REQUIRED  0x01   /* always required */
#define ITNIO_F_NONEMPTY  0x02   /* when required by its condition, "" is not enough */
#define ITNIO_F_VOICE     0x04   /* a voice-node field: an EXCLUDES rule may rule it out */

struct itnio_schema;

typedef struct itnio_field {
  const char   *name;
  const char   *jkey;       /* "\"name\":" as written in the body */
  unsigned char namelen, jkeylen;
  const char   *rule;       /* rule id, as doc/rules.md lists them */
  unsigned char kind;       /* itnio_kind */
  unsigned char check;      /* itnio_check, for strings */
  unsigned char flags;
  double        min, max;   /* numbers: value range; strings: length range in characters */
  signed char   cond, condval;    /* required when field[cond] == condval (cond < 0: never) */
  signed char   cond2, cond2val;  /* ... and field[cond2] == cond2val (cond2 < 0: no second) */
  const char   *meaning;    /* a few words for error messages */
  const struct itnio_schema *items;   /* ITNIO_K_LIST: the schema of each item (an object) */
} itnio_field;

/* Rules across the fields of one object, as rows. */
enum itnio_xkind {
  ITNIO_X_ONE_OF,    /* when field `when` is `value`, at least one of `of` must be 1 */
  ITNIO_X_EXCLUDES   /* when field `when` is present, the fields flagged `flag` must not be
                        (nor are they required) */
};

typedef struct itnio_xrule {
  const char   *rule;
  unsigned char kind;       /* itnio_xkind */
  signed char   when, value;
  unsigned char flag;
  signed char   of[8];      /* field indexes, ended by -1 */
  const char   *message;    /* EXCLUDES: what a forbidden field is told */
} itnio_xrule;

#define ITNIO_INDEX_SIZE 128   /* slots of a schema's field index (a hash of the names) */

typedef struct itnio_schema {
  const char        *name;        /* "task", "node": what the messages call it */
  const char        *unknown_rule;/* the rule an unknown field breaks (T6, N24) */
  const itnio_field *fields;
  int                nfields;
  const itnio_xrule *xrules;
  int                nxrules;
  unsigned char     *index;       /* ITNIO_INDEX_SIZE slots: field + 1, or 0; built once */
} itnio_schema;

typedef struct itnio_endpoint {
  const char         *name;       /* "recall_update": the Lua layer's methods are made from it */
  const char         *method;     /* "POST" */
  const char         *path;       /* "/voice/recallFlow/update" */
  const char         *title;      /* the vendor's name for it */
  const char         *noun;       /* what the body is called in messages: "task" */
  const itnio_schema *schema;
} itnio_endpoint;

extern const itnio_endpoint itnio_endpoints[];
extern const int itnio_nendpoints;
/* The endpoint of that name, or NULL. */
const itnio_endpoint *itnio_endpoint_find(const char *name);
/* Builds the schemas' field indexes, once per process (thread-safe); NULL, or the name of a
 * row whose condition or rule names a row it cannot. luaopen calls it before anything else. */
const char *itnio_schema_problem(void);
/* Field index by exact name, or -1. */
int itnio_schema_find(const itnio_schema *s, const char *k, size_t kl);
/* Field index by case-insensitive name (for "did you mean"), or -1. */
int itnio_schema_suggest(const itnio_schema *s, const char *k, size_t kl);

/* ---- validate.c ---- */
/* Walks the table at stack index task against e's rules, writing the body into the state's
 * spare buffer. Pushes two values: nil and the buffer's userdata, whose buffer it returns
 * (give it back with itnio_buf_pushkeep); or, when rules broke, the errors array and the
 * buffer's userdata, and returns NULL. null_idx: the caller's JSON null, or 0. */
itnio_buf *itnio_encode_body(lua_State *L, const itnio_endpoint *e, int task, int passthrough,
                             int null_idx);
int itnio_encode(lua_State *L);
int itnio_endpoints_list(lua_State *L);

/* ---- buf.c: growable buffers ---- */

/* A buffer whose memory a Lua userdata owns (freed by __gc if anything raises). */
struct itnio_buf {
  char     *p;
  size_t    len, cap;
  lua_Alloc alloc;
  void     *ud;
};

/* Pushes a userdata that owns the buffer. */
itnio_buf *itnio_buf_new(lua_State *L, size_t hint);
/* Makes room for `extra` more bytes; raises a memory error when it cannot. */
void       itnio_buf_reserve(lua_State *L, itnio_buf *b, size_t extra);
/* Pushes the contents as a Lua string and frees the memory at once. */
void       itnio_buf_pushresult(lua_State *L, itnio_buf *b);
/* As itnio_buf_new, but takes the state's spare buffer when there is one (the encoder's:
 * a body per call, so its memory is reused instead of allocated and collected each time). */
itnio_buf *itnio_buf_borrow(lua_State *L, size_t hint);
/* Pushes the contents as a Lua string and gives the buffer (its userdata at stack index
 * idx) back as the spare, emptied; a large one is freed instead. */
void       itnio_buf_pushkeep(lua_State *L, itnio_buf *b, int idx);
/* Gives the buffer back as the spare, as itnio_buf_pushkeep does, without making a string. */
void       itnio_buf_giveback(lua_State *L, itnio_buf *b, int idx);

static inline void itnio_buf_addmem(lua_State *L, itnio_buf *b, const char *s, size_t n) {
  if (b->cap - b->len < n) itnio_buf_reserve(L, b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
static inline void itnio_buf_addchar(lua_State *L, itnio_buf *b, char c) {
  if (b->len == b->cap) itnio_buf_reserve(L, b, 1);
  b->p[b->len++] = c;
}
#define itnio_buf_addlit(L, b, s) itnio_buf_addmem((L), (b), "" s, sizeof(s) - 1)

/* A plain malloc'd buffer for libcurl's callbacks, which must never raise: its owner (a
 * transfer inside a userdata) frees it. */
typedef struct itnio_membuf {
  char  *p;
  size_t len, cap;
} itnio_membuf;

/* Appends; 0 when memory is short (nothing raised). */
int  itnio_membuf_add(itnio_membuf *m, const char *s, size_t n);
void itnio_membuf_free(itnio_membuf *m);

/* ---- json.c: JSON scalars ---- */

/* What a string scan found. */
enum { ITNIO_STR_OK = 0, ITNIO_STR_BADUTF8, ITNIO_STR_NUL };

/* Checks that s is valid UTF-8 with no NUL, counts its code points into *nchars, and
 * (when b is not NULL) appends it as a quoted, escaped JSON string. Returns ITNIO_STR_*;
 * on error nothing useful is left in b (the caller drops the body). */
int  itnio_json_string(lua_State *L, itnio_buf *b, const char *s, size_t n, size_t *nchars);
void itnio_json_integer(lua_State *L, itnio_buf *b, int64_t v);
/* Shortest decimal text that reads back as exactly v (v must be finite). */
void itnio_json_double(lua_State *L, itnio_buf *b, double v);
/* The same text as itnio_json_double, into out (at least 32 bytes); returns its length. */
size_t itnio_fmt_double(char *out, double v);

/* ---- base64.c ---- */
int itnio_base64(lua_State *L);
int itnio_base64_file(lua_State *L);
/* Is s valid padded Base64 (RFC 4648 section 4)? Returns NULL or what is wrong. */
const char *itnio_base64_problem(const char *s, size_t n);

/* ---- sign.c ---- */
int itnio_sign(lua_State *L);
int itnio_consteq(lua_State *L);
int itnio_sha1(lua_State *L);

/* ---- xfer.c: the transfer layer every libcurl transfer shares ---- */

/* One request and its answer on one easy handle. The struct lives inside memory a userdata
 * owns (itnio.Http, or a transfer of itnio.Multi), so a raise at any point leaks nothing.
 * libcurl's callbacks only append to body/head: they never call Lua and never raise. */
typedef struct itnio_xfer {
  CURL              *easy;
  struct curl_slist *hdrs;        /* the last request's header list (kept while it is the same) */
  itnio_membuf       body, head;  /* the answer */
  itnio_membuf       req;         /* the request's body, when the transfer owns it (BODY_OWN) */
  char              *url;         /* the URL libcurl has (set again only when it changes) */
  size_t             max_body;
  int                too_large;   /* the answer passed max_body: a callback stopped it */
  int                head_too_large; /* its headers passed ITNIO_MAX_HEAD */
  int                oom;         /* a callback could not allocate */
  int                fast;        /* a plain success comes as true, message (see finish) */
  char               errbuf[CURL_ERROR_SIZE];
} itnio_xfer;

/* curl_global_init, unless the host owns it (registry["itnio.no_curl_global_init"]). */
void itnio_xfer_global_init(lua_State *L);
/* Raises "libcurl refused <what>" unless rc is CURLE_OK. */
int  itnio_curl_ok(lua_State *L, CURLcode rc, const char *what);
/* Creates x->easy and sets the per-client options from the table at index opts. */
void itnio_xfer_configure(lua_State *L, itnio_xfer *x, int opts);
/* Points the callbacks and the error buffer at x (after curl_easy_duphandle). */
void itnio_xfer_bind(lua_State *L, itnio_xfer *x);
/* Sets one request from the arguments a..a+5 (method, url, header lines, body, timeout,
 * connect_timeout). body_mode: ITNIO_BODY_REF, libcurl reads the string argument in place
 * (the caller keeps it alive until the transfer ends); ITNIO_BODY_OWN, it reads x->req,
 * filled by the caller (the argument is ignored). */
enum { ITNIO_BODY_REF, ITNIO_BODY_OWN };
void itnio_xfer_request(lua_State *L, itnio_xfer *x, int a, int body_mode);
/* Did any byte of the request leave this process? */
int  itnio_xfer_sent(itnio_xfer *x);
/* Pushes the outcome, an answer table or nil and a failure table, and returns the count; see
 * xfer.c. last/owner: the owner's cache of the last plain success's header block (last may
 * be NULL). *plain: whether it is a plain success. */
int  itnio_xfer_finish(lua_State *L, itnio_xfer *x, CURLcode rc, itnio_membuf *last, int owner,
                       int *plain);
/* Is this answer a plain success: HTTP 200, and a body that is one JSON object of "code" (0 or
 * "0"), and at most a "msg" (a string without escapes or control characters) and a "data"
 * (null), each once, in any order? Then *msg points into body at the message (NULL when
 * there is none) and it returns 1. Every other answer needs the Lua layer's decision. */
int  itnio_plain_success(long status, const char *body, size_t n, const char **msg, size_t *msglen);
int  itnio_plain_success_lua(lua_State *L);
/* Frees everything the transfer owns; safe to call twice. */
void itnio_xfer_release(itnio_xfer *x);
/* The headers of one answer (raw "Name: value" lines) as a table of lower-case names. */
void itnio_push_headers(lua_State *L, const char *block, size_t len);
int  itnio_parse_headers(lua_State *L);
int  itnio_curl_version(lua_State *L);

/* ---- http.c: the Http class ---- */
#define ITNIO_HTTP_MT "itnio.Http"
int itnio_http_new(lua_State *L);
int itnio_http_perform(lua_State *L);
int itnio_http_close(lua_State *L);
int itnio_http_tostring(lua_State *L);

/* ---- multi.c: the Multi class ---- */
#define ITNIO_MULTI_MT "itnio.Multi"
int itnio_multi_new(lua_State *L);
int itnio_multi_add(lua_State *L);
int itnio_multi_add_task(lua_State *L);
int itnio_multi_perform(lua_State *L);
int itnio_multi_next_done(lua_State *L);
int itnio_multi_take(lua_State *L);
int itnio_multi_take_next(lua_State *L);
int itnio_multi_redis(lua_State *L);
int itnio_multi_cancel(lua_State *L);
int itnio_multi_wait(lua_State *L);
int itnio_multi_count(lua_State *L);
int itnio_multi_fd(lua_State *L);
int itnio_multi_timeout(lua_State *L);
int itnio_multi_close(lua_State *L);
int itnio_multi_tostring(lua_State *L);

/* ---- redis.c: the store's Redis ---- */
#define ITNIO_REDIS_MT       "itnio.Redis"
#define ITNIO_REDIS_MAX_ARGS 32
/* A Redis server's address and credentials (a userdata), and its blocking connection. */
typedef struct itnio_redis {
  char   host[256], user[128];
  char  *password;           /* malloc'd, wiped when freed; NULL: none */
  int    port, db;
  double connect_timeout, timeout;
  void  *ctx;                /* the blocking redisContext, or NULL */
} itnio_redis;
/* A reply kept in C: a scalar, or an array of scalars (type: REDIS_REPLY_*). */
typedef struct itnio_rv {
  int              type;
  long long        integer;
  char            *str;
  size_t           len, n;
  struct itnio_rv *items;
} itnio_rv;
int  itnio_redis_new(lua_State *L);
int  itnio_redis_call(lua_State *L);
int  itnio_redis_close(lua_State *L);
int  itnio_redis_gc(lua_State *L);
int  itnio_redis_tostring(lua_State *L);
itnio_redis *itnio_redis_check(lua_State *L, int idx);
/* Pushes nil and { reason, message }; returns 2. */
int  itnio_redis_failure(lua_State *L, const char *reason, const char *message, size_t len);
/* The failure's reason for a context's error (err, errstr). */
const char *itnio_redis_reason(int err, const char *errstr);
/* The command of the arguments from..top, formatted by hiredis (*cmd: free with
 * redisFreeCommand); its length. Raises on a bad argument. */
int  itnio_redis_format(lua_State *L, int from, char **cmd);
/* Copies a reply (1; 0 when memory is short), pushes it as a Lua value (1, or nil and a
 * failure: 2), frees it (safe twice). */
struct redisReply;
int  itnio_rv_copy(itnio_rv *v, const struct redisReply *reply);
int  itnio_rv_push(lua_State *L, const itnio_rv *v);
void itnio_rv_free(itnio_rv *v);

/* ---- events.c: which sockets a multi handle waits on ---- */

/* One ready socket, with libcurl's CURL_CSELECT_* flags. */
typedef struct itnio_ready {
  int fd;
  int flags;
} itnio_ready;

/* The backend: epoll on Linux, poll(2) elsewhere, or anywhere with ITNIO_EVENTS_POLL defined
 * (`make EVENTS=poll`). Its state lives inside the Multi's userdata. */
#if !defined(ITNIO_EVENTS_POLL) && !defined(__linux__)
#  define ITNIO_EVENTS_POLL 1
#endif

typedef struct itnio_events {
  int    open;
#ifdef ITNIO_EVENTS_POLL
  struct pollfd *pfd;       /* the sockets watched, as poll(2) takes them */
  size_t npfd, cappfd;
  int   *pos;               /* per socket: its place in pfd, plus one (0: not watched) */
  size_t npos;
#else
  int    epfd;
  struct itnio_watch *w;    /* per socket: what libcurl wants watched, what epoll has */
  int   *dirty;             /* sockets whose wish changed since epoll was last told */
  size_t nw, ndirty;
#endif
} itnio_events;

/* The name of the backend built in: "epoll" or "poll". */
extern const char itnio_events_backend[];
/* Opens the backend; 0, or an errno value (no descriptor left, no memory). */
int  itnio_events_open(itnio_events *ev);
/* Closes it and frees its memory; safe to call twice. */
void itnio_events_close(itnio_events *ev);
/* libcurl's wish for socket fd: bit 1 readable, bit 2 writable, 0 forget it. Never raises. */
void itnio_events_want(itnio_events *ev, int fd, unsigned want);
/* libcurl opened a new socket fd (its number may be an old one's, which closed). */
void itnio_events_opened(itnio_events *ev, int fd);
/* Tells the kernel every wish heard since the last wait (epoll; nothing to do for poll(2)),
 * so that a host waiting on itnio_events_fd sees them. */
void itnio_events_sync(itnio_events *ev);
/* A descriptor readable when a watched socket is ready (the epoll set), or -1 (poll(2), or
 * closed). */
int  itnio_events_fd(const itnio_events *ev);
/* Waits up to ms (0: not at all) and fills at most max ready sockets; returns how many,
 * or -1 with errno set (EINTR is 0 ready). */
int  itnio_events_wait(itnio_events *ev, int ms, itnio_ready *out, int max);

/* ---- redis.c: the asynchronous connection a Multi keeps to the store ---- */
struct itnio_redis_op;
typedef struct itnio_aredis {
  itnio_events *ev;            /* the Multi's backend: the connection's socket is watched there */
  void         *ac;            /* the redisAsyncContext, or NULL */
  int           fd, connected;
  unsigned      want;
  const itnio_redis *rd;       /* the server it is connected to (the Multi holds its userdata) */
  double        connect_timeout, timeout;
  struct itnio_redis_op *ops;  /* the commands: pending, done (not taken), or free */
  size_t       *free_ids, *done;
  size_t        nops, cap, nfree, ndone, done_head, npending;
  const char   *failing;       /* while the connection drops: why its pending ops fail */
  char          failing_message[200];
} itnio_aredis;
void   itnio_aredis_init(itnio_aredis *ar, itnio_events *ev);
void   itnio_aredis_release(itnio_aredis *ar);
/* Queues the command of the arguments from..top on the connection to the Redis at rd_idx
 * (connecting when there is none, or another server's); its index (the key is a base plus
 * it, plus one). A failure to even connect makes a done op that failed. */
int    itnio_aredis_send(lua_State *L, itnio_aredis *ar, int rd_idx, int from, double now);
/* The connection's socket is ready (CURL_CSELECT_* flags). */
void   itnio_aredis_handle(itnio_aredis *ar, int flags);
/* Fails the ops past their deadline (and drops the connection, when any was). */
void   itnio_aredis_expire(itnio_aredis *ar, double now);
/* The soonest deadline of a pending op (monotonic seconds), or < 0. */
double itnio_aredis_deadline(const itnio_aredis *ar);
/* Pushes the oldest done op as key, value, nil | key, nil, failure and returns 3; or returns
 * 0 when none is done. */
int    itnio_aredis_take(lua_State *L, itnio_aredis *ar, lua_Integer key_base);

/* ---- clock.c ---- */
double itnio_mono_now(void);   /* seconds on a monotonic clock */
int itnio_clock_now(lua_State *L);
int itnio_clock_time(lua_State *L);
int itnio_clock_sleep(lua_State *L);

#pragma GCC visibility pop

#endif
