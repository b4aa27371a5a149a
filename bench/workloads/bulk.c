/* bulk: allocate BLOCKS blocks of 16-256 B (sizes at random, each block written), then free them
 * all in a random order; ROUNDS times. Models a program that builds a large structure and tears
 * it down at once (a parse tree, a cache flush, the end of a request with a big arena of small
 * objects): allocation with no frees in between, then the free path under cache misses, with
 * blocks freed far from where and when they were allocated. The two phases are timed in-process
 * and reported on stderr ("phase alloc S", "phase free S", summed over the rounds), which the
 * runner shows as rows of their own next to the whole process's time.
 * Usage: bulk BLOCKS ROUNDS */
#include "common.h"

int main(int argc, char **argv) {
    long blocks = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    uint64_t s = 0xB01C;
    void **p = malloc(blocks * sizeof *p);
    uint32_t *order = malloc(blocks * sizeof *order);
    unsigned long long bytes = 0, check = 0;
    double t_alloc = 0, t_free = 0;
    for (int r = 0; r < rounds; r++) {
        /* A fresh random order each round (Fisher-Yates), made before the clock starts. */
        for (long i = 0; i < blocks; i++) order[i] = (uint32_t)i;
        for (long i = blocks - 1; i > 0; i--) {
            long j = (long)(xr(&s) % (uint64_t)(i + 1));
            uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
        }
        uint64_t sizes = s;
        double t0 = bench_now();
        for (long i = 0; i < blocks; i++) {
            size_t n = 16 + xr(&sizes) % 241;
            p[i] = malloc(n);
            *(uint64_t *)p[i] = n;
            bytes += n;
        }
        double t1 = bench_now();
        for (long i = 0; i < blocks; i++) {
            void *q = p[order[i]];
            check += *(uint64_t *)q;
            free(q);
        }
        double t2 = bench_now();
        t_alloc += t1 - t0, t_free += t2 - t1;
        s = sizes;
    }
    free(order);
    free(p);
    report_phase("alloc", t_alloc);
    report_phase("free", t_free);
    report_final_rss();
    printf("bulk: %d rounds x %ld blocks, %llu bytes, check %s\n", rounds, blocks, bytes, check == bytes ? "ok" : "WRONG");
    return 0;
}
