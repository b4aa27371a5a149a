/* rptest style (rpmalloc's benchmark): producer/consumer rings between threads. THREADS threads
 * stand in a ring; each allocates blocks of varying sizes and passes them to the next thread
 * through a bounded single-producer/single-consumer ring, and frees every block it receives
 * from the previous one (remote frees of memory its neighbour allocated). The rings have
 * different capacities (32 to 1024 slots, by thread), so some pairs run nearly in lock-step and
 * others in long bursts. Each thread also keeps a local working set of 512 blocks replaced at
 * random (local malloc/free traffic mixed in). Sizes: mostly 16-512 B, some 512 B-8 KiB, a few
 * 8-64 KiB. A thread that can neither send (outgoing ring full) nor receive (incoming ring empty)
 * yields a few times and then sleeps on a futex until a neighbour pushes or pops, as a real
 * pipeline blocks; so more threads than cores (oversubscription) costs context switches, not
 * spinning, and the time does not hinge on where the scheduler puts the threads.
 * Usage: rptest THREADS BLOCKS-PER-THREAD */
#include "common.h"
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define WORKING_SET 512
#define BURST 32

typedef struct {
    _Alignas(64) _Atomic size_t head; /* next slot to read, written by the consumer */
    _Alignas(64) _Atomic size_t tail; /* next slot to write, written by the producer */
    _Alignas(64) size_t cap;
    void **slot;
} ring_t;

/* Per thread: a counter bumped whenever a neighbour may have unblocked it, and whether it sleeps. */
typedef struct {
    _Alignas(64) _Atomic uint32_t events;
    _Atomic int sleeping;
} waiter_t;

static ring_t rings[256];
static waiter_t waiters[256];
static int threads;
static long per_thread;
static _Atomic unsigned long long received_bytes, received_blocks;

static size_t pick(uint64_t *s) {
    uint64_t r = xr(s) % 100;
    if (r < 85) return 16 + xr(s) % 497;
    if (r < 98) return 512 + xr(s) % 7681;
    return 8192 + xr(s) % 57345;
}

/* Only the producer calls these two, so a ring with room keeps it until its push. */
static int has_room(ring_t *q) {
    return atomic_load_explicit(&q->tail, memory_order_relaxed) - atomic_load_explicit(&q->head, memory_order_acquire) < q->cap;
}

static void push(ring_t *q, void *p) {
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    q->slot[t % q->cap] = p;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
}

static void *pop(ring_t *q) {
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h == atomic_load_explicit(&q->tail, memory_order_acquire)) return NULL;
    void *p = q->slot[h % q->cap];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return p;
}

static void notify(waiter_t *w) {
    atomic_fetch_add(&w->events, 1);
    if (atomic_load(&w->sleeping)) syscall(SYS_futex, &w->events, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleeps unless `events` moved past `seen` (a neighbour acted since the caller last looked). */
static void wait_for(waiter_t *w, uint32_t seen) {
    struct timespec timeout = {0, 2000000}; /* a safety net only */
    atomic_store(&w->sleeping, 1);
    if (atomic_load(&w->events) == seen)
        syscall(SYS_futex, &w->events, FUTEX_WAIT_PRIVATE, seen, &timeout, NULL, 0);
    atomic_store(&w->sleeping, 0);
}

static void *work(void *arg) {
    intptr_t id = (intptr_t)arg;
    uint64_t s = 0xC0FFEE + id * 7919;
    ring_t *in = &rings[id], *out = &rings[(id + 1) % threads];
    waiter_t *me = &waiters[id], *next = &waiters[(id + 1) % threads], *prev = &waiters[(id + threads - 1) % threads];
    int idle = 0;
    void *ws[WORKING_SET];
    for (int i = 0; i < WORKING_SET; i++) { ws[i] = malloc(16 + i); memset(ws[i], 3, 16); }
    long sent = 0, got = 0;
    unsigned long long bytes = 0;
    while (sent < per_thread || got < per_thread) {
        int progress = 0, pushed = 0, popped = 0;
        uint32_t seen = atomic_load(&me->events);
        for (int k = 0; k < BURST && sent < per_thread && has_room(out); k++) {
            size_t n = pick(&s);
            char *p = malloc(n);
            memset(p, (int)n, n < 64 ? n : 64);
            *(uint32_t *)p = (uint32_t)n;
            push(out, p);
            sent++, progress = pushed = 1;
            size_t j = xr(&s) % WORKING_SET;
            free(ws[j]);
            ws[j] = malloc(16 + xr(&s) % 241);
            memset(ws[j], 4, 16);
        }
        for (void *p; (p = pop(in)); got++, progress = popped = 1) {
            bytes += *(uint32_t *)p;
            free(p);
        }
        if (pushed) notify(next);  /* it has something to receive */
        if (popped) notify(prev);  /* it has room to send */
        if (progress) idle = 0;
        else if (++idle < 4) sched_yield();
        else wait_for(me, seen);
    }
    for (int i = 0; i < WORKING_SET; i++) free(ws[i]);
    atomic_fetch_add(&received_bytes, bytes);
    atomic_fetch_add(&received_blocks, (unsigned long long)got);
    return NULL;
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 1;
    per_thread = argc > 2 ? atol(argv[2]) : 200000;
    for (int i = 0; i < threads; i++) {
        rings[i].cap = (size_t)32 << (i % 6);
        rings[i].slot = calloc(rings[i].cap, sizeof(void *));
    }
    run_threads(threads, work);
    for (int i = 0; i < threads; i++) free(rings[i].slot);
    report_final_rss();
    printf("rptest: %d threads x %ld blocks, %llu blocks and %llu bytes received\n", threads, per_thread,
           (unsigned long long)received_blocks, (unsigned long long)received_bytes);
    return 0;
}
