/* mleak style (threads that exit leaving memory behind): rounds of THREADS short-lived threads;
 * each allocates BLOCKS-PER-THREAD blocks (mostly 8-512 B, 2% 4-32 KiB), frees a tenth of them
 * itself, and exits holding the rest, which stay reachable from a shared table. The main thread
 * frees a round's leftovers only after those threads have exited, and while the next round's
 * threads are already running and allocating, so the memory of exited threads (abandoned heaps,
 * thread caches) must go back to the freeing thread or be reused by the new ones. One block in
 * 16 outlives its round and is freed only at the very end, so pages of long-gone threads stay
 * partly in use (fragmentation across threads). Peak and final RSS matter here as much as time.
 * Usage: mleak THREADS ROUNDS [BLOCKS-PER-THREAD] */
#include "common.h"

#define MAX_THREADS 256
static int threads;
static long per_thread;
static void **left[2][MAX_THREADS]; /* leftovers of the previous and the current round */
static void **survivors;            /* blocks kept to the end: 1 in 16 */
static long survivors_n;
static int round_no;

static void *work(void *arg) {
    intptr_t id = (intptr_t)arg;
    uint64_t s = 0x3EA7 + id * 104729 + (uint64_t)round_no * 7919;
    void **mine = left[round_no % 2][id];
    for (long i = 0; i < per_thread; i++) {
        uint64_t r = xr(&s) % 100;
        size_t n = r < 98 ? 8 + xr(&s) % 505 : 4096 + xr(&s) % 28673;
        mine[i] = malloc(n);
        memset(mine[i], (int)i, n < 32 ? n : 32);
    }
    for (long i = 0; i < per_thread; i += 10) { free(mine[i]); mine[i] = NULL; }
    return NULL;
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    per_thread = argc > 3 ? atol(argv[3]) : 20000;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    for (int g = 0; g < 2; g++)
        for (int t = 0; t < threads; t++) left[g][t] = calloc(per_thread, sizeof(void *));
    survivors = malloc(sizeof(void *) * (size_t)(rounds * threads * (per_thread / 16 + 1)));
    uint64_t s = 0x1EA4;
    long freed = 0;
    pthread_t tid[MAX_THREADS];
    for (round_no = 0; round_no < rounds; round_no++) {
        for (intptr_t t = 0; t < threads; t++) pthread_create(&tid[t], NULL, work, (void *)t);
        if (round_no > 0) {
            /* The previous round's threads have exited: free what they left, starting at a
             * random thread and offset, keeping 1 block in 16 to the end. */
            void ***prev = left[(round_no - 1) % 2];
            int first = (int)(xr(&s) % (uint64_t)threads);
            for (int k = 0; k < threads; k++) {
                void **b = prev[(first + k) % threads];
                long off = (long)(xr(&s) % (uint64_t)per_thread);
                for (long i = 0; i < per_thread; i++) {
                    long j = (i + off) % per_thread;
                    if (!b[j]) continue;
                    if (j % 16 == 5) survivors[survivors_n++] = b[j];
                    else free(b[j]), freed++;
                    b[j] = NULL;
                }
            }
        }
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    }
    void ***last = left[(rounds - 1) % 2];
    for (int t = 0; t < threads; t++)
        for (long i = 0; i < per_thread; i++)
            if (last[t][i]) free(last[t][i]), freed++;
    for (long i = 0; i < survivors_n; i++) free(survivors[i]);
    freed += survivors_n;
    free(survivors);
    for (int g = 0; g < 2; g++)
        for (int t = 0; t < threads; t++) free(left[g][t]);
    report_final_rss();
    printf("mleak: %d threads x %d rounds x %ld blocks, %ld freed by another thread after exit\n", threads, rounds,
           per_thread, freed);
    return 0;
}
