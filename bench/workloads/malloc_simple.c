/* glibc bench-malloc-simple style: each thread allocates a batch of 100 blocks of one size and
 * frees them all, for sizes 16 B to 4 KiB in turn. Stresses the fast paths of malloc and free
 * with a small working set. Usage: malloc_simple THREADS ITERATIONS */
#include "common.h"

static long iters;
static void *work(void *arg) {
    (void)arg;
    void *b[100];
    unsigned long check = 0;
    for (size_t size = 16; size <= 4096; size *= 2)
        for (long it = 0; it < iters; it++) {
            for (int i = 0; i < 100; i++) { b[i] = malloc(size); *(char *)b[i] = (char)i; }
            for (int i = 0; i < 100; i++) { check += *(char *)b[i]; free(b[i]); }
        }
    return (void *)check;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iters = argc > 2 ? atol(argv[2]) : 20000;
    run_threads(threads, work);
    report_final_rss();
    printf("malloc_simple: %d threads x %ld iterations x 9 sizes x 100 blocks\n", threads, iters);
    return 0;
}
