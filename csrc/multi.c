/* Many requests at once without blocking: a userdata "itnio.Multi" that owns one libcurl
 * multi handle and every transfer on it. The Lua layer's jobs and batches run on it.
 *
 *   m = core.multi_new(opts)           same options as core.http_new
 *   id, key = m:add(method, url, header_lines, body, timeout, connect_timeout)
 *   id, key = m:add_task(method, url, header_lines, task, timeout, connect_timeout, endpoint,
 *                   passthrough)       the body encoded by the core straight into the transfer
 *   running = m:perform()              does what is ready on the sockets; never blocks
 *   id = m:next_done()                 a finished transfer's id, or nil
 *   ... = m:take(id)                   its outcome, as http:perform returns it; frees it
 *   key, ... = m:take_next()           both at once (performing first when none is done)
 *   sent = m:cancel(id)                stops a transfer (and frees it): did any byte leave?
 *   m:wait(seconds)                    blocks until a socket is ready or libcurl's own timer
 *   fd = m:fd()  s = m:timeout()       for a host's own loop: watch fd (the epoll set; nil on
 *                                      poll(2)) for reading, perform when ready or at s
 *   key = m:redis(rd, ...)             a command for the store on the handle's own connection
 *   m:count()  m:close()
 *
 * It runs libcurl's event API (curl_multi_socket_action) on an event backend of its own
 * (events.c: epoll, or poll(2)): libcurl says which sockets it wants watched and when its next
 * timer is due, and perform acts only on the sockets that are ready and the timers that are
 * due. So a poll with 1000 transfers waiting costs one wait, not a pass over every transfer
 * (curl_multi_perform's cost).
 *
 * Memory: the userdata is made (zeroed, with __gc) before anything is allocated; the slot
 * table, the finished queue and each transfer hang off it the moment they exist, so a raise
 * anywhere (a bad argument, no memory) leaks nothing, and __gc/close free whatever is left,
 * transfers in flight included. A body given as a Lua string is read in place, never copied:
 * the Multi's user value (a table) holds it, by slot, until its transfer is taken or stopped.
 * Transfers are never handed to Lua as pointers: Lua holds an integer id (slot and
 * generation), so a stale id finds nothing instead of freed memory. */
/***
 * @submodule itnio.core
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "itnio.h"

#define SLOT_COUNT  ITNIO_MULTI_SLOTS   /* transfers at once; an id is gen * SLOT_COUNT + slot + 1 */
#define IDLE_KEEP   32                       /* finished easy handles kept for reuse */
#define MAX_CACHED  256                      /* idle kept-alive connections cached */

enum { X_FREE = 0, X_RUNNING, X_DONE };

typedef struct mxfer {
  itnio_xfer  x;
  lua_Integer gen;      /* bumped each time the slot is reused */
  size_t      slot;     /* where it lives in the slot table */
  int         state;    /* X_* */
  int         queued;   /* in the finished queue (at most once) */
  int         task;     /* its body is the transfer's own (add_task): take hands it back */
  CURLcode    rc;       /* the outcome, once X_DONE */
} mxfer;

typedef struct itnio_multi {
  CURLM      *multi;
  itnio_events ev;      /* the sockets libcurl wants watched */
  double      timer_at; /* when libcurl's timer is due (monotonic seconds), or < 0: none */
  itnio_xfer  tmpl;     /* configured once; each transfer's handle is a duplicate of it */
  mxfer     **slots;    /* slot i: a transfer (any state), or NULL before its first use */
  size_t      nslots, cap;
  size_t     *free_ids; /* slots whose transfer is X_FREE or NULL, as a stack */
  size_t      nfree;
  size_t     *done;     /* finished slots, oldest first from done_head, not yet handed out */
  size_t      ndone, done_head;
  size_t      nrunning, nidle;
  itnio_membuf last_head; /* the last plain success's header block (xfer.c, push_head) */
  itnio_aredis ar;      /* the connection to the client's store, on the same backend (redis.c) */
} itnio_multi;

static void multi_release(itnio_multi *m) {
  size_t i;
  for (i = 0; i < m->nslots; i++) {
    mxfer *t = m->slots[i];
    if (!t) continue;
    if (t->state == X_RUNNING && m->multi) curl_multi_remove_handle(m->multi, t->x.easy);
    itnio_xfer_release(&t->x);
    free(t);
  }
  free(m->slots);
  free(m->free_ids);
  free(m->done);
  m->slots = NULL;
  m->free_ids = m->done = NULL;
  m->nslots = m->cap = m->nfree = m->ndone = m->done_head = m->nrunning = m->nidle = 0;
  itnio_xfer_release(&m->tmpl);
  itnio_membuf_free(&m->last_head);
  if (m->ar.ev) itnio_aredis_release(&m->ar);
  if (m->multi) curl_multi_cleanup(m->multi);   /* may still tell on_socket to forget fds */
  m->multi = NULL;
  itnio_events_close(&m->ev);
}

/* libcurl's socket callback: tells the backend what libcurl wants watched (never raises,
 * never calls Lua). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  itnio_multi *m = (itnio_multi *)userp;
  unsigned want = 0;
  (void)e;
  (void)socketp;
  if (what != CURL_POLL_REMOVE) want = (what & CURL_POLL_IN ? 1u : 0u) | (what & CURL_POLL_OUT ? 2u : 0u);
  itnio_events_want(&m->ev, (int)s, want);
  return 0;
}

/* libcurl's open-socket callback: the socket libcurl would open itself, and the event
 * backend hears of its number (a new socket is in no epoll set, whatever an old socket of
 * the same number was). Never raises, never calls Lua. */
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr) {
  itnio_multi *m = (itnio_multi *)clientp;
  curl_socket_t s = socket(addr->family, addr->socktype, addr->protocol);
  (void)purpose;
  if (s != CURL_SOCKET_BAD) itnio_events_opened(&m->ev, (int)s);
  return s;
}

/* libcurl's timer callback: remember when to call it back (-1: no timer). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  itnio_multi *m = (itnio_multi *)userp;
  (void)multi;
  m->timer_at = timeout_ms < 0 ? -1.0 : itnio_mono_now() + (double)timeout_ms / 1000.0;
  return 0;
}

static itnio_multi *check_multi(lua_State *L) {
  itnio_multi *m = (itnio_multi *)luaL_checkudata(L, 1, ITNIO_MULTI_MT);
  if (!m->multi) luaL_error(L, "itnio: the multi handle is closed");
  return m;
}

/*** Ends every transfer in flight and frees the handle; safe to call twice (and what the
 * collector does to a Multi left behind).
 * @function Multi:close */
int itnio_multi_close(lua_State *L) {
  multi_release((itnio_multi *)luaL_checkudata(L, 1, ITNIO_MULTI_MT));
  return 0;
}

int itnio_multi_tostring(lua_State *L) {
  itnio_multi *m = (itnio_multi *)luaL_checkudata(L, 1, ITNIO_MULTI_MT);
  if (m->multi) lua_pushfstring(L, "itnio.Multi (%d running)", (int)m->nrunning);
  else lua_pushliteral(L, "itnio.Multi (closed)");
  return 1;
}

static void multi_check(lua_State *L, CURLMcode rc, const char *what) {
  if (rc != CURLM_OK) luaL_error(L, "itnio: libcurl's multi handle failed in %s (%s)", what,
                                 curl_multi_strerror(rc));
}

/*** Many transfers at once on one libcurl multi handle (the jobs' and the batch's). It
 * closes itself, and every transfer in flight, when collected.
 * @type Multi */

/*** A handle that runs many requests at once without blocking (libcurl's multi interface).
 * @function multi_new
 * @tparam table opts the options of `http_new`
 * @treturn Multi
 * @raise when no file descriptor is left for its event backend, or memory is short */
int itnio_multi_new(lua_State *L) {
  itnio_multi *m;
  int err;
  luaL_checktype(L, 1, LUA_TTABLE);
  m = (itnio_multi *)itnio_newuserdata1(L, sizeof *m);
  memset(m, 0, sizeof *m);
  m->timer_at = -1.0;
  luaL_getmetatable(L, ITNIO_MULTI_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);   /* the bodies in flight, by slot + 1; [0] the last plain success's head */
  itnio_setuservalue(L, -2);
  if ((err = itnio_events_open(&m->ev)) != 0)
    return luaL_error(L, "itnio: the event backend (%s) could not open (%s)", itnio_events_backend, strerror(err));
  itnio_aredis_init(&m->ar, &m->ev);
  if (!(m->multi = curl_multi_init())) return luaL_error(L, "itnio: curl_multi_init failed");
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket), "SOCKETFUNCTION");
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m), "SOCKETDATA");
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer), "TIMERFUNCTION");
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m), "TIMERDATA");
  /* HTTP/2 streams share one connection when the server offers it over TLS. */
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX), "PIPELINING");
  /* Kept-alive connections stay cached when no transfer is added for a moment (libcurl's
   * default, 4 per transfer added, closes them all between two waves of transfers). */
  multi_check(L, curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CACHED), "MAXCONNECTS");
  itnio_xfer_configure(L, &m->tmpl, 1);
  itnio_curl_ok(L, curl_easy_setopt(m->tmpl.easy, CURLOPT_OPENSOCKETFUNCTION, on_open), "OPENSOCKETFUNCTION");
  itnio_curl_ok(L, curl_easy_setopt(m->tmpl.easy, CURLOPT_OPENSOCKETDATA, (void *)m), "OPENSOCKETDATA");
  return 1;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 16;
  void *q;
  while (n < need) n *= 2;
  if (n == *cap) return 1;
  q = realloc(*p, n * size);
  if (!q) return 0;
  *p = q;
  *cap = n;
  return 1;
}

/* The three arrays share one capacity: a slot is queued at most once as free and once as
 * finished (a recycled slot still in the finished queue is not queued again). */
static void reserve_slot(lua_State *L, itnio_multi *m) {
  size_t cap;
  if (m->nfree > 0) return;
  if ((lua_Integer)m->nslots >= SLOT_COUNT) luaL_error(L, "itnio: too many transfers at once");
  if (m->nslots < m->cap) { m->slots[m->nslots] = NULL; m->free_ids[m->nfree++] = m->nslots++; return; }
  cap = m->cap;
  if (!grow((void **)&m->slots, &cap, m->nslots + 1, sizeof *m->slots)) goto oom;
  cap = m->cap;
  if (!grow((void **)&m->free_ids, &cap, m->nslots + 1, sizeof *m->free_ids)) goto oom;
  cap = m->cap;
  if (!grow((void **)&m->done, &cap, m->nslots + 1, sizeof *m->done)) goto oom;
  m->cap = cap;
  m->slots[m->nslots] = NULL;
  m->free_ids[m->nfree++] = m->nslots++;
  return;
oom:
  luaL_error(L, "itnio: not enough memory for one more transfer");
}

static lua_Integer slot_id(const itnio_multi *m, size_t slot) {
  return m->slots[slot]->gen * SLOT_COUNT + (lua_Integer)slot + 1;
}

/* The transfer an id names, or NULL for an id that names nothing (any more). */
static mxfer *find(lua_State *L, itnio_multi *m, int idx, size_t *slot) {
  lua_Number n = luaL_checknumber(L, idx);
  lua_Integer id;
  mxfer *t;
  if (!(n >= 1 && n <= ITNIO_SAFE_INT) || n != (lua_Number)(lua_Integer)n) return NULL;
  id = (lua_Integer)n - 1;
  *slot = (size_t)(id % SLOT_COUNT);
  if (*slot >= m->nslots || !(t = m->slots[*slot])) return NULL;
  if (t->gen != id / SLOT_COUNT || t->state == X_FREE) return NULL;
  return t;
}

/* Back to X_FREE under a new generation. The struct stays in its slot for good (so the
 * generation, and with it every id handed out, stays unique); its easy handle is kept for
 * the next transfer while few are idle. */
static void recycle(itnio_multi *m, size_t slot) {
  mxfer *t = m->slots[slot];
  t->state = X_FREE;
  t->gen++;
  if (m->nidle >= IDLE_KEEP || t->x.body.cap > ITNIO_KEEP_BUF || t->x.req.cap > ITNIO_KEEP_BUF)
    itnio_xfer_release(&t->x);
  else m->nidle++;
  m->free_ids[m->nfree++] = slot;
}

/* The Multi at stack index 1 holds (value at idx) or lets go of (idx 0) the body of slot. */
static void hold_body(lua_State *L, size_t slot, int idx) {
  itnio_getuservalue(L, 1);
  if (idx) lua_pushvalue(L, idx); else lua_pushnil(L);
  lua_rawseti(L, -2, (int)slot + 1);
  lua_pop(L, 1);
}

/* The free transfer the next request takes (made, with its easy handle, when it is new). */
static mxfer *next_free(lua_State *L, itnio_multi *m, size_t *slotp) {
  size_t slot;
  mxfer *t;
  reserve_slot(L, m);
  slot = m->free_ids[m->nfree - 1];
  t = m->slots[slot];
  if (!t) {
    if (!(t = (mxfer *)calloc(1, sizeof *t))) luaL_error(L, "itnio: not enough memory for a transfer");
    m->slots[slot] = t;   /* owned from here on, in the X_FREE state */
    t->slot = slot;
  }
  if (!t->x.easy) {
    if (!(t->x.easy = curl_easy_duphandle(m->tmpl.easy)))
      luaL_error(L, "itnio: curl_easy_duphandle failed");
    m->nidle++;   /* an idle handle until the transfer is added */
    t->x.max_body = m->tmpl.max_body;
    t->x.fast = m->tmpl.fast;
    itnio_xfer_bind(L, &t->x);
    curl_easy_setopt(t->x.easy, CURLOPT_PRIVATE, (void *)t);
  }
  *slotp = slot;
  return t;
}

/* Adds the transfer whose request is set (from the arguments at 2..7); pushes its id. */
static int start(lua_State *L, itnio_multi *m, mxfer *t, size_t slot) {
  CURLMcode mc;
  /* Over TLS, wait for a connection that may multiplex (HTTP/2) rather than open one more;
   * over plain HTTP/1.1 waiting would only queue the transfers behind the first one. */
  curl_easy_setopt(t->x.easy, CURLOPT_PIPEWAIT, strncasecmp(lua_tostring(L, 3), "https:", 6) == 0 ? 1L : 0L);
  mc = curl_multi_add_handle(m->multi, t->x.easy);
  if (mc != CURLM_OK) multi_check(L, mc, "add_handle");
  t->state = X_RUNNING;
  t->rc = CURLE_OK;
  m->nfree--;
  m->nidle--;
  m->nrunning++;
  lua_pushinteger(L, slot_id(m, slot));
  lua_pushinteger(L, (lua_Integer)slot + 1);
  return 2;
}

/*** Queues a request; nothing is sent until perform.
 * @function Multi:add
 * @tparam string method GET or POST
 * @tparam string url http or https
 * @tparam {string,...} header_lines "Name: value" each, no CR, LF or NUL
 * @tparam[opt] string body the request's body (held, not copied, until its transfer ends)
 * @tparam[opt=10] number timeout seconds for the whole transfer
 * @tparam[opt=3] number connect_timeout seconds for the connect
 * @treturn int the transfer's id
 * @treturn int its key: its slot, a small number distinct among the transfers in flight */
/* m:add(method, url, header_lines, body, timeout, connect_timeout) -> id. Nothing is sent
 * here: libcurl resolves, connects and writes in perform. Bad arguments raise. */
int itnio_multi_add(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  mxfer *t = next_free(L, m, &slot);
  lua_settop(L, 7);
  itnio_xfer_request(L, &t->x, 2, ITNIO_BODY_REF);   /* raises on a bad argument: t stays X_FREE */
  hold_body(L, slot, 5);   /* libcurl reads the string in place until the transfer ends */
  t->task = 0;
  return start(L, m, t, slot);
}

/*** Queues a request whose body the core validates and writes straight into the transfer
 * (no Lua string is made for it); nothing is sent until perform.
 * @function Multi:add_task
 * @tparam string method GET or POST
 * @tparam string url http or https
 * @tparam {string,...} header_lines "Name: value" each, no CR, LF or NUL
 * @tparam table task the body, as a Lua table (read raw, as `encode` reads it)
 * @tparam number timeout seconds for the whole transfer
 * @tparam number connect_timeout seconds for the connect
 * @tparam string endpoint the endpoint whose rules the task must keep
 * @tparam boolean passthrough send unknown scalar fields
 * @treturn int the transfer's id
 * @treturn int its key, as for `add`
 * @return[2] nil
 * @treturn[2] table every broken rule, as `encode` gives them (nothing was queued) */
int itnio_multi_add_task(lua_State *L) {
  itnio_multi *m = check_multi(L);
  const itnio_endpoint *e = itnio_endpoint_find(luaL_checkstring(L, 8));
  size_t slot;
  mxfer *t;
  itnio_buf *b;
  if (!e) return luaL_argerror(L, 8, "no such endpoint");
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_settop(L, 9);
  b = itnio_encode_body(L, e, 5, lua_toboolean(L, 9), 0);   /* 10: errors or nil, 11: buffer */
  if (!b) {
    lua_pushnil(L);
    lua_pushvalue(L, 10);
    return 2;
  }
  t = next_free(L, m, &slot);
  t->x.req.len = 0;
  if (!itnio_membuf_add(&t->x.req, b->p ? b->p : "", b->len))
    return luaL_error(L, "itnio: not enough memory for a body of %d bytes", (int)b->len);
  itnio_buf_giveback(L, b, 11);   /* the body is the transfer's now: the spare goes back */
  lua_settop(L, 9);
  itnio_xfer_request(L, &t->x, 2, ITNIO_BODY_OWN);
  hold_body(L, slot, 0);
  t->task = 1;
  return start(L, m, t, slot);
}

/* Queues the transfers libcurl says have finished. */
static void harvest(itnio_multi *m) {
  int left = 0;
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    mxfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (!t || t->state != X_RUNNING) continue;
    t->rc = msg->data.result;   /* read before remove_handle frees the message */
    curl_multi_remove_handle(m->multi, t->x.easy);
    t->state = X_DONE;
    m->nrunning--;
    if (!t->queued) {
      /* The queue is a window [done_head, ndone) of distinct slots, so it never holds more
       * than cap; its end reaches cap when the caller never drains it: slide it down. */
      if (m->ndone == m->cap) {
        memmove(m->done, m->done + m->done_head, (m->ndone - m->done_head) * sizeof *m->done);
        m->ndone -= m->done_head;
        m->done_head = 0;
      }
      t->queued = 1;
      m->done[m->ndone++] = t->slot;
    }
  }
}

/* Runs libcurl's timer if it is due (new transfers start there). */
static void run_timer(lua_State *L, itnio_multi *m) {
  int running = 0;
  if (m->timer_at >= 0 && itnio_mono_now() >= m->timer_at) {
    m->timer_at = -1.0;   /* the action may set the next one */
    multi_check(L, curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running), "socket_action");
  }
}

/*** Does what the sockets have ready, without waiting.
 * @function Multi:perform
 * @treturn int the transfers still running */
/* m:perform() -> running. Acts on libcurl's timer if it is due and on the sockets that are
 * ready, without waiting; finished transfers queue up for next_done. The timer goes first:
 * a new transfer that takes over a kept-alive connection then changes its watch before the
 * backend next waits, and epoll hears of it once. */
int itnio_multi_perform(lua_State *L) {
  itnio_multi *m = check_multi(L);
  itnio_ready ready[64];
  int n, i, running = 0, rounds = 0;
  run_timer(L, m);
  do {   /* more than 64 ready sockets: take the rest too, a bounded number of times */
    n = itnio_events_wait(&m->ev, 0, ready, 64);
    for (i = 0; i < n; i++) {
      if (ready[i].fd == m->ar.fd) { itnio_aredis_handle(&m->ar, ready[i].flags); continue; }
      multi_check(L, curl_multi_socket_action(m->multi, ready[i].fd, ready[i].flags, &running), "socket_action");
    }
  } while (n == 64 && ++rounds < 16);
  run_timer(L, m);
  harvest(m);
  if (m->ar.npending) itnio_aredis_expire(&m->ar, itnio_mono_now());
  itnio_events_sync(&m->ev);   /* (a host may wait on the set itself: Multi:fd) */
  lua_pushinteger(L, (lua_Integer)m->nrunning);
  return 1;
}

/*** The id of a finished transfer not handed out yet.
 * @function Multi:next_done
 * @treturn int|nil */
/* m:next_done() -> the id of the oldest finished transfer not handed out yet, or nil. */
static mxfer *oldest_done(itnio_multi *m, size_t *slotp);

int itnio_multi_next_done(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  if (oldest_done(m, &slot)) lua_pushinteger(L, slot_id(m, slot)); else lua_pushnil(L);
  return 1;
}

/*** A finished transfer's outcome, as Http:perform gives it; frees the transfer.
 * @function Multi:take
 * @tparam int id the transfer's id, from next_done
 * @treturn table the answer, as `Http:perform` gives it (a plain success as one, with the
 * handle's `fast` option)
 * @return[2] nil
 * @treturn[2] table `{ reason, code, message, sent, answered }` when no answer came
 * @treturn[2] string for a transfer of `add_task` whose outcome is not a plain success, the
 * body it sent (the third value after an answer too: nil, then the body)
 * @raise when id is not a finished transfer */
/* Pushes the outcome of finished transfer t (in slot) as take gives it, frees it; the count. */
static int take(lua_State *L, itnio_multi *m, mxfer *t, size_t slot) {
  int n, plain;
  n = itnio_xfer_finish(L, &t->x, t->rc, &m->last_head, 1, &plain);
  hold_body(L, slot, 0);   /* (balanced: the outcome stays on top) */
  if (t->task && !plain) {   /* the exact bytes it sent: a retry sends them again */
    if (n == 1) lua_pushnil(L);
    lua_pushlstring(L, t->x.req.p ? t->x.req.p : "", t->x.req.len);
    n = 3;
  }
  recycle(m, slot);
  return n;
}

int itnio_multi_take(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  mxfer *t = find(L, m, 2, &slot);
  if (!t || t->state != X_DONE) return luaL_argerror(L, 2, "not a finished transfer");
  lua_settop(L, 2);
  return take(L, m, t, slot);
}

/*** The oldest finished transfer, taken (next_done and take in one): its key, then what take
 * gives; when none has finished, it does what the sockets have ready first (as perform), and
 * gives nil when still none has.
 * @function Multi:take_next
 * @treturn int|nil the transfer's key (its slot, as add gives it)
 * @treturn table|nil the answer (or nil, then the failure), as take gives them
 * @treturn table|nil the failure
 * @treturn string|nil the body of an add_task transfer that is not a plain success
 * (a command of `Multi:redis` comes out the same way: its key, then its reply, or nil and
 * its failure) */
static mxfer *oldest_done(itnio_multi *m, size_t *slotp) {
  while (m->done_head < m->ndone) {
    size_t slot = m->done[m->done_head++];
    mxfer *t = m->slots[slot];
    if (t) t->queued = 0;
    if (t && t->state == X_DONE) {
      if (m->done_head == m->ndone) m->done_head = m->ndone = 0;
      *slotp = slot;
      return t;
    }
  }
  m->done_head = m->ndone = 0;
  return NULL;
}

int itnio_multi_take_next(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  mxfer *t;
  int n;
  lua_settop(L, 1);
  if ((n = itnio_aredis_take(L, &m->ar, SLOT_COUNT)) != 0) return n;
  if (!(t = oldest_done(m, &slot))) {
    itnio_multi_perform(L);
    lua_settop(L, 1);
    if ((n = itnio_aredis_take(L, &m->ar, SLOT_COUNT)) != 0) return n;
    if (!(t = oldest_done(m, &slot))) {
      lua_pushnil(L);
      return 1;
    }
  }
  lua_settop(L, 1);
  lua_pushinteger(L, (lua_Integer)slot + 1);
  n = take(L, m, t, slot);
  if (n == 1) { lua_pushnil(L); n = 2; }
  return n + 1;
}

/*** Stops a transfer and frees it.
 * @function Multi:cancel
 * @tparam int id the transfer's id
 * @treturn boolean|nil whether any byte of it left; nil for an id that names nothing */
/* m:cancel(id) -> sent. Stops a running transfer (or drops a finished one) and frees it;
 * sent says whether any byte of the request left. An unknown id returns nil. */
int itnio_multi_cancel(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  mxfer *t = find(L, m, 2, &slot);
  if (!t) { lua_pushnil(L); return 1; }
  if (t->state == X_RUNNING) {
    curl_multi_remove_handle(m->multi, t->x.easy);
    m->nrunning--;
  }
  curl_easy_setopt(t->x.easy, CURLOPT_POSTFIELDS, NULL);
  hold_body(L, slot, 0);
  lua_pushboolean(L, itnio_xfer_sent(&t->x));
  /* The connection of a cancelled transfer is closed by libcurl, never reused mid-answer. */
  recycle(m, slot);
  return 1;
}

/*** Waits until a socket is ready, libcurl's timer is due, or the seconds pass.
 * @function Multi:wait
 * @tparam number seconds the most to wait, 0 to 86400 */
/* m:wait(seconds): blocks until a socket of the transfers is ready, libcurl's own timer
 * is due, or the time passes (0 returns at once). It only waits: perform acts. */
/* The seconds, at most s, until perform has work that needs no socket: libcurl's timer, a
 * store command's deadline, or a store reply waiting to be taken (0). */
static double due_within(itnio_multi *m, double s) {
  if (m->timer_at >= 0) {
    double due = m->timer_at - itnio_mono_now();
    if (due < s) s = due > 0 ? due : 0;
  }
  if (m->ar.ndone > m->ar.done_head) return 0;
  if (m->ar.npending) {   /* a command's deadline */
    double at = itnio_aredis_deadline(&m->ar), due = at - itnio_mono_now();
    if (at >= 0 && due < s) s = due > 0 ? due : 0;
  }
  return s;
}

int itnio_multi_wait(lua_State *L) {
  itnio_multi *m = check_multi(L);
  lua_Number s = luaL_checknumber(L, 2);
  itnio_ready one;
  int ms;
  if (!(s >= 0 && s <= 86400)) return luaL_argerror(L, 2, "seconds must be from 0 to 86400");
  s = due_within(m, s);
  ms = (int)(s * 1000.0 + 0.999);
  if (ms > 0 && itnio_events_wait(&m->ev, ms, &one, 1) < 0)
    return luaL_error(L, "itnio: waiting on the sockets failed (%s)", strerror(errno));
  return 0;
}

/*** The descriptor a host's event loop can watch for the multi handle: readable when one of
 * its sockets (transfers, the store's connection) is ready. The epoll set, told of every
 * wish before this returns and at the end of every perform; nil where the backend has none
 * (poll(2)). The host then calls perform (the client's poll) when it is readable, and at its
 * timeout.
 * @function Multi:fd
 * @treturn int|nil the descriptor */
int itnio_multi_fd(lua_State *L) {
  itnio_multi *m = check_multi(L);
  int fd;
  itnio_events_sync(&m->ev);
  fd = itnio_events_fd(&m->ev);
  if (fd < 0) lua_pushnil(L); else lua_pushinteger(L, fd);
  return 1;
}

/*** The seconds until perform has work no socket brings (libcurl's own timer, a store
 * command's deadline, a reply or a finished transfer waiting to be taken: 0), or nil when
 * nothing waits on time.
 * @function Multi:timeout
 * @treturn number|nil seconds */
int itnio_multi_timeout(lua_State *L) {
  itnio_multi *m = check_multi(L);
  size_t slot;
  double s = oldest_done(m, &slot) ? 0 : due_within(m, HUGE_VAL);
  if (s == HUGE_VAL) lua_pushnil(L); else lua_pushnumber(L, s);
  return 1;
}

/*** Queues a command for the client's store on the multi handle's own connection to that
 * Redis (made on the first command, AUTH and SELECT first; kept): nothing waits for it. Its
 * reply comes out of `take_next` under the key this returns; one not answered within the
 * Redis' timeout (and its connect_timeout while it connects) fails "timeout", and the
 * connection is dropped. The name of a host is looked up when it connects (blocking:
 * give an address).
 * @function Multi:redis
 * @tparam Redis rd the server (`redis_new`)
 * @param ... the command and its arguments (strings or numbers)
 * @treturn int its key (above every transfer's)
 * @raise when an argument is not a string or a number */
int itnio_multi_redis(lua_State *L) {
  itnio_multi *m = check_multi(L);
  int i;
  itnio_redis_check(L, 2);
  itnio_getuservalue(L, 1);   /* the Multi holds the server it talks to: ["store"] */
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "store");
  lua_pop(L, 1);
  i = itnio_aredis_send(L, &m->ar, 2, 3, itnio_mono_now());
  lua_pushinteger(L, SLOT_COUNT + (lua_Integer)i + 1);
  return 1;
}

/*** How many transfers run.
 * @function Multi:count
 * @treturn int */
/* m:count() -> transfers running (added, not finished). */
int itnio_multi_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_multi(L)->nrunning);
  return 1;
}
