/* Multi-threaded stress, seeded: threads allocate random sizes and hand half of their blocks to
 * other threads through shared slots (cross-thread frees), threads are created and joined in
 * rounds (thread churn, so heaps are abandoned and reclaimed), and the process forks while
 * workers run (the child must allocate, free and start a thread of its own).
 * Every block carries a pattern derived from its address and size, checked before it is freed.
 * Usage: stress [threads] [rounds] [seed] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 4096
#define OPS 20000

static _Atomic(uintptr_t) slots[SLOTS];
static atomic_int errors;
static unsigned long seed0 = 42;

typedef struct { size_t size; uint32_t check; } header_t;

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s) {
    uint64_t r = next(s) % 1000;
    if (r < 700) return sizeof(header_t) + next(s) % 128;
    if (r < 950) return sizeof(header_t) + next(s) % 4096;
    if (r < 998) return sizeof(header_t) + next(s) % 200000;
    return sizeof(header_t) + next(s) % (4 << 20);
}

static uint32_t tag(void *p, size_t size) { return (uint32_t)(((uintptr_t)p >> 4) ^ size * 2654435761u); }

static void *make(uint64_t *s) {
    size_t size = pick_size(s);
    header_t *h = malloc(size);
    if (!h) { atomic_fetch_add(&errors, 1); return NULL; }
    h->size = size;
    h->check = tag(h, size);
    memset(h + 1, (int)(h->check & 0xff), size - sizeof *h > 64 ? 64 : size - sizeof *h);
    return h;
}

static void check_and_free(void *p) {
    if (!p) return;
    header_t *h = p;
    size_t body = h->size - sizeof *h > 64 ? 64 : h->size - sizeof *h;
    unsigned char *b = (unsigned char *)(h + 1);
    int bad = h->check != tag(h, h->size);
    for (size_t i = 0; i < body && !bad; i++) bad = b[i] != (unsigned char)(h->check & 0xff);
    if (bad) { atomic_fetch_add(&errors, 1); fprintf(stderr, "corrupted block %p\n", p); }
    free(p);
}

static void *worker(void *arg) {
    uint64_t s = seed0 * 7919 + (uintptr_t)arg * 104729 + 1;
    void *local[256] = {0};
    for (int i = 0; i < OPS; i++) {
        uint64_t r = next(&s);
        if (r % 2) {
            /* Swap a fresh block into a shared slot; free whatever was there (another thread's). */
            void *p = make(&s);
            uintptr_t old = atomic_exchange(&slots[next(&s) % SLOTS], (uintptr_t)p);
            check_and_free((void *)old);
        } else {
            int k = next(&s) % 256;
            check_and_free(local[k]);
            local[k] = make(&s);
            if (r % 7 == 0) { /* realloc keeps the header */
                header_t *h = local[k];
                size_t ns = pick_size(&s);
                header_t *n = realloc(h, ns > h->size ? ns : h->size);
                if (n) { n->check = tag(n, n->size); memset(n + 1, (int)(n->check & 0xff), n->size - sizeof *n > 64 ? 64 : n->size - sizeof *n); local[k] = n; }
            }
        }
    }
    for (int k = 0; k < 256; k++) check_and_free(local[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    void *p[100];
    for (int i = 0; i < 100; i++) p[i] = malloc(i * 10 + 1);
    for (int i = 0; i < 100; i++) free(p[i]);
    return NULL;
}

static int fork_and_check(void) {
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t s = 99;
        for (int i = 0; i < 2000; i++) check_and_free(make(&s));
        pthread_t t;
        if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(3);
        pthread_join(t, NULL);
        _exit(atomic_load(&errors) ? 2 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    if (argc > 3) seed0 = strtoul(argv[3], NULL, 10);
    int forks_ok = 1;
    for (int r = 0; r < rounds; r++) {
        pthread_t t[64];
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(r * 64 + i));
        if (!fork_and_check()) forks_ok = 0;
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    for (int i = 0; i < SLOTS; i++) check_and_free((void *)atomic_exchange(&slots[i], 0));
    int failed = (atomic_load(&errors) != 0) + !forks_ok;
    printf("stress: %d threads x %d rounds, seed %lu: %d corrupted blocks, forks %s\n", threads, rounds, seed0,
           atomic_load(&errors), forks_ok ? "ok" : "FAILED");
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed ? 1 : 0;
}
