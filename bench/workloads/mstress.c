/* mstress style (thread churn): rounds of short-lived threads; each allocates a mix of small,
 * medium and occasional large blocks, frees half of what the previous generation left in a
 * shared transfer array, leaves half of its own there, and exits. Stresses thread start-up and
 * exit (heap creation, abandonment, reclaim) and cross-thread frees.
 * Usage: mstress THREADS ROUNDS */
#include "common.h"

#define TRANSFER 4096
#define PER_THREAD 5000
static _Atomic(void *) transfer[TRANSFER];
static int round_no;

static void *work(void *arg) {
    uint64_t s = 7 + (intptr_t)arg * 31 + round_no * 1009;
    void *mine[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t r = xr(&s) % 100;
        size_t n = r < 80 ? 8 + xr(&s) % 120 : r < 99 ? 128 + xr(&s) % 4000 : 100000 + xr(&s) % 200000;
        mine[i] = malloc(n);
        memset(mine[i], 2, 8);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (i % 2) { free(mine[i]); continue; }
        void *old = __atomic_exchange_n(&transfer[xr(&s) % TRANSFER], mine[i], __ATOMIC_ACQ_REL);
        free(old);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 50;
    for (round_no = 0; round_no < rounds; round_no++) run_threads(threads, work);
    for (int i = 0; i < TRANSFER; i++) free(transfer[i]);
    report_final_rss();
    printf("mstress: %d threads x %d rounds\n", threads, rounds);
    return 0;
}
