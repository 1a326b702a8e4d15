/* build_peer: the C ceiling of building one request: the typical task's body written with
 * snprintf (bench/peer_work.h), as a C client that knows its task's shape would, with no
 * validation; the Sign is made once a second, as the client makes it, so it is left out of
 * a per-request cost (peer_sign would be called once in thousands of bodies).
 *
 *   build_peer ITERATIONS MAX_SECONDS REPS
 *   build_peer --print                       the body it writes (bench/run compares it to ours)
 *
 * Prints "c_snprintf median_us min_us max_us iterations" in build.lua's format: CPU time
 * (clock()) per body, the median of REPS reps of up to ITERATIONS bodies, MAX_SECONDS each. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "peer_work.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  long iterations, reps, r, i, fewest = -1;
  double max_seconds, samples[101];
  char body[2048];
  volatile size_t sink = 0;
  struct peer_task task = peer_task_default();
  if (argc == 2 && strcmp(argv[1], "--print") == 0) {   /* the body, for bench/run to compare */
    size_t n = peer_body(body, sizeof body, &task);
    return n && fwrite(body, 1, n, stdout) == n ? 0 : 1;
  }
  if (argc != 4) {
    fprintf(stderr, "usage: build_peer ITERATIONS MAX_SECONDS REPS | --print\n");
    return 2;
  }
  iterations = atol(argv[1]);
  max_seconds = atof(argv[2]);
  reps = atol(argv[3]);
  if (iterations < 1000 || reps < 1 || reps > 101) return 2;
  for (i = 0; i < 5000; i++) sink += peer_body(body, sizeof body, &task);   /* warm-up */
  for (r = 0; r < reps; r++) {
    clock_t t0 = clock();
    long done = 0;
    while (done < iterations) {
      for (i = 0; i < 1000; i++) sink += peer_body(body, sizeof body, &task);
      done += 1000;
      if ((double)(clock() - t0) / CLOCKS_PER_SEC > max_seconds) break;
    }
    samples[r] = (double)(clock() - t0) / CLOCKS_PER_SEC / (double)done * 1e6;
    if (fewest < 0 || done < fewest) fewest = done;
  }
  qsort(samples, (size_t)reps, sizeof samples[0], cmp);
  printf("c_snprintf %.3f %.3f %.3f %ld\n", samples[(reps - 1) / 2], samples[0], samples[reps - 1], fewest);
  return sink > 0 ? 0 : 1;
}
