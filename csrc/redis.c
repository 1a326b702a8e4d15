/* Redis, for the client's shared store (itnio.internal.store), through hiredis: a userdata
 * "itnio.Redis" that holds a server's address and credentials and a blocking connection, and
 * the asynchronous connection a Multi keeps to it, on the Multi's own event backend.
 *
 *   rd = core.redis_new{ host, port, db, user, password, connect_timeout, timeout }
 *   value = rd:call(arg, ...)           blocking, within connect_timeout + timeout
 *   key = m:redis(rd, arg, ...)         queued on m's connection to rd's server (multi.c);
 *                                       the reply comes out of m:take_next() under that key
 *
 * A reply is a Lua value: an integer, a string (bulk or status), false for a nil, or an
 * array of those (the store's scripts return nothing deeper); a Redis error reply, and
 * every failure to get a reply, is nil and { reason, message }: reason "error" (the server's
 * error reply, its text as message: NOSCRIPT..., READONLY..., NOAUTH...), "auth" (AUTH or
 * SELECT refused at connect), "connect", "timeout" or "closed". No message holds the password.
 *
 * Memory: the userdata owns the blocking context; a reply is boxed in a userdata with __gc
 * before it is converted, so a raise midway frees it. The asynchronous side (multi.c) copies
 * each reply into C memory in hiredis' callback (which never calls Lua) and converts it when
 * it is taken. */
/***
 * @submodule itnio.core
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>

#include "itnio.h"

static struct timeval to_tv(double s) {
  struct timeval tv;
  tv.tv_sec = (time_t)s;
  tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
  return tv;
}

static itnio_redis *check_redis(lua_State *L, int idx) {
  return (itnio_redis *)luaL_checkudata(L, idx, ITNIO_REDIS_MT);
}

/* Frees a secret, wiped first. */
static void wipe_free(char *s) {
  if (!s) return;
  memset(s, 0, strlen(s));
  free(s);
}

/*** Closes the connection (the next call connects again).
 * @function Redis:close */
int itnio_redis_close(lua_State *L) {
  itnio_redis *r = check_redis(L, 1);
  if (r->ctx) redisFree((redisContext *)r->ctx);
  r->ctx = NULL;
  return 0;
}

/* __gc (and __close): the connection, and the password, wiped. */
int itnio_redis_gc(lua_State *L) {
  itnio_redis *r = check_redis(L, 1);
  itnio_redis_close(L);
  wipe_free(r->password);
  r->password = NULL;
  return 0;
}

int itnio_redis_tostring(lua_State *L) {
  itnio_redis *r = check_redis(L, 1);
  lua_pushfstring(L, "itnio.Redis (%s:%d)", r->host, r->port);   /* (never the password) */
  return 1;
}

static char *copy_opt(lua_State *L, int opts, const char *name, size_t max) {
  const char *s;
  size_t n;
  char *copy;
  lua_getfield(L, opts, name);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  s = luaL_checklstring(L, -1, &n);
  if (n > max || strlen(s) != n || strpbrk(s, "\r\n")) luaL_error(L, "itnio: redis %s is malformed", name);
  if (!(copy = (char *)malloc(n + 1))) luaL_error(L, "itnio: not enough memory");
  memcpy(copy, s, n + 1);
  lua_pop(L, 1);
  return copy;
}

static double num_opt(lua_State *L, int opts, const char *name, double dflt, double lo, double hi) {
  double v;
  lua_getfield(L, opts, name);
  v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  if (!(v >= lo && v <= hi)) luaL_error(L, "itnio: redis %s is out of range", name);
  return v;
}

/*** A Redis server's address and credentials, and a connection made on first use (the
 * client's store: itnio.internal.store).
 * @function redis_new
 * @tparam table opts `host`, `port` (6379), `db` (0), `user`, `password`, `connect_timeout`
 * (seconds, 0.05), `timeout` (seconds a command may take, 0.1)
 * @treturn Redis */
int itnio_redis_new(lua_State *L) {
  itnio_redis *r;
  char *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  r = (itnio_redis *)itnio_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  luaL_getmetatable(L, ITNIO_REDIS_MT);
  lua_setmetatable(L, -2);
  if (!(s = copy_opt(L, 1, "host", sizeof r->host - 1))) return luaL_error(L, "itnio: redis host is required");
  memcpy(r->host, s, strlen(s) + 1);
  free(s);
  if ((s = copy_opt(L, 1, "user", sizeof r->user - 1))) { memcpy(r->user, s, strlen(s) + 1); free(s); }
  r->password = copy_opt(L, 1, "password", 4096);
  r->port = (int)num_opt(L, 1, "port", 6379, 1, 65535);
  r->db = (int)num_opt(L, 1, "db", 0, 0, 1 << 20);
  r->connect_timeout = num_opt(L, 1, "connect_timeout", 0.05, 0.001, 3600);
  r->timeout = num_opt(L, 1, "timeout", 0.1, 0.001, 3600);
  return 1;
}

/* ---- replies as Lua values ---- */

static void push_scalar(lua_State *L, int type, long long integer, const char *str, size_t len) {
  switch (type) {
    case REDIS_REPLY_INTEGER: lua_pushinteger(L, (lua_Integer)integer); break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:  lua_pushlstring(L, str ? str : "", len); break;
    default:                  lua_pushboolean(L, 0); break;   /* nil (and anything deeper) */
  }
}

int itnio_redis_failure(lua_State *L, const char *reason, const char *message, size_t len) {
  lua_pushnil(L);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  lua_pushlstring(L, message ? message : "", message ? len : 0);
  lua_setfield(L, -2, "message");
  return 2;
}

/* The reason a context's error is (its connection is then unusable). */
const char *itnio_redis_reason(int err, const char *errstr) {
  if (err == REDIS_ERR_EOF) return "closed";
  if (err == REDIS_ERR_IO) {
    if (errstr && (strstr(errstr, "timed out") || strstr(errstr, "Resource temporarily"))) return "timeout";
    if (errstr && strstr(errstr, "refused")) return "connect";
    return "closed";
  }
  return "connect";
}

/* Ends a blocking context that failed (r's, or one not yet r's) and pushes nil, failure: the
 * message is copied and the context freed first, so a raise while pushing leaves neither a
 * context that lost its connection (or its AUTH) in r nor one that nobody owns. */
static int fail_sync(lua_State *L, itnio_redis *r, redisContext *ctx, const char *reason, const char *msg,
                     size_t len) {
  char copy[256];
  snprintf(copy, sizeof copy, "%.*s", (int)(len < 200 ? len : 200), msg ? msg : "");
  if (r->ctx == ctx) r->ctx = NULL;
  redisFree(ctx);
  return itnio_redis_failure(L, reason, copy, strlen(copy));
}

/* fail_sync with the context's own error. */
static int fail_ctx(lua_State *L, itnio_redis *r, redisContext *ctx) {
  return fail_sync(L, r, ctx, itnio_redis_reason(ctx->err, ctx->errstr), ctx->errstr, strlen(ctx->errstr));
}

/* Owns one reply until it is converted (a raise while converting frees it). */
typedef struct reply_box { redisReply *reply; } reply_box;
static int box_gc(lua_State *L) {
  reply_box *b = (reply_box *)lua_touserdata(L, 1);
  if (b->reply) freeReplyObject(b->reply);
  b->reply = NULL;
  return 0;
}

/* Pushes reply (which the box at stack index box owns) as a value; or nil, failure. */
static int push_reply(lua_State *L, redisReply *reply) {
  if (reply->type == REDIS_REPLY_ERROR) return itnio_redis_failure(L, "error", reply->str, reply->len);
  if (reply->type != REDIS_REPLY_ARRAY) {
    push_scalar(L, reply->type, reply->integer, reply->str, reply->len);
    return 1;
  }
  lua_createtable(L, (int)reply->elements, 0);
  for (size_t i = 0; i < reply->elements; i++) {
    redisReply *e = reply->element[i];
    push_scalar(L, e->type, e->integer, e->str, e->len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* The command from the arguments at from..top: pointers into the Lua strings (which the
 * stack keeps alive), in the arrays given (at most max). */
static int command_args(lua_State *L, int from, const char **argv, size_t *lens, int max) {
  int n = lua_gettop(L) - from + 1;
  if (n < 1) luaL_error(L, "itnio: a redis command needs a name");
  if (n > max) luaL_error(L, "itnio: a redis command of more than %d arguments", max);
  for (int i = 0; i < n; i++) {
    if (lua_type(L, from + i) != LUA_TSTRING && lua_type(L, from + i) != LUA_TNUMBER)
      luaL_argerror(L, from + i, "a redis argument must be a string or a number");
    lua_pushvalue(L, from + i);   /* (numbers become strings on the copy, not the argument) */
    lua_replace(L, from + i);
    argv[i] = lua_tolstring(L, from + i, &lens[i]);
  }
  return n;
}

/* A synchronous command on ctx: its reply, or NULL with ctx's error set. */
static redisReply *sync_command(redisContext *ctx, int argc, const char **argv, const size_t *lens) {
  return (redisReply *)redisCommandArgv(ctx, argc, argv, lens);
}

/* Connects r's blocking context (AUTH and SELECT included): NULL, or pushes nil, failure
 * and returns the count (2). */
static int connect_sync(lua_State *L, itnio_redis *r) {
  redisContext *ctx = redisConnectWithTimeout(r->host, r->port, to_tv(r->connect_timeout));
  redisReply *reply;
  if (!ctx) return itnio_redis_failure(L, "connect", "no memory for a redis context", 29);
  if (ctx->err)
    return fail_sync(L, r, ctx, strstr(ctx->errstr, "timed out") ? "timeout" : "connect", ctx->errstr,
                     strlen(ctx->errstr));
  redisSetTimeout(ctx, to_tv(r->timeout));
  r->ctx = ctx;
  if (r->password || r->db) {
    const char *argv[3];
    size_t lens[3];
    int argc = 0;
    char db[16];
    if (r->password) {
      argv[argc] = "AUTH", lens[argc++] = 4;
      if (r->user[0]) argv[argc] = r->user, lens[argc] = strlen(r->user), argc++;
      argv[argc] = r->password, lens[argc] = strlen(r->password), argc++;
      reply = sync_command(ctx, argc, argv, lens);
      if (!reply || reply->type == REDIS_REPLY_ERROR) goto refused;
      freeReplyObject(reply);
    }
    if (r->db) {
      snprintf(db, sizeof db, "%d", r->db);
      argv[0] = "SELECT", lens[0] = 6, argv[1] = db, lens[1] = strlen(db);
      reply = sync_command(ctx, 2, argv, lens);
      if (!reply || reply->type == REDIS_REPLY_ERROR) goto refused;
      freeReplyObject(reply);
    }
  }
  return 0;
refused:
  if (reply) {   /* the server's words (WRONGPASS..., ERR DB index...): never the password */
    char msg[256];
    snprintf(msg, sizeof msg, "%.*s", (int)(reply->len < 200 ? reply->len : 200), reply->str);
    freeReplyObject(reply);
    return fail_sync(L, r, ctx, "auth", msg, strlen(msg));
  }
  return fail_ctx(L, r, ctx);
}

/*** Sends one command and waits for its reply (connecting first when there is no
 * connection; a failed connection is dropped, and the next call connects again).
 * @function Redis:call
 * @param ... the command and its arguments (strings or numbers)
 * @return the reply: an integer, a string, false (nil), or an array of those
 * @return[2] nil
 * @treturn[2] table `{ reason, message }` (reason: error, auth, connect, timeout, closed) */
int itnio_redis_call(lua_State *L) {
  itnio_redis *r = check_redis(L, 1);
  const char *argv[ITNIO_REDIS_MAX_ARGS];
  size_t lens[ITNIO_REDIS_MAX_ARGS];
  int argc = command_args(L, 2, argv, lens, ITNIO_REDIS_MAX_ARGS), n;
  reply_box *box;
  redisReply *reply;
  box = (reply_box *)itnio_newuserdata(L, sizeof *box);   /* first the box, then the reply */
  box->reply = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (!r->ctx && (n = connect_sync(L, r)) != 0) return n;
  reply = sync_command((redisContext *)r->ctx, argc, argv, lens);
  if (!reply) return fail_ctx(L, r, (redisContext *)r->ctx);
  box->reply = reply;
  n = push_reply(L, reply);
  freeReplyObject(reply);
  box->reply = NULL;
  return n;
}

/* ---- replies kept in C, for the asynchronous side ---- */

void itnio_rv_free(itnio_rv *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) free(v->items[i].str);
  free(v->items);
  free(v->str);
  memset(v, 0, sizeof *v);
}

static char *dup_bytes(const char *s, size_t n) {
  char *p = (char *)malloc(n + 1);
  if (p) { if (n) memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

int itnio_rv_copy(itnio_rv *v, const redisReply *reply) {
  memset(v, 0, sizeof *v);
  v->type = reply->type;
  v->integer = reply->integer;
  if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_ERROR) {
    if (!(v->str = dup_bytes(reply->str, reply->len))) return 0;
    v->len = reply->len;
  } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements) {
    if (!(v->items = (itnio_rv *)calloc(reply->elements, sizeof *v->items))) return 0;
    v->n = reply->elements;
    for (size_t i = 0; i < reply->elements; i++) {
      const redisReply *e = reply->element[i];
      v->items[i].type = e->type;
      v->items[i].integer = e->integer;
      if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
        if (!(v->items[i].str = dup_bytes(e->str, e->len))) return 0;
        v->items[i].len = e->len;
      }
    }
  }
  return 1;
}

int itnio_rv_push(lua_State *L, const itnio_rv *v) {
  if (v->type == REDIS_REPLY_ERROR) return itnio_redis_failure(L, "error", v->str, v->len);
  if (v->type != REDIS_REPLY_ARRAY) {
    push_scalar(L, v->type, v->integer, v->str, v->len);
    return 1;
  }
  lua_createtable(L, (int)v->n, 0);
  for (size_t i = 0; i < v->n; i++) {
    push_scalar(L, v->items[i].type, v->items[i].integer, v->items[i].str, v->items[i].len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* The command of the arguments at from..top for the asynchronous side: formatted by hiredis
 * into one buffer (malloc'd; the caller frees it with redisFreeCommand). */
int itnio_redis_format(lua_State *L, int from, char **cmd) {
  const char *argv[ITNIO_REDIS_MAX_ARGS];
  size_t lens[ITNIO_REDIS_MAX_ARGS];
  int argc = command_args(L, from, argv, lens, ITNIO_REDIS_MAX_ARGS);
  long long n = redisFormatCommandArgv(cmd, argc, argv, lens);
  if (n < 0 || !*cmd) luaL_error(L, "itnio: not enough memory for a redis command");
  return (int)n;
}

itnio_redis *itnio_redis_check(lua_State *L, int idx) {
  return check_redis(L, idx);
}

/* ---- the asynchronous connection a Multi keeps (multi.c drives it) ----
 * hiredis' async API on the Multi's event backend: its hooks say which of the connection's
 * readiness it wants, the Multi's perform hands the connection's events to hiredis, and each
 * command is an op with a deadline (hiredis 0.14 has no timeouts of its own): an op past
 * its deadline fails as "timeout", and the connection is dropped (the replies would come
 * late, if ever). hiredis' callbacks never call Lua: a reply is copied into its op. */

#include <hiredis/async.h>
#include <stdint.h>

#define OP_FREE 0
#define OP_PENDING 1
#define OP_DONE 2

struct itnio_redis_op {
  int         state;
  unsigned    gen;          /* bumped each time the op is reused: a late callback finds nothing */
  double      deadline;     /* monotonic seconds */
  itnio_rv    reply;
  const char *reason;       /* failed: the reason, and its message */
  char        message[200];
};

static redisAsyncContext *ac_of(itnio_aredis *ar) { return (redisAsyncContext *)ar->ac; }

static void want(itnio_aredis *ar, unsigned bits, int on) {
  if (on) ar->want |= bits; else ar->want &= ~bits;
  if (ar->fd >= 0) itnio_events_want(ar->ev, ar->fd, ar->want);
}
static void ev_add_read(void *p)  { want((itnio_aredis *)p, 1, 1); }
static void ev_del_read(void *p)  { want((itnio_aredis *)p, 1, 0); }
static void ev_add_write(void *p) { want((itnio_aredis *)p, 2, 1); }
static void ev_del_write(void *p) { want((itnio_aredis *)p, 2, 0); }
/* hiredis frees the context (a failed connect, a disconnect, our free): it is gone. */
static void ev_cleanup(void *p) {
  itnio_aredis *ar = (itnio_aredis *)p;
  if (ar->fd >= 0) itnio_events_want(ar->ev, ar->fd, 0);
  ar->fd = -1;
  ar->want = 0;
  ar->ac = NULL;
  ar->failing = NULL;   /* (the pending callbacks ran before this one) */
}

static struct itnio_redis_op *op_at(itnio_aredis *ar, uintptr_t token) {
  size_t i = (size_t)(token & 0xfffff);
  unsigned gen = (unsigned)(token >> 20);
  if (i >= ar->nops) return NULL;
  if (ar->ops[i].gen != gen || ar->ops[i].state != OP_PENDING) return NULL;
  return &ar->ops[i];
}

/* The op is done: into the done queue, a window [done_head, ndone) of distinct ops (never
 * more than cap), slid down when its end reaches cap. */
static void op_done(itnio_aredis *ar, struct itnio_redis_op *op) {
  op->state = OP_DONE;
  if (ar->ndone == ar->cap) {
    memmove(ar->done, ar->done + ar->done_head, (ar->ndone - ar->done_head) * sizeof *ar->done);
    ar->ndone -= ar->done_head;
    ar->done_head = 0;
  }
  ar->done[ar->ndone++] = (size_t)(op - ar->ops);
  if (ar->npending) ar->npending--;
}

static void op_fail(itnio_aredis *ar, struct itnio_redis_op *op, const char *reason, const char *msg) {
  op->reason = reason;
  snprintf(op->message, sizeof op->message, "%s", msg ? msg : "");
  op_done(ar, op);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  itnio_aredis *ar = (itnio_aredis *)ac->data;
  struct itnio_redis_op *op = op_at(ar, (uintptr_t)priv);
  redisReply *reply = (redisReply *)r;
  if (!op) return;   /* it timed out already */
  if (!reply || ar->failing) {   /* (after a refused AUTH, the commands behind it get NOAUTH) */      /* the connection went: why, as well as we know it */
    if (ar->failing) op_fail(ar, op, ar->failing, ar->failing_message);
    else op_fail(ar, op, itnio_redis_reason(ac->err, ac->errstr), ac->errstr[0] ? ac->errstr : "the connection closed");
    return;
  }
  if (!itnio_rv_copy(&op->reply, reply)) {
    itnio_rv_free(&op->reply);
    op_fail(ar, op, "closed", "not enough memory for a redis reply");
    return;
  }
  op->reason = NULL;
  op_done(ar, op);
}

/* AUTH's and SELECT's reply: a refusal drops the connection, and every op fails "auth". */
static void on_setup(redisAsyncContext *ac, void *r, void *priv) {
  itnio_aredis *ar = (itnio_aredis *)ac->data;
  redisReply *reply = (redisReply *)r;
  (void)priv;
  if (reply && reply->type != REDIS_REPLY_ERROR) return;
  if (reply) {
    ar->failing = "auth";
    snprintf(ar->failing_message, sizeof ar->failing_message, "%.*s",
             (int)(reply->len < 190 ? reply->len : 190), reply->str);
    redisAsyncDisconnect(ac);
  }
}

static void on_connect(const redisAsyncContext *ac, int status) {
  itnio_aredis *ar = (itnio_aredis *)ac->data;
  if (status == REDIS_OK) ar->connected = 1;
}

void itnio_aredis_init(itnio_aredis *ar, itnio_events *ev) {
  memset(ar, 0, sizeof *ar);
  ar->ev = ev;
  ar->fd = -1;
}

/* Drops the connection (its pending ops fail with reason and message). */
static void drop(itnio_aredis *ar, const char *reason, const char *msg) {
  if (!ar->ac) return;
  ar->failing = reason;
  snprintf(ar->failing_message, sizeof ar->failing_message, "%s", msg);
  redisAsyncFree(ac_of(ar));   /* runs every pending callback (reply NULL), then ev_cleanup */
  ar->ac = NULL;
  ar->failing = NULL;
}

void itnio_aredis_release(itnio_aredis *ar) {
  drop(ar, "closed", "the multi handle was closed");
  for (size_t i = 0; i < ar->nops; i++) itnio_rv_free(&ar->ops[i].reply);
  free(ar->ops);
  free(ar->free_ids);
  free(ar->done);
  ar->ops = NULL;
  ar->free_ids = ar->done = NULL;
  ar->nops = ar->cap = ar->nfree = ar->ndone = ar->done_head = ar->npending = 0;
}

/* Connects to rd's server (the connection is kept for the next ops); 0 when it cannot even
 * start (then *why says it). Never blocks but for a name's lookup (give an address). */
static int open_async(itnio_aredis *ar, const itnio_redis *rd, const char **why) {
  redisAsyncContext *ac;
  if (ar->ac && ar->rd == rd) return 1;
  drop(ar, "closed", "the store moved");
  ar->rd = rd;   /* (the Multi holds its userdata: the pointer names it while it is ours) */
  ac = redisAsyncConnect(rd->host, rd->port);
  if (!ac) { *why = "no memory for a redis connection"; return 0; }
  if (ac->err) {
    snprintf(ar->failing_message, sizeof ar->failing_message, "%s", ac->errstr);
    *why = ar->failing_message;
    redisAsyncFree(ac);
    return 0;
  }
  ac->data = ar;
  ar->ac = ac;
  ar->connected = 0;
  ar->fd = ac->c.fd;
  ar->want = 0;
  itnio_events_opened(ar->ev, ar->fd);   /* a new socket, whatever its number was before */
  ac->ev.data = ar;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  ev_add_write(ar);   /* the connect completes when the socket is writable */
  if (rd->password) {
    const char *argv[3];
    size_t lens[3];
    int argc = 0;
    argv[argc] = "AUTH", lens[argc++] = 4;
    if (rd->user[0]) argv[argc] = rd->user, lens[argc] = strlen(rd->user), argc++;
    argv[argc] = rd->password, lens[argc] = strlen(rd->password), argc++;
    redisAsyncCommandArgv(ac, on_setup, NULL, argc, argv, lens);
  }
  if (rd->db) redisAsyncCommand(ac, on_setup, NULL, "SELECT %d", rd->db);
  ar->connect_timeout = rd->connect_timeout;
  ar->timeout = rd->timeout;
  return 1;
}

static int grow_ops(itnio_aredis *ar) {
  size_t n = ar->cap ? ar->cap * 2 : 16;
  void *p;
  if (!(p = realloc(ar->ops, n * sizeof *ar->ops))) return 0;
  ar->ops = (struct itnio_redis_op *)p;
  memset(ar->ops + ar->cap, 0, (n - ar->cap) * sizeof *ar->ops);
  if (!(p = realloc(ar->free_ids, n * sizeof *ar->free_ids))) return 0;
  ar->free_ids = (size_t *)p;
  if (!(p = realloc(ar->done, n * sizeof *ar->done))) return 0;
  ar->done = (size_t *)p;
  ar->cap = n;
  return 1;
}

int itnio_aredis_send(lua_State *L, itnio_aredis *ar, int rd_idx, int from, double now) {
  const itnio_redis *rd = itnio_redis_check(L, rd_idx);
  struct itnio_redis_op *op;
  const char *why = NULL;
  char *cmd = NULL;
  size_t i;
  int len = itnio_redis_format(L, from, &cmd);   /* (raises before anything is allocated) */
  if (ar->nfree == 0) {
    if (ar->nops == ar->cap && !grow_ops(ar)) { redisFreeCommand(cmd); return luaL_error(L, "itnio: not enough memory"); }
    ar->free_ids[ar->nfree++] = ar->nops++;
  }
  i = ar->free_ids[--ar->nfree];
  op = &ar->ops[i];
  op->gen = (op->gen + 1) & 0xfffff;
  op->state = OP_PENDING;
  op->reason = NULL;
  ar->npending++;
  if (!open_async(ar, rd, &why)) {
    redisFreeCommand(cmd);
    op_fail(ar, op, "connect", why);
  } else {
    op->deadline = now + ar->timeout + (ar->connected ? 0 : ar->connect_timeout);
    if (redisAsyncFormattedCommand(ac_of(ar), on_reply, (void *)(((uintptr_t)op->gen << 20) | i), cmd,
                                   (size_t)len) != REDIS_OK)
      op_fail(ar, op, "closed", "the redis connection is closing");
    redisFreeCommand(cmd);
  }
  return (int)i;
}

void itnio_aredis_handle(itnio_aredis *ar, int flags) {
  if (ar->ac && (flags & CURL_CSELECT_IN)) redisAsyncHandleRead(ac_of(ar));
  if (ar->ac && (flags & CURL_CSELECT_OUT)) redisAsyncHandleWrite(ac_of(ar));
  if (ar->ac && (flags & CURL_CSELECT_ERR)) redisAsyncHandleRead(ac_of(ar));
}

void itnio_aredis_expire(itnio_aredis *ar, double now) {
  int late = 0;
  for (size_t i = 0; i < ar->nops; i++) {
    struct itnio_redis_op *op = &ar->ops[i];
    if (op->state == OP_PENDING && op->deadline <= now) {
      op_fail(ar, op, "timeout", ar->connected ? "the store did not answer in time"
                                                : "the store did not accept the connection in time");
      late = 1;
    }
  }
  if (late) drop(ar, "timeout", "the connection was dropped: an earlier command timed out");
}

double itnio_aredis_deadline(const itnio_aredis *ar) {
  double soonest = -1;
  for (size_t i = 0; i < ar->nops; i++)
    if (ar->ops[i].state == OP_PENDING && (soonest < 0 || ar->ops[i].deadline < soonest))
      soonest = ar->ops[i].deadline;
  return soonest;
}

/* The oldest done op's key and reply. It leaves the done queue only once they are pushed: a
 * raise while pushing (out of memory) leaves it there, whole, for the next take. */
int itnio_aredis_take(lua_State *L, itnio_aredis *ar, lua_Integer key_base) {
  size_t i;
  struct itnio_redis_op *op;
  int n;
  if (ar->done_head >= ar->ndone) {
    ar->done_head = ar->ndone = 0;
    return 0;
  }
  i = ar->done[ar->done_head];
  op = &ar->ops[i];
  lua_pushinteger(L, key_base + (lua_Integer)i + 1);
  if (op->reason) n = itnio_redis_failure(L, op->reason, op->message, strlen(op->message));
  else n = itnio_rv_push(L, &op->reply);
  if (n == 1) lua_pushnil(L);   /* key, value, nil | key, nil, failure */
  if (++ar->done_head == ar->ndone) ar->done_head = ar->ndone = 0;
  itnio_rv_free(&op->reply);
  op->state = OP_FREE;
  ar->free_ids[ar->nfree++] = i;
  return 3;
}
