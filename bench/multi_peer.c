/* multi_peer: the ceiling for a libcurl client of POST /voice/recallFlow/update.
 *
 *   multi_peer URL BODYFILE APIKEY TIMESTAMP SIGN N C       the transport floor
 *   multi_peer --same-work URL APIKEY SECRET N C            the same-work ceiling
 *
 * Sends N POSTs at concurrency C through one curl multi handle: C easy handles, each re-added
 * as soon as it finishes, keep-alive connections reused (at most C in all). The floor resends
 * one prepared, signed request (bench/prepare.lua writes the body and prints TIMESTAMP SIGN);
 * the same-work ceiling does what the client does per request (bench/peer_work.h): writes
 * the body anew, signs once a second, and checks the answer. An answer is ok
 * when it is HTTP 200 and its body holds "code":0. Wall time (CLOCK_MONOTONIC) runs from the
 * first add to the last done. Prints one line "multi_peer_result requests ok failed seconds",
 * then "multi_peer_cpu_us X": this process's CPU time (clock()) per request over the same
 * span, and, on stderr, the first failure. Exits 0 when every step of libcurl worked (failed
 * requests are counted, not fatal); 2 on bad usage; 1 on any other error.
 *
 * Built by bench/run: cc -O2 -Wall -Wextra bench/multi_peer.c $(pkg-config --cflags --libs libcurl libcrypto)
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peer_work.h"

#define ANSWER_CAP 4096 /* the sandbox answers in a few hundred bytes; the rest is dropped */

struct slot {
  CURL *easy;
  size_t len;               /* bytes kept in buf */
  char buf[ANSWER_CAP + 1]; /* NUL-terminated */
  char body[2048];          /* --same-work: this request's body */
};

static const char *prog = "multi_peer";

static void fail(const char *what, const char *why) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, why);
  exit(1);
}

static void check_easy(CURLcode rc, const char *what) {
  if (rc != CURLE_OK) fail(what, curl_easy_strerror(rc));
}

static void check_multi(CURLMcode rc, const char *what) {
  if (rc != CURLM_OK) fail(what, curl_multi_strerror(rc));
}

static double now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) fail("clock_gettime", strerror(errno));
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_count(const char *s, const char *name) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 100000000L) {
    fprintf(stderr, "%s: %s must be a whole number from 1 to 100000000, got '%s'\n", prog, name, s);
    exit(2);
  }
  return v;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *data = NULL;
  size_t cap = 0, n = 0;
  if (!f) fail(path, strerror(errno));
  for (;;) {
    size_t got;
    if (n == cap) {
      char *grown;
      cap = cap ? cap * 2 : 65536;
      grown = realloc(data, cap);
      if (!grown) fail(path, "out of memory");
      data = grown;
    }
    got = fread(data + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) fail(path, "read error");
  if (fclose(f) != 0) fail(path, strerror(errno));
  *len = n;
  return data;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct slot *s = userdata;
  size_t n = size * nmemb, room = ANSWER_CAP - s->len;
  size_t keep = n < room ? n : room;
  memcpy(s->buf + s->len, ptr, keep);
  s->len += keep;
  s->buf[s->len] = '\0';
  return n;
}

#define SETOPT(easy, opt, val) check_easy(curl_easy_setopt((easy), (opt), (val)), #opt)

static int same_work;
static struct peer_signer signer;
static struct peer_task task;

/* --same-work: the client's work for one request, before its easy handle is (re)added. */
static void prepare(struct slot *s) {
  size_t n;
  struct curl_slist *lines;
  if (!same_work) return;
  if (!(n = peer_body(s->body, sizeof s->body, &task))) fail("peer_body", "the body does not fit");
  if (!(lines = peer_sign(&signer))) fail("peer_sign", "MD5 failed");
  SETOPT(s->easy, CURLOPT_POSTFIELDS, s->body);
  SETOPT(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  SETOPT(s->easy, CURLOPT_HTTPHEADER, lines);
}

int main(int argc, char **argv) {
  const char *url, *body_path, *api_key, *timestamp, *sign;
  long n, c, started = 0, done = 0, ok = 0, failed = 0, i;
  size_t body_len;
  char *body, *line, first_failure[512] = "";
  struct curl_slist *headers = NULL, *grown;
  struct slot *slots;
  CURLM *multi;
  double t0, t1 = 0;
  clock_t cpu0, cpu1 = 0;
  int running = 0;

  if (argc == 7 && strcmp(argv[1], "--same-work") == 0) {
    same_work = 1;
    url = argv[2], signer.key = argv[3], signer.secret = argv[4];
    n = parse_count(argv[5], "N");
    c = parse_count(argv[6], "C");
    task = peer_task_default();
    body_path = api_key = timestamp = sign = "";
    body = strdup("");
    body_len = 0;
  } else if (argc == 8) {
    url = argv[1], body_path = argv[2], api_key = argv[3], timestamp = argv[4], sign = argv[5];
    n = parse_count(argv[6], "N");
    c = parse_count(argv[7], "C");
    body = read_file(body_path, &body_len);
  } else {
    fprintf(stderr, "usage: %s URL BODYFILE APIKEY TIMESTAMP SIGN N C\n"
                    "       %s --same-work URL APIKEY SECRET N C\n", argv[0], argv[0]);
    return 2;
  }
  if (c > n) c = n;

  check_easy(curl_global_init(CURL_GLOBAL_DEFAULT), "curl_global_init");
  {
    const char *fixed[] = { "Content-Type: application/json;charset=UTF-8", "Expect:" };
    const char *names[] = { "Api-Key", "Timestamp", "Sign" };
    const char *values[] = { api_key, timestamp, sign };
    for (i = 0; i < 5; i++) {
      if (i < 2) {
        line = strdup(fixed[i]);
      } else {
        size_t len = strlen(names[i - 2]) + strlen(values[i - 2]) + 3;
        line = malloc(len);
        if (line) snprintf(line, len, "%s: %s", names[i - 2], values[i - 2]);
      }
      if (!line) fail("headers", "out of memory");
      grown = curl_slist_append(headers, line); /* copies line */
      free(line);
      if (!grown) fail("curl_slist_append", "out of memory");
      headers = grown;
    }
  }

  multi = curl_multi_init();
  if (!multi) fail("curl_multi_init", "failed");
  check_multi(curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c), "CURLMOPT_MAX_TOTAL_CONNECTIONS");
  check_multi(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c), "CURLMOPT_MAXCONNECTS");

  slots = calloc((size_t)c, sizeof *slots);
  if (!slots) fail("slots", "out of memory");
  for (i = 0; i < c; i++) {
    CURL *e = curl_easy_init();
    if (!e) fail("curl_easy_init", "failed");
    slots[i].easy = e;
    SETOPT(e, CURLOPT_URL, url);
    SETOPT(e, CURLOPT_POST, 1L);
    SETOPT(e, CURLOPT_POSTFIELDS, body); /* not copied: body outlives every transfer */
    SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    SETOPT(e, CURLOPT_HTTPHEADER, headers);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(e, CURLOPT_WRITEDATA, &slots[i]);
    SETOPT(e, CURLOPT_PRIVATE, &slots[i]);
    SETOPT(e, CURLOPT_PIPEWAIT, 1L);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    SETOPT(e, CURLOPT_TIMEOUT_MS, 60000L);
  }

  t0 = now();
  cpu0 = clock();
  for (i = 0; i < c; i++, started++) {
    prepare(&slots[i]);
    check_multi(curl_multi_add_handle(multi, slots[i].easy), "curl_multi_add_handle");
  }

  while (done < n) {
    CURLMsg *msg;
    int queued;
    check_multi(curl_multi_perform(multi, &running), "curl_multi_perform");
    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
      struct slot *s;
      CURL *e = msg->easy_handle;
      CURLcode result = msg->data.result;
      long status = 0;
      char *priv = NULL;
      if (msg->msg != CURLMSG_DONE) continue;
      check_easy(curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv), "CURLINFO_PRIVATE");
      s = (struct slot *)(void *)priv;
      if (result == CURLE_OK) check_easy(curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status), "CURLINFO_RESPONSE_CODE");
      if (result == CURLE_OK && status == 200 && peer_answer_ok(s->buf)) {
        ok++;
      } else {
        failed++;
        if (!first_failure[0]) {
          if (result != CURLE_OK)
            snprintf(first_failure, sizeof first_failure, "%s", curl_easy_strerror(result));
          else
            snprintf(first_failure, sizeof first_failure, "HTTP %ld %.400s", status, s->buf);
        }
      }
      done++;
      /* msg points into the multi handle: read nothing from it after the remove */
      check_multi(curl_multi_remove_handle(multi, e), "curl_multi_remove_handle");
      s->len = 0;
      s->buf[0] = '\0';
      if (done == n) { t1 = now(); cpu1 = clock(); }
      if (started < n) {
        prepare(s);
        check_multi(curl_multi_add_handle(multi, e), "curl_multi_add_handle");
        started++;
      }
    }
    if (done < n) check_multi(curl_multi_poll(multi, NULL, 0, 1000, NULL), "curl_multi_poll");
  }

  printf("multi_peer_result %ld %ld %ld %.6f\n", done, ok, failed, t1 - t0);
  printf("multi_peer_cpu_us %.2f\n", (double)(cpu1 - cpu0) / CLOCKS_PER_SEC * 1e6 / (double)n);
  if (first_failure[0]) fprintf(stderr, "%s: first failure: %s\n", prog, first_failure);

  for (i = 0; i < c; i++) curl_easy_cleanup(slots[i].easy); /* none is in the multi handle now */
  check_multi(curl_multi_cleanup(multi), "curl_multi_cleanup");
  curl_slist_free_all(headers);
  peer_signer_free(&signer);
  curl_global_cleanup();
  free(slots);
  free(body);
  return fflush(stdout) == 0 ? 0 : 1;
}
