/* larson style (server simulation): each thread owns a range of slots; every step frees the
 * block in a random slot and allocates a new one of random size (16..1024). Threads live for a
 * round and then hand their slots to the next generation of threads, shifted by one, so blocks
 * are freed by a different thread than the one that allocated them. The sized variant frees with
 * the block's size (free_sized or sdallocx when the allocator has one).
 * Usage: larson THREADS STEPS-PER-THREAD [sized] */
#include "common.h"

#define SLOTS_PER_THREAD 2000
#define ROUNDS 8
static int threads, sized;
static long steps;
static void **slots;
static size_t *sizes;
static int round_no;

static void *work(void *arg) {
    intptr_t id = (intptr_t)arg;
    uint64_t s = 0x1234567 + id * 7919 + round_no * 104729;
    size_t base = ((id + round_no) % threads) * SLOTS_PER_THREAD;
    for (long i = 0; i < steps / ROUNDS; i++) {
        size_t k = base + xr(&s) % SLOTS_PER_THREAD;
        if (slots[k]) {
            if (sized) sized_free_impl(slots[k], sizes[k]); else free(slots[k]);
        }
        size_t n = 16 + xr(&s) % 1009;
        slots[k] = malloc(n);
        sizes[k] = n;
        memset(slots[k], 0, n < 32 ? n : 32);
    }
    return NULL;
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 1;
    steps = argc > 2 ? atol(argv[2]) : 2000000;
    sized = argc > 3 && !strcmp(argv[3], "sized");
    pick_sized_free();
    slots = calloc((size_t)threads * SLOTS_PER_THREAD, sizeof *slots);
    sizes = calloc((size_t)threads * SLOTS_PER_THREAD, sizeof *sizes);
    for (round_no = 0; round_no < ROUNDS; round_no++) run_threads(threads, work);
    for (size_t k = 0; k < (size_t)threads * SLOTS_PER_THREAD; k++) free(slots[k]);
    report_final_rss();
    printf("larson: %d threads x %ld steps%s\n", threads, steps, sized ? ", sized frees" : "");
    /* Which sized free the allocator offered differs between allocators: not part of the output. */
    fprintf(stderr, "larson: freeing with %s\n", sized ? sized_free_name : "free");
    return 0;
}
