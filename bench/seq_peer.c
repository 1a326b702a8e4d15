/* The ceiling for a one-at-a-time libcurl client: N POSTs in a row on one easy handle (one
 * keep-alive connection).
 *
 *   seq_peer URL BODYFILE APIKEY TIMESTAMP SIGN N     the transport floor: one prepared body,
 *                                                     the headers signed once by the caller
 *   seq_peer --same-work URL APIKEY SECRET N          the same-work ceiling: the body written
 *                                                     anew and signed once a second, as the
 *                                                     client does (bench/peer_work.h)
 *
 * Prints "seq_peer_result requests ok failed seconds" (ok: HTTP 200 with "code":0 in the
 * body). bench/run compiles it with cc and runs it next to bench/sequential.lua. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "peer_work.h"

typedef struct { char *p; size_t len, cap; } buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  buf *b = (buf *)ud;
  size_t n = size * nmemb;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, long *len) {
  FILE *f = fopen(path, "rb");
  char *p;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  p = malloc((size_t)*len + 1);
  if (p && fread(p, 1, (size_t)*len, f) != (size_t)*len) { free(p); p = NULL; }
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  char line[4][512], url[1024];
  struct curl_slist *hdrs = NULL;
  buf out = { NULL, 0, 0 };
  long blen = 0, n, ok = 0, failed = 0, i;
  char *body, fresh[2048];
  CURL *e;
  double t0;
  int same_work = argc == 6 && strcmp(argv[1], "--same-work") == 0;
  struct peer_signer signer;
  struct peer_task task = peer_task_default();
  memset(&signer, 0, sizeof signer);
  if (same_work) {
    signer.key = argv[3];
    signer.secret = argv[4];
    n = atol(argv[5]);
    argv[1] = argv[2];   /* the URL, where the floor has it */
    argv[3] = argv[4] = argv[5] = "";
    body = strdup("");
  } else if (argc == 7) {
    if (!(body = slurp(argv[2], &blen))) { perror(argv[2]); return 1; }
    n = atol(argv[6]);
  } else {
    fprintf(stderr, "usage: seq_peer URL BODYFILE APIKEY TIMESTAMP SIGN N\n"
                    "       seq_peer --same-work URL APIKEY SECRET N\n");
    return 2;
  }
  snprintf(url, sizeof url, "%s/voice/recallFlow/update", argv[1]);
  snprintf(line[0], sizeof line[0], "Content-Type: application/json;charset=UTF-8");
  snprintf(line[1], sizeof line[1], "Api-Key: %s", argv[3]);
  snprintf(line[2], sizeof line[2], "Timestamp: %s", argv[4]);
  snprintf(line[3], sizeof line[3], "Sign: %s", argv[5]);
  for (i = 0; i < 4; i++) hdrs = curl_slist_append(hdrs, line[i]);
  hdrs = curl_slist_append(hdrs, "Expect:");
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(e = curl_easy_init())) return 1;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&out);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  t0 = now();
  for (i = 0; i < n; i++) {
    long status = 0;
    CURLcode rc;
    out.len = 0;
    if (same_work) {   /* the client's work for this request */
      size_t flen = peer_body(fresh, sizeof fresh, &task);
      struct curl_slist *lines = peer_sign(&signer);
      if (!flen || !lines) { fprintf(stderr, "seq_peer: cannot write or sign the request\n"); return 1; }
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, fresh);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)flen);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, lines);
    }
    rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200 && out.p && peer_answer_ok(out.p)) ok++;
    else {
      if (!failed) fprintf(stderr, "seq_peer: first failure: %s, HTTP %ld\n", curl_easy_strerror(rc), status);
      failed++;
    }
  }
  printf("seq_peer_result %ld %ld %ld %.6f\n", ok + failed, ok, failed, now() - t0);
  curl_easy_cleanup(e);
  curl_slist_free_all(hdrs);
  peer_signer_free(&signer);
  curl_global_cleanup();
  free(out.p);
  free(body);
  return failed ? 1 : 0;
}
