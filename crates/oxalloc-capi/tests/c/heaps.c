/* First-class heaps from C (ox_heap_*): 10,000 heaps created, filled and destroyed with mapped
 * bytes (from ox_stats_json) and RSS (/proc/self/statm) flat; a heap's blocks freed by another
 * thread; destroy with live blocks (live bytes back where they were); delete with live blocks
 * that stay valid and are freed later, on two threads; calloc, realloc and aligned allocation
 * on a heap, with their errno rules; a heap still alive at thread exit. With the argument
 * "wrong-thread", another thread allocates from the heap, which must end the process; with
 * "new-only", it reports what ox_heap_new returned (NULL in valgrind mode).
 * Prints "heaps: N checks, 0 failed". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "oxalloc.h"

#ifdef OX_DYNAMIC
#define OX(name) ((__typeof__(&name))dlsym(RTLD_DEFAULT, #name))
#else
#define OX(name) (&name)
#endif

static int checks, failed;
#define CHECK(what, cond)                                                                     \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) { failed++; printf("FAIL %s\n", what); }                                 \
    } while (0)

/* A statistic of ox_stats_json's line, by name. */
static long long stat(const char *name) {
    char buf[8192], key[64];
    OX(ox_stats_json)(buf, sizeof buf);
    snprintf(key, sizeof key, "\"%s\":", name);
    char *at = strstr(buf, key);
    return at ? atoll(at + strlen(key)) : -1;
}

static long long rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (long long)resident * sysconf(_SC_PAGESIZE);
}

/* Fills a heap with blocks of many sizes (and a huge one every 100th round), some freed. */
static void fill(ox_heap_t *h, int round) {
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        size_t size = 8 + (size_t)((i * 37 + round) % 64) * ((i % 8 == 7) ? 512 : 16);
        keep[i] = OX(ox_heap_malloc)(h, size);
        if (keep[i]) memset(keep[i], i, size < 64 ? size : 64);
    }
    for (int i = 0; i < 64; i += 3) free(keep[i]);
    if (round % 100 == 0) {
        char *big = OX(ox_heap_malloc)(h, 1 << 20);
        if (big) big[12345] = 1;
    }
}

static void many_heaps(void) {
    long long mapped0 = 0, rss0 = 0;
    int ok = 1;
    /* The thread's own heap takes its first segment now (fopen allocates), not mid-loop. */
    void *warm = malloc(64);
    rss_bytes();
    for (int round = 0; round < 10000; round++) {
        ox_heap_t *h = OX(ox_heap_new)();
        if (!h) { ok = 0; break; }
        fill(h, round);
        OX(ox_heap_destroy)(h);
        if (round == 999) {
            mapped0 = stat("mapped_bytes");
            rss0 = rss_bytes();
        }
    }
    long long mapped = stat("mapped_bytes"), rss = rss_bytes();
    free(warm);
    printf("10000 heaps: mapped %lld -> %lld bytes, rss %lld -> %lld bytes (from round 1000)\n",
           mapped0, mapped, rss0, rss);
    CHECK("10000 heaps created and destroyed", ok);
    CHECK("mapped bytes stay flat over 9000 heaps", mapped > 0 && mapped <= mapped0);
    CHECK("RSS stays flat over 9000 heaps", rss <= rss0 + (4 << 20));
}

#define N 20000
static void *blocks[N];

static void *free_all(void *arg) {
    (void)arg;
    for (int i = 0; i < N; i++) free(blocks[i]);
    return NULL;
}

static void *free_half(void *arg) {
    (void)arg;
    for (int i = N / 2; i < N; i++) free(blocks[i]);
    return NULL;
}

static void freed_by_another_thread(void) {
    ox_heap_t *h = OX(ox_heap_new)();
    long long mapped_after_first = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) blocks[i] = OX(ox_heap_malloc)(h, 16 + (i % 40) * 16);
        pthread_t t;
        pthread_create(&t, NULL, free_all, NULL);
        pthread_join(t, NULL);
        if (round == 0) mapped_after_first = stat("mapped_bytes");
    }
    CHECK("a heap reuses blocks other threads freed", stat("mapped_bytes") <= mapped_after_first);
    OX(ox_heap_destroy)(h);
}

static void destroy_with_live_blocks(void) {
    long long live0 = stat("live_bytes");
    ox_heap_t *h = OX(ox_heap_new)();
    for (int i = 0; i < 5000; i++) OX(ox_heap_malloc)(h, 100 + i % 3000);
    void *huge = OX(ox_heap_malloc)(h, 3 << 20);
    CHECK("a huge block from a heap", huge != NULL);
    CHECK("live bytes count the heap's blocks", stat("live_bytes") > live0 + 5000 * 100);
    OX(ox_heap_destroy)(h);
    CHECK("destroy frees every live block", stat("live_bytes") <= live0);
    OX(ox_heap_destroy)(NULL);
    OX(ox_heap_delete)(NULL);
}

static void delete_with_live_blocks(void) {
    long long live0 = stat("live_bytes");
    ox_heap_t *h = OX(ox_heap_new)();
    for (int i = 0; i < N; i++) {
        blocks[i] = OX(ox_heap_malloc)(h, 32 + i % 500);
        memset(blocks[i], i & 0xff, 32);
    }
    char *huge = OX(ox_heap_malloc)(h, 1 << 20);
    huge[0] = 'h';
    OX(ox_heap_delete)(h);
    /* Another heap, maybe in the same slot, is made and destroyed meanwhile. */
    ox_heap_t *other = OX(ox_heap_new)();
    for (int i = 0; i < 1000; i++) OX(ox_heap_malloc)(other, 64);
    OX(ox_heap_destroy)(other);
    int intact = huge[0] == 'h';
    for (int i = 0; i < N; i++) {
        unsigned char *b = blocks[i];
        for (int j = 0; j < 32; j++) intact &= b[j] == (i & 0xff);
    }
    CHECK("a deleted heap's blocks stay valid", intact);
    pthread_t t;
    pthread_create(&t, NULL, free_half, NULL);
    for (int i = 0; i < N / 2; i++) free(blocks[i]);
    pthread_join(t, NULL);
    free(huge);
    CHECK("a deleted heap's blocks are freed later", stat("live_bytes") <= live0 + 4096);
}

static void calloc_realloc_aligned(void) {
    ox_heap_t *h = OX(ox_heap_new)();
    unsigned char *z = OX(ox_heap_calloc)(h, 1000, 7);
    int zero = z != NULL;
    for (int i = 0; zero && i < 7000; i++) zero &= z[i] == 0;
    CHECK("ox_heap_calloc zeroes", zero);
    errno = 0;
    CHECK("ox_heap_calloc overflow is ENOMEM", OX(ox_heap_calloc)(h, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    char *p = OX(ox_heap_realloc)(h, NULL, 10);
    strcpy(p, "oxalloc");
    int kept = 1;
    for (size_t size = 20; size < (8 << 20); size *= 3) {
        p = OX(ox_heap_realloc)(h, p, size);
        kept &= p && strcmp(p, "oxalloc") == 0;
    }
    p = OX(ox_heap_realloc)(h, p, 16);
    kept &= p && strcmp(p, "oxalloc") == 0;
    CHECK("ox_heap_realloc keeps contents through every size", kept);
    CHECK("ox_heap_realloc(h, p, 0) frees and returns NULL", OX(ox_heap_realloc)(h, p, 0) == NULL);
    char *elsewhere = malloc(100);
    strcpy(elsewhere, "thread heap");
    elsewhere = OX(ox_heap_realloc)(h, elsewhere, 5000);
    CHECK("ox_heap_realloc takes a block of another heap", elsewhere && strcmp(elsewhere, "thread heap") == 0);
    int aligned = 1;
    for (size_t a = 16; a <= (1 << 20); a *= 4) {
        void *q = OX(ox_heap_aligned_alloc)(h, a, 100);
        aligned &= q && ((uintptr_t)q % a) == 0;
    }
    CHECK("ox_heap_aligned_alloc aligns", aligned);
    errno = 0;
    CHECK("ox_heap_aligned_alloc alignment 24 is EINVAL", OX(ox_heap_aligned_alloc)(h, 24, 100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK("ox_heap_malloc failure is ENOMEM", OX(ox_heap_malloc)(h, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    CHECK("usable size of a heap's block", OX(ox_malloc_usable_size)(z) >= 7000);
    OX(ox_heap_destroy)(h);
}

static void *leave_a_heap(void *arg) {
    ox_heap_t *h = OX(ox_heap_new)();
    int *x = OX(ox_heap_malloc)(h, sizeof(int) * 100);
    x[99] = 4242;
    *(int **)arg = x;
    return NULL; /* the heap is still alive: deleted at thread exit */
}

static void heap_alive_at_thread_exit(void) {
    for (int i = 0; i < 50; i++) {
        int *x = NULL;
        pthread_t t;
        pthread_create(&t, NULL, leave_a_heap, &x);
        pthread_join(t, NULL);
        CHECK("a block of a heap whose thread exited stays valid", x && x[99] == 4242);
        free(x);
    }
}

static ox_heap_t *shared;
static void *use_from_other_thread(void *arg) {
    (void)arg;
    OX(ox_heap_malloc)(shared, 10);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "new-only") == 0) {
        errno = 0;
        ox_heap_t *h = OX(ox_heap_new)();
        printf("ox_heap_new: %s, errno %s\n", h ? "a heap" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
        OX(ox_heap_destroy)(h);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "wrong-thread") == 0) {
        shared = OX(ox_heap_new)();
        pthread_t t;
        pthread_create(&t, NULL, use_from_other_thread, NULL);
        pthread_join(t, NULL);
        printf("the other thread allocated from the heap\n");
        return 0;
    }
    many_heaps();
    freed_by_another_thread();
    destroy_with_live_blocks();
    delete_with_live_blocks();
    calloc_realloc_aligned();
    heap_alive_at_thread_exit();
    printf("heaps: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
