/* cache-scratch style (passive false sharing): the main thread allocates one small object per
 * thread and hands it over; each thread frees it, then repeatedly allocates a small object,
 * writes it many times and frees it. An allocator that hands a thread memory on a cache line
 * another thread is writing makes the threads fight over that line.
 * Usage: cache_scratch THREADS ITERATIONS [active]
 * With "active" (cache-thrash style) nothing is handed over: the threads allocate side by side
 * from the start, which shows whether the allocator places different threads' objects apart. */
#include "common.h"

static long iters;
static int active;
static void *handed[256];

static void *work(void *arg) {
    intptr_t id = (intptr_t)arg;
    if (!active) free(handed[id]);
    for (long i = 0; i < iters; i++) {
        volatile char *o = malloc(8);
        for (int w = 0; w < 1000; w++) o[w & 7] = (char)(o[w & 7] + 1);
        free((void *)o);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iters = argc > 2 ? atol(argv[2]) : 20000;
    active = argc > 3 && !strcmp(argv[3], "active");
    if (!active)
        for (int i = 0; i < threads; i++) handed[i] = malloc(8);
    run_threads(threads, work);
    report_final_rss();
    printf("cache_%s: %d threads x %ld objects\n", active ? "thrash" : "scratch", threads, iters);
    return 0;
}
