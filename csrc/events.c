/* The multi handle's event backend: which sockets libcurl wants watched, and a wait on them.
 * epoll on Linux; poll(2) elsewhere (macOS, the BSDs), or anywhere built with
 * ITNIO_EVENTS_POLL (`make EVENTS=poll`, which make check runs the jobs' specs with).
 *
 * Both never raise and never call Lua: libcurl calls itnio_events_want from its socket
 * callback. When memory is short, epoll falls back to telling the kernel at once; poll(2)
 * cannot watch the socket, and the transfer ends at its timeout. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "itnio.h"

#ifdef ITNIO_EVENTS_POLL
#include <poll.h>
#else
#include <sys/epoll.h>
#endif

/* Grows an array of `size`-byte items to hold at least need (doubling); 0 when memory is
 * short. New items are zeroed. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 64;
  char *q;
  if (need <= *cap) return 1;
  while (n < need) n *= 2;
  q = (char *)realloc(*p, n * size);
  if (!q) return 0;
  memset(q + *cap * size, 0, (n - *cap) * size);
  *p = q;
  *cap = n;
  return 1;
}

#ifndef ITNIO_EVENTS_POLL
/* ---- epoll ----
 * libcurl changes its wish for a socket two or three times per request (forget the pooled
 * connection as a transfer ends, then want it again for the next request on it, for writing,
 * then reading). epoll hears of a wish only when it differs from what epoll has, right before
 * it is asked; and a socket libcurl forgets stays in the set until it gives an event nobody
 * wants (then it leaves, once) or it closes (the kernel takes it out). So a request on a
 * kept-alive connection costs no epoll_ctl at all. A descriptor number can come back for a new
 * socket once the old one closed: libcurl opens every socket through itnio_events_opened,
 * which marks the number as not in the set. */

const char itnio_events_backend[] = "epoll";

struct itnio_watch {
  unsigned char want, have;   /* bits: 1 readable, 2 writable; 0 none: what libcurl wants,
                                 what epoll has (have 0: the socket is not in the set) */
  unsigned char dirty;        /* in the dirty list */
};

int itnio_events_open(itnio_events *ev) {
  memset(ev, 0, sizeof *ev);
  ev->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (ev->epfd < 0) return errno;
  ev->open = 1;
  return 0;
}

void itnio_events_close(itnio_events *ev) {
  if (ev->open) close(ev->epfd);
  ev->open = 0;
  ev->epfd = -1;
  free(ev->w);
  free(ev->dirty);
  ev->w = NULL;
  ev->dirty = NULL;
  ev->nw = ev->ndirty = 0;
}

/* Tells epoll the wish for fd (want 0: out of the set); in is whether epoll has it. Either
 * way it ends as asked: a MOD of a socket epoll lost (it closed, its number reused) adds it,
 * an ADD of one it has modifies it. */
static void watch_now(itnio_events *ev, int fd, unsigned want, int in) {
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.data.fd = fd;
  if (want & 1) e.events |= EPOLLIN;
  if (want & 2) e.events |= EPOLLOUT;
  if (!want) {
    epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);   /* (an fd already closed: nothing to do) */
  } else if (in) {
    if (epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e) != 0 && errno == ENOENT)
      epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e);
  } else if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) != 0 && errno == EEXIST) {
    epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e);
  }
}

/* Room for socket fd in the tables (0 when memory is short). */
static int track(itnio_events *ev, int fd) {
  size_t cap = ev->nw;
  if ((size_t)fd < ev->nw) return 1;
  if (!grow((void **)&ev->dirty, &cap, (size_t)fd + 1, sizeof *ev->dirty)) return 0;
  cap = ev->nw;
  if (!grow((void **)&ev->w, &cap, (size_t)fd + 1, sizeof *ev->w)) return 0;
  ev->nw = cap;
  return 1;
}

void itnio_events_want(itnio_events *ev, int fd, unsigned want) {
  struct itnio_watch *w;
  if (!ev->open || fd < 0) return;
  if (!track(ev, fd)) {   /* no memory for the tables: straight to epoll */
    watch_now(ev, fd, want, 1);
    return;
  }
  w = &ev->w[fd];
  w->want = (unsigned char)want;
  if (!w->dirty) {
    w->dirty = 1;
    ev->dirty[ev->ndirty++] = fd;
  }
}

void itnio_events_opened(itnio_events *ev, int fd) {
  if (!ev || !ev->open || fd < 0) return;
  if ((size_t)fd < ev->nw) ev->w[fd].have = 0;   /* a new socket: in no epoll set yet */
}

/* Writes the changed wishes to epoll; called before every epoll_wait. A socket libcurl
 * forgot stays in the set as it is. */
static void flush(itnio_events *ev) {
  size_t i;
  for (i = 0; i < ev->ndirty; i++) {
    int fd = ev->dirty[i];
    struct itnio_watch *w = &ev->w[fd];
    w->dirty = 0;
    if (!w->want || w->want == w->have) continue;
    watch_now(ev, fd, w->want, w->have != 0);
    w->have = w->want;
  }
  ev->ndirty = 0;
}

void itnio_events_sync(itnio_events *ev) {
  if (ev->open) flush(ev);
}

int itnio_events_fd(const itnio_events *ev) {
  return ev->open ? ev->epfd : -1;
}

int itnio_events_wait(itnio_events *ev, int ms, itnio_ready *out, int max) {
  struct epoll_event e[64];
  int n, i, got;
  if (!ev->open) { errno = EBADF; return -1; }
  if (max > 64) max = 64;
  flush(ev);
  n = epoll_wait(ev->epfd, e, max, ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  for (i = 0, got = 0; i < n; i++) {
    int flags = 0, fd = e[i].data.fd;
    if ((size_t)fd < ev->nw && !ev->w[fd].want) {   /* a socket libcurl forgot: it leaves now */
      epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
      ev->w[fd].have = 0;
      continue;
    }
    if (e[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
    if (e[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (e[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
    out[got].fd = fd;
    out[got].flags = flags;
    got++;
  }
  return got;
}

#else
/* ---- poll(2) ----
 * The watched sockets in one pollfd array, each socket's place kept in pos[fd], so a wish
 * costs O(1) and a wait one poll over the sockets in flight. */

const char itnio_events_backend[] = "poll";

int itnio_events_open(itnio_events *ev) {
  memset(ev, 0, sizeof *ev);
  ev->open = 1;
  return 0;
}

void itnio_events_close(itnio_events *ev) {
  ev->open = 0;
  free(ev->pfd);
  free(ev->pos);
  ev->pfd = NULL;
  ev->pos = NULL;
  ev->npfd = ev->cappfd = ev->npos = 0;
}

void itnio_events_want(itnio_events *ev, int fd, unsigned want) {
  int i;
  if (!ev->open || fd < 0) return;
  if ((size_t)fd >= ev->npos && !grow((void **)&ev->pos, &ev->npos, (size_t)fd + 1, sizeof *ev->pos))
    return;
  i = ev->pos[fd] - 1;
  if (!want) {
    if (i >= 0) {   /* the last one takes its place */
      ev->pfd[i] = ev->pfd[--ev->npfd];
      ev->pos[ev->pfd[i].fd] = i + 1;
      ev->pos[fd] = 0;
    }
    return;
  }
  if (i < 0) {
    if (!grow((void **)&ev->pfd, &ev->cappfd, ev->npfd + 1, sizeof *ev->pfd)) return;
    i = (int)ev->npfd++;
    ev->pfd[i].fd = fd;
    ev->pos[fd] = i + 1;
  }
  ev->pfd[i].events = (short)((want & 1 ? POLLIN : 0) | (want & 2 ? POLLOUT : 0));
  ev->pfd[i].revents = 0;
}

void itnio_events_opened(itnio_events *ev, int fd) {
  (void)ev;
  (void)fd;   /* poll(2) is told every socket it watches at every wait */
}

void itnio_events_sync(itnio_events *ev) {
  (void)ev;   /* nothing is kept anywhere else */
}

int itnio_events_fd(const itnio_events *ev) {
  (void)ev;
  return -1;   /* poll(2) has no descriptor that stands for the set */
}

int itnio_events_wait(itnio_events *ev, int ms, itnio_ready *out, int max) {
  int n, got = 0;
  size_t i;
  if (!ev->open) { errno = EBADF; return -1; }
  n = poll(ev->pfd, (nfds_t)ev->npfd, ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  for (i = 0; i < ev->npfd && got < max && n > 0; i++) {
    short r = ev->pfd[i].revents;
    int flags = 0;
    if (!r) continue;
    n--;
    if (r & (POLLIN | POLLHUP)) flags |= CURL_CSELECT_IN;
    if (r & POLLOUT) flags |= CURL_CSELECT_OUT;
    if (r & (POLLERR | POLLNVAL)) flags |= CURL_CSELECT_ERR;
    out[got].fd = ev->pfd[i].fd;
    out[got].flags = flags;
    got++;
  }
  return got;
}
#endif
