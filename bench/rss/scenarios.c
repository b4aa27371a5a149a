/* Memory given back: the scenarios of the memory-layer issue, run under any allocator
 * (LD_PRELOAD), each printing the resident set (VmRSS) over the process's start:
 *   1. 400 MiB of 1 KiB blocks, all freed but one per 4 MiB: after 1 s, and after malloc_trim(0);
 *   2. two threads allocate 512 MiB of 64-byte blocks and exit; this thread frees it all:
 *      malloc_trim's result, RSS after it;
 *   3. 10,000 short-lived threads whose leftover blocks are freed after they exit: after trim;
 *   4. 256 MiB freed, then only small mallocs for two seconds (no trim): RSS at the end;
 *   5. scenario 1 without trim: two seconds of small mallocs instead;
 *   6. scenario 2 without trim: two seconds of small mallocs instead;
 *   7. 256 MiB of small blocks (200 B) and 256 MiB of 1 MiB blocks freed, then the program only
 *      sleeps (no malloc at all) for two seconds: RSS after 200 ms and at the end.
 * Usage: scenarios [1234567] (default all). Output: "scenario N: <what> <MiB> MiB". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* VmRSS in KiB, with open and read only: stdio would allocate, and a malloc here may run the
 * allocator's slow path (and its purge clock), which the sleeping scenario must not. */
static long rss_kib(void) {
    static char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *line = strstr(buf, "VmRSS:");
    return line ? atol(line + 6) : -1;
}

static long start;
static void report(int n, const char *what) {
    printf("scenario %d: %s %.1f MiB\n", n, what, (rss_kib() - start) / 1024.0);
    fflush(stdout);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Only small mallocs and frees for two seconds (they stay in pages the allocator has). */
static void small_mallocs_for_2s(void) {
    double t0 = now();
    void *keep[64] = {0};
    unsigned k = 0;
    while (now() - t0 < 2.0) {
        for (int i = 0; i < 1000; i++) { free(keep[k % 64]); keep[k % 64] = malloc(32); k++; }
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
}

static void scenario1(void) {
    size_t n = 400 * 1024;
    char **b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) { b[i] = malloc(1024); memset(b[i], 1, 1024); }
    for (size_t i = 0; i < n; i++) if (i % 4096 != 0) free(b[i]);
    sleep(1);
    report(1, "one 1 KiB block kept per 4 MiB, after 1 s");
    int r = malloc_trim(0);
    printf("scenario 1: malloc_trim returned %d\n", r);
    report(1, "after malloc_trim");
    for (size_t i = 0; i < n; i += 4096) free(b[i]);
    free(b);
    malloc_trim(0);
}

#define S2_BLOCKS (512u * 1024 * 1024 / 64 / 2)
static void *s2_thread(void *arg) {
    void **v = arg;
    for (size_t i = 0; i < S2_BLOCKS; i++) { v[i] = malloc(64); memset(v[i], 2, 64); }
    return NULL;
}
static void scenario2(void) {
    void **v[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) { v[i] = malloc(S2_BLOCKS * sizeof(void *)); pthread_create(&t[i], NULL, s2_thread, v[i]); }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    report(2, "512 MiB allocated by two exited threads");
    for (int i = 0; i < 2; i++) { for (size_t j = 0; j < S2_BLOCKS; j++) free(v[i][j]); free(v[i]); }
    int r = malloc_trim(0);
    printf("scenario 2: malloc_trim returned %d\n", r);
    report(2, "all freed by this thread, after malloc_trim");
}

#define S3_THREADS 10000
#define S3_LEFT 25
static void *s3_thread(void *arg) {
    void **out = arg;
    void *mine[100];
    for (int i = 0; i < 100; i++) { mine[i] = malloc(16 + (i * 37) % 2000); memset(mine[i], 3, 16); }
    for (int i = 0; i < 100; i++) { if (i < S3_LEFT) out[i] = mine[i]; else free(mine[i]); }
    return NULL;
}
static void scenario3(void) {
    void **left = malloc((size_t)S3_THREADS * S3_LEFT * sizeof(void *));
    for (int i = 0; i < S3_THREADS; i++) {
        pthread_t t;
        pthread_create(&t, NULL, s3_thread, left + (size_t)i * S3_LEFT);
        pthread_join(t, NULL);
    }
    for (size_t i = 0; i < (size_t)S3_THREADS * S3_LEFT; i++) free(left[i]);
    free(left);
    malloc_trim(0);
    report(3, "10,000 threads' leftovers freed after they exited, after malloc_trim");
}

static void scenario4(void) {
    size_t n = 256 * 1024 / 4;
    char **b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) { b[i] = malloc(4096); memset(b[i], 4, 4096); }
    for (size_t i = 0; i < n; i++) free(b[i]);
    free(b);
    small_mallocs_for_2s();
    report(4, "256 MiB freed, then 2 s of small mallocs only (no trim)");
}

/* 5. Scenario 1 without trim: the blocks freed, one kept per 4 MiB, then 2 s of small mallocs. */
static void scenario5(void) {
    size_t n = 400 * 1024;
    char **b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) { b[i] = malloc(1024); memset(b[i], 1, 1024); }
    for (size_t i = 0; i < n; i++) if (i % 4096 != 0) free(b[i]);
    small_mallocs_for_2s();
    report(5, "one 1 KiB block kept per 4 MiB, then 2 s of small mallocs (no trim)");
    for (size_t i = 0; i < n; i += 4096) free(b[i]);
    free(b);
}

/* 6. Scenario 2 without trim: freed by this thread, then 2 s of small mallocs. */
static void scenario6(void) {
    void **v[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) { v[i] = malloc(S2_BLOCKS * sizeof(void *)); pthread_create(&t[i], NULL, s2_thread, v[i]); }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) { for (size_t j = 0; j < S2_BLOCKS; j++) free(v[i][j]); free(v[i]); }
    small_mallocs_for_2s();
    report(6, "512 MiB from two exited threads freed here, then 2 s of small mallocs (no trim)");
}

/* 7. Freed, then only sleeping: nothing runs the allocator's slow paths. */
static void scenario7(void) {
    size_t ns = (256u << 20) / 200, nl = 256;
    char **s = malloc(ns * sizeof *s), **l = malloc(nl * sizeof *l);
    for (size_t i = 0; i < ns; i++) { s[i] = malloc(200); memset(s[i], 7, 200); }
    for (size_t i = 0; i < nl; i++) { l[i] = malloc(1 << 20); memset(l[i], 7, 1 << 20); }
    for (size_t i = 0; i < ns; i++) free(s[i]);
    for (size_t i = 0; i < nl; i++) free(l[i]);
    free(s);
    free(l);
    usleep(200 * 1000);
    report(7, "512 MiB freed, then only sleeping: after 200 ms");
    usleep(1800 * 1000);
    report(7, "512 MiB freed, then only sleeping: after 2 s");
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "1234567";
    static char outbuf[1 << 14];
    setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf); /* so that printing allocates nothing */
    start = rss_kib();
    if (strchr(which, '1')) scenario1();
    if (strchr(which, '2')) scenario2();
    if (strchr(which, '3')) scenario3();
    if (strchr(which, '4')) scenario4();
    if (strchr(which, '5')) scenario5();
    if (strchr(which, '6')) scenario6();
    if (strchr(which, '7')) scenario7();
    return 0;
}
