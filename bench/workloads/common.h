/* Shared helpers for the benchmark workloads: a seeded xorshift generator, thread spawning,
 * the sized free used by the "sized" variants (C23 free_sized where the allocator has it,
 * else sdallocx, else plain free), and the two reports a workload may write on stderr for the
 * runner (stdout must stay the same under every allocator; stderr is free):
 *   "phase NAME SECONDS"  the time of one phase, timed in-process (bench_now), shown as a row;
 *   "final-rss KIB"       the resident set at the end, after everything was freed. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t xr(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

static void run_threads(int n, void *(*fn)(void *)) {
    pthread_t t[256];
    for (intptr_t i = 0; i < n; i++) pthread_create(&t[i], NULL, fn, (void *)i);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

typedef void (*sized_free_fn)(void *, size_t);
static sized_free_fn sized_free_impl;
static const char *sized_free_name = "free";
static void sdallocx_adapter(void *p, size_t n) {
    static void (*sdallocx)(void *, size_t, int);
    if (!sdallocx) sdallocx = (void (*)(void *, size_t, int))dlsym(RTLD_DEFAULT, "sdallocx");
    sdallocx(p, n, 0);
}
static void plain_free(void *p, size_t n) { (void)n; free(p); }
static void pick_sized_free(void) {
    sized_free_impl = (sized_free_fn)dlsym(RTLD_DEFAULT, "free_sized");
    if (sized_free_impl) { sized_free_name = "free_sized"; return; }
    if (dlsym(RTLD_DEFAULT, "sdallocx")) { sized_free_impl = sdallocx_adapter; sized_free_name = "sdallocx"; return; }
    sized_free_impl = plain_free;
}

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void report_phase(const char *name, double seconds) { fprintf(stderr, "phase %s %.6f\n", name, seconds); }

/* The resident set now (from /proc/self/statm), in KiB; call it after the last free. */
static void report_final_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages_total, pages_resident;
    if (!f) return;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_resident) == 2)
        fprintf(stderr, "final-rss %ld\n", pages_resident * (sysconf(_SC_PAGESIZE) / 1024));
    fclose(f);
}
#endif
