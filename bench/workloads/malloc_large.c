/* malloc-large style: blocks of 5 to 25 MiB, a live set of 20, each replaced in turn; only a
 * few bytes of each block are touched, as with buffers sized for the worst case.
 * Usage: malloc_large ITERATIONS */
#include "common.h"

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 2000;
    void *live[20] = {0};
    uint64_t s = 5;
    for (long i = 0; i < iters; i++) {
        int k = xr(&s) % 20;
        free(live[k]);
        size_t n = (5u << 20) + xr(&s) % (20u << 20);
        char *p = malloc(n);
        p[0] = 1; p[n / 2] = 2; p[n - 1] = 3;
        live[k] = p;
    }
    for (int k = 0; k < 20; k++) free(live[k]);
    report_final_rss();
    printf("malloc_large: %ld blocks of 5-25 MiB\n", iters);
    return 0;
}
