/* Private header of the C core. Every symbol declared here is hidden, by the pragma below
 * (not only by the Makefile's -fvisibility=hidden: LuaRocks' builtin build passes no such
 * flag); the module exports luaopen_itnio_core and nothing else (tools/check-exports). Each
 * C file of csrc/ includes this header before it defines anything, so each definition takes the
 * hidden visibility of its declaration here. */
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

#define ITNIO_VERSION      "0.1.0"
#define ITNIO_MAX_ERRORS   100
#define ITNIO_MAX_FIELDS   32    /* rows of one schema (validate.c keeps a state per row) */
#define ITNIO_MAX_HEAD     (64 * 1024)   /* an answer's header block, as the nginx reader caps it */
/* Integers must be exact in every JSON reader and in LuaJIT's doubles (RFC 8259, section 6). */
#define ITNIO_SAFE_INT     9007199254740991.0   /* 2^53 - 1 */

/* ---- json_out.c: an output buffer owned by a Lua userdata, and JSON scalars ---- */

typedef struct itnio_buf {
  char     *p;
  size_t    len, cap;
  lua_Alloc alloc;
  void     *ud;
} itnio_buf;

/* Pushes a userdata that owns the buffer (freed by __gc if anything raises). */
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

/* ---- schema.c: the rules of doc/rules.md as data ---- */

enum itnio_kind  { ITNIO_K_INT, ITNIO_K_NUM, ITNIO_K_STR, ITNIO_K_NODES, ITNIO_K_STRLIST };
enum itnio_check { ITNIO_S_ANY, ITNIO_S_BASE64, ITNIO_S_DIGIT, ITNIO_S_SEATKEY, ITNIO_S_SMS };

#define ITNIO_F_REQUIRED  0x01   /* always required */
#define ITNIO_F_NONEMPTY  0x02   /* when required by its condition, "" is not enough */
#define ITNIO_F_VOICE     0x04   /* a voice-node field: forbidden beside scriptId (A3) */
#define ITNIO_F_SCRIPT    0x08   /* scriptId: its presence makes an agent node (A2) */

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
} itnio_field;

typedef struct itnio_schema {
  const char        *name;        /* "task" or "node" */
  const char        *unknown_rule;/* T6 or N24 */
  const itnio_field *fields;
  int                nfields;
} itnio_schema;

extern const itnio_schema itnio_task_schema, itnio_node_schema;
/* Index of the node fields that rules across fields need (N13). */
extern const int itnio_node_hangupsms, itnio_node_push[4];
/* NULL, or the name of a row whose condition names a row not before it. */
const char *itnio_schema_problem(void);
/* Field index by exact name, or -1. */
int itnio_schema_find(const itnio_schema *s, const char *k, size_t kl);
/* Field index by case-insensitive name (for "did you mean"), or -1. */
int itnio_schema_suggest(const itnio_schema *s, const char *k, size_t kl);
/* Is s valid padded Base64 (RFC 4648 section 4)? Returns NULL or what is wrong. */
const char *itnio_base64_problem(const char *s, size_t n);

/* ---- validate.c ---- */
int itnio_encode_recall_update(lua_State *L);

/* ---- http.c: the libcurl transport; adds http_new, multi_new and curl_version ---- */

typedef struct itnio_membuf {
  char  *p;
  size_t len, cap;
} itnio_membuf;

/* One request and its answer on one easy handle. The struct lives inside memory a userdata
 * owns (itnio.Http, or a transfer of itnio.Multi), so a raise at any point leaks nothing.
 * libcurl's callbacks only append to body/head: they never call Lua and never raise. */
typedef struct itnio_xfer {
  CURL              *easy;
  struct curl_slist *hdrs;        /* the last request's header list (kept while it is the same) */
  itnio_membuf       body, head;  /* the answer */
  size_t             max_body;
  int                too_large;   /* the answer passed max_body: a callback stopped it */
  int                head_too_large; /* its headers passed ITNIO_MAX_HEAD */
  int                oom;         /* a callback could not allocate */
  char               errbuf[CURL_ERROR_SIZE];
} itnio_xfer;

void itnio_http_open(lua_State *L);
void itnio_multi_open(lua_State *L);
/* Registers a userdata class's metatable (methods, __gc and __close, __tostring, __name). */
void itnio_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                 lua_CFunction tostring);
/* Raises "libcurl refused <what>" unless rc is CURLE_OK. */
int  itnio_curl_ok(lua_State *L, CURLcode rc, const char *what);
/* Creates x->easy and sets the per-client options from the table at index opts. */
void itnio_xfer_configure(lua_State *L, itnio_xfer *x, int opts);
/* Points the callbacks and the error buffer at x (after curl_easy_duphandle). */
void itnio_xfer_bind(lua_State *L, itnio_xfer *x);
/* Sets one request from the arguments a..a+5 (method, url, header lines, body, timeout,
 * connect_timeout); copy: libcurl keeps its own copy of the body. */
void itnio_xfer_request(lua_State *L, itnio_xfer *x, int a, int copy);
/* Did any byte of the request leave this process? */
int  itnio_xfer_sent(itnio_xfer *x);
/* Pushes the outcome (status, headers, body, info | nil, err); returns the count. */
int  itnio_xfer_finish(lua_State *L, itnio_xfer *x, CURLcode rc);
void itnio_xfer_release(itnio_xfer *x);
/* The headers of one answer (raw "Name: value" lines) as a table of lower-case names. */
void itnio_http_push_headers(lua_State *L, const char *block, size_t len);

/* ---- clock.c ---- */
int itnio_clock_now(lua_State *L);
int itnio_clock_time(lua_State *L);
int itnio_clock_sleep(lua_State *L);

/* ---- sign.c ---- */
int itnio_sign(lua_State *L);
int itnio_consteq(lua_State *L);

/* ---- base64.c ---- */
int itnio_base64(lua_State *L);

#pragma GCC visibility pop

#endif
