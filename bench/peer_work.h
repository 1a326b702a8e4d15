/* The work a client does per request, done in C for the bench's peers (seq_peer.c,
 * multi_peer.c, build_peer.c), so that a ceiling does the same work as we do:
 *
 *   peer_body(out, cap, &task)   writes the body of bench/task.lua's task with snprintf, every
 *                                value from the struct (nothing folded at compile time)
 *   peer_sign(&s)                the Timestamp and Sign headers, signed anew when the second
 *                                changes (MD5 through OpenSSL, as the client signs)
 *   peer_answer_ok(body)         HTTP 200 is checked by the caller; the body must hold "code":0
 *
 * The body is byte for byte what itnio.core writes for that task (bench/run checks it). */
#ifndef PEER_WORK_H
#define PEER_WORK_H

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* bench/task.lua's task, as values a program reads at run time. */
struct peer_task {
  long key_id, interval, num, type;
  long source1, gender1, hangup1, fbpush1, okpush1, okpushtime1, failpush1, ringpush1, toseat1;
  const char *text1, *lan1, *sms1, *sender1, *fbvalue1;
  double rate1;
  long source2, hangup2, toseat2, group2, outctl2, calloutrate2, seattype2, delay2;
  const char *vfid2, *seatkey2;
};

static inline struct peer_task peer_task_default(void) {
  struct peer_task t = {
    299, 30, 1, 0,
    3, 2, 1, 1, 1, 30, 1, 0, 0,
    "Hello, this is a reminder: your parcel arrives tomorrow between 9 and 12.", "en-US",
    "Your parcel ${text1} arrives ${text2}. Reply 1 to confirm.", "ITNIO", "1",
    1.0,
    1, 0, 1, 1000038, 1, 1, 2, 0,
    "120250811103439c1901f4c53b691b419ad8a143b.wav", "1",
  };
  return t;
}

/* The body's length, written into out (cap bytes), or 0 when it does not fit. */
static inline size_t peer_body(char *out, size_t cap, const struct peer_task *t) {
  int n = snprintf(out, cap,
    "{\"keyId\":%ld,\"recallInterval\":%ld,\"recallNum\":%ld,\"recallType\":%ld,\"nodeList\":["
    "{\"source\":%ld,\"text\":\"%s\",\"lan\":\"%s\",\"speakingRate\":%g,\"ssmlGender\":%ld,"
    "\"hangUpSms\":%ld,\"smsContent\":\"%s\",\"senderId\":\"%s\",\"feedbackPush\":%ld,"
    "\"feedbackValue\":\"%s\",\"successPush\":%ld,\"successPushTime\":%ld,\"failedPush\":%ld,"
    "\"ringPush\":%ld,\"toSeat\":%ld},"
    "{\"source\":%ld,\"voiceFileId\":\"%s\",\"hangUpSms\":%ld,\"toSeat\":%ld,\"sipGroupId\":%ld,"
    "\"outboundControl\":%ld,\"calloutRate\":%ld,\"toSeatType\":%ld,\"toSeatKey\":\"%s\","
    "\"delayTransfer\":%ld}]}",
    t->key_id, t->interval, t->num, t->type,
    t->source1, t->text1, t->lan1, t->rate1, t->gender1, t->hangup1, t->sms1, t->sender1,
    t->fbpush1, t->fbvalue1, t->okpush1, t->okpushtime1, t->failpush1, t->ringpush1, t->toseat1,
    t->source2, t->vfid2, t->hangup2, t->toseat2, t->group2, t->outctl2, t->calloutrate2,
    t->seattype2, t->seatkey2, t->delay2);
  return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}

/* The signature of the current second, and the header lines libcurl sends it in. The lines
 * of past seconds are kept until peer_signer_free: a transfer in flight may still use them. */
struct peer_signer {
  const char *key, *secret;
  time_t sec;
  struct curl_slist *lines;
  struct curl_slist *old[4096];
  size_t nold;
};

static inline void peer_signer_free(struct peer_signer *s) {
  size_t i;
  for (i = 0; i < s->nold; i++) curl_slist_free_all(s->old[i]);
  curl_slist_free_all(s->lines);
  s->nold = 0;
  s->lines = NULL;
}

/* The header lines for now (the caller's copy is the struct's; a new second makes new ones). */
static inline struct curl_slist *peer_sign(struct peer_signer *s) {
  time_t now = time(NULL);
  char text[512], ts[32], hex[33];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0, i;
  struct curl_slist *l = NULL;
  if (s->lines && now == s->sec) return s->lines;
  snprintf(ts, sizeof ts, "%lld", (long long)now);
  snprintf(text, sizeof text, "%s%s%s", s->key, s->secret, ts);
  if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_md5(), NULL)) return NULL;
  for (i = 0; i < mdlen && i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  l = curl_slist_append(l, "Content-Type: application/json;charset=UTF-8");
  snprintf(text, sizeof text, "Api-Key: %s", s->key);
  l = curl_slist_append(l, text);
  snprintf(text, sizeof text, "Timestamp: %s", ts);
  l = curl_slist_append(l, text);
  snprintf(text, sizeof text, "Sign: %s", hex);
  l = curl_slist_append(l, text);
  l = curl_slist_append(l, "Expect:");
  if (s->lines) {
    if (s->nold == sizeof s->old / sizeof s->old[0]) return NULL;   /* (a run of over an hour) */
    s->old[s->nold++] = s->lines;
  }
  s->lines = l;
  s->sec = now;
  return l;
}

/* "code":0, and not "code":01.. or "code":0.5 */
static inline int peer_answer_ok(const char *body) {
  const char *p = body;
  while ((p = strstr(p, "\"code\":0")) != NULL) {
    char next = p[8];
    if (!(next >= '0' && next <= '9') && next != '.' && next != 'e' && next != 'E') return 1;
    p += 8;
  }
  return 0;
}

#endif
