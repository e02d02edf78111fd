/* Exec round-trip latency through the C ABI (libmoat.so): one sandbox, N
 * sequential execs of `true`, p50/p99/max in milliseconds; the C twin of
 * exec_latency.cpp. Usage: moat_bench_exec_c [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moat/moat.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  if (n < 1) n = 1;
  moat_sandbox_options o = {0};
  o.struct_size = sizeof o;
  o.ephemeral = 1;
  o.auto_remove = 1;
  moat_sandbox* sb = NULL;
  moat_error* err = NULL;
  if (moat_sandbox_create(&o, &sb, &err) != 0) {
    fprintf(stderr, "create: %s\n", moat_error_message(err));
    return 1;
  }
  const char* argv_true[] = {"true", NULL};
  moat_exec_options x = {0};
  x.struct_size = sizeof x;
  x.argv = argv_true;
  double* ms = calloc((size_t)n, sizeof *ms);
  for (int i = 0; i < n; ++i) {
    moat_exit_status st;
    double t0 = now_ms();
    if (moat_sandbox_exec(sb, &x, NULL, -1, &st, &err) != 0 || st.code != 0) {
      fprintf(stderr, "exec failed\n");
      return 1;
    }
    ms[i] = now_ms() - t0;
  }
  moat_sandbox_stop(sb, 0, NULL);
  moat_sandbox_close(sb);
  qsort(ms, (size_t)n, sizeof *ms, by_value);
  int p99 = (int)(0.99 * n) < n ? (int)(0.99 * n) : n - 1;
  printf("C ABI exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms\n", n, ms[n / 2], ms[p99], ms[n - 1]);
  free(ms);
  return 0;
}
