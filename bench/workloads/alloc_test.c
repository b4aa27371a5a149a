/* alloc-test style: one thread, random small sizes (biased towards the smallest), a large live
 * set (200k blocks) in which a random block is freed and replaced on every step. Stresses the
 * single-thread fast paths and cache behaviour with a big working set.
 * Usage: alloc_test [steps-in-millions] */
#include "common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 200000

static uint64_t s = 0x9E3779B97F4A7C15u;
static inline uint64_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }

static size_t pick(void) {
    uint64_t r = rnd();
    switch (r & 7) {
    case 0: case 1: case 2: case 3: return 8 + (r >> 8) % 56;      /* 8..63 */
    case 4: case 5: return 64 + (r >> 8) % 192;                     /* 64..255 */
    case 6: return 256 + (r >> 8) % 768;                            /* 256..1023 */
    default: return 1024 + (r >> 8) % 7168;                         /* 1 KiB..8 KiB */
    }
}

int main(int argc, char **argv) {
    long steps = (argc > 1 ? atol(argv[1]) : 10) * 1000000L;
    char **live = calloc(LIVE, sizeof *live);
    uint64_t check = 0;
    for (long i = 0; i < steps; i++) {
        size_t k = rnd() % LIVE;
        if (live[k]) { check += (unsigned char)live[k][0]; free(live[k]); }
        size_t n = pick();
        live[k] = malloc(n);
        live[k][0] = (char)n;
        live[k][n - 1] = 1;
    }
    for (size_t k = 0; k < LIVE; k++) free(live[k]);
    free(live);
    report_final_rss();
    printf("alloc_test: %ld steps, check %llu\n", steps, (unsigned long long)check);
    return 0;
}
