/* Known errors for memcheck, run with oxalloc in valgrind mode (tests/valgrind.rs): one leak of
 * LEAK_BYTES bytes in leak_some(), a write one byte past a malloc'd block in overflow_by_one(),
 * a read of the 4 bytes before a block in read_before_start(), a read of page memory no block
 * was handed out from in read_fresh_memory(), and a read of a freed block in read_after_free(). Everything else is clean: calloc, realloc
 * (in place and moving), aligned blocks and a second thread, whose blocks must not be reported.
 * Prints "oxalloc in use" when a block from malloc lies in oxalloc's heap. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include "oxalloc.h"

#define LEAK_BYTES 77

/* Keeps the compiler from optimising the bad accesses away. */
static volatile char sink;
static char *volatile keep;

__attribute__((noinline)) static void leak_some(void) {
    char *p = malloc(LEAK_BYTES);
    memset(p, 1, LEAK_BYTES);
    keep = p;
    keep = NULL; /* the only pointer is gone: definitely lost */
}

__attribute__((noinline)) static void overflow_by_one(void) {
    char *volatile p = malloc(24);
    memset(p, 2, 24);
    ((volatile char *)p)[24] = 3; /* one past the end */
    free(p);
}

__attribute__((noinline)) static void read_before_start(void) {
    int *volatile p = malloc(32);
    memset(p, 8, 32);
    sink = (char)((volatile int *)p)[-1]; /* the 4 bytes before the block */
    free(p);
}

__attribute__((noinline)) static void read_fresh_memory(void) {
    char *volatile p = malloc(5000); /* the first block of its size class: a fresh page */
    memset(p, 9, 5000);
    sink = (char)((volatile long *)p)[8192 / 8]; /* in the page, in no block handed out */
    free(p);
}

__attribute__((noinline)) static void read_after_free(void) {
    char *volatile p = malloc(40);
    memset(p, 4, 40);
    free(p);
    sink = p[0]; /* the block is freed */
}

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        char *volatile p = malloc(16 + i % 300);
        p[0] = (char)i;
        free(p);
    }
    return NULL;
}

static int clean_work(void) {
    int bad = 0;
    int *z = calloc(100, sizeof(int));
    for (int i = 0; i < 100; i++) bad |= z[i] != 0; /* defined zeros */
    char *r = malloc(10);
    memset(r, 5, 10);
    r = realloc(r, 8); /* in place */
    r = realloc(r, 100000); /* moved */
    for (int i = 0; i < 8; i++) bad |= r[i] != 5;
    free(r);
    void *a = NULL;
    if (posix_memalign(&a, 256, 1000) != 0 || ((uintptr_t)a & 255) != 0) bad = 1;
    memset(a, 6, 1000);
    free(a);
    char *big = malloc(1 << 20); /* a huge block */
    memset(big, 7, 1 << 20);
    free(big);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    /* In valgrind mode a block has exactly what was asked for. */
    if (getenv("OXALLOC_VALGRIND") && malloc_usable_size(z) != 400) bad = 1;
    free(z);
    return bad;
}

struct found {
    uintptr_t p;
    int found;
};

static int in_area(const struct ox_heap_area *area, const struct ox_heap_page *page, void *block,
                   size_t block_size, void *arg) {
    (void)page, (void)block, (void)block_size;
    struct found *f = arg;
    if (f->p >= area->start && f->p < area->start + area->size) f->found = 1;
    return 0;
}

int main(void) {
    if (clean_work()) {
        printf("clean work failed\n");
        return 1;
    }
    leak_some();
    overflow_by_one();
    read_before_start();
    read_fresh_memory();
    read_after_free();
    /* Whether malloc's block lies in one of oxalloc's areas, by oxalloc's heap walk (looked
     * up, so that the program runs linked or preloaded): when valgrind replaced malloc it does
     * not. */
    typedef int (*visit_fn)(int, ox_heap_visit_fn, void *);
    visit_fn visit = (visit_fn)dlsym(RTLD_DEFAULT, "ox_heap_visit");
    if (!visit) {
        printf("oxalloc NOT loaded\n");
        return 1;
    }
    char *volatile q = malloc(100);
    struct found f = {(uintptr_t)q, 0};
    visit(0, in_area, &f);
    free(q);
    printf("%s\n", f.found ? "oxalloc in use" : "oxalloc NOT in use");
    return 0;
}
