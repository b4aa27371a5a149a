/* ox_heap_visit against a known set of allocations on one thread: every live block is visited
 * once, with its usable size; freed blocks are not; the calling thread's pages are exact (their
 * used counts add up to the live small and medium blocks); huge blocks get areas of their own;
 * areas come in address order; a nonzero return stops the walk; and the callback may allocate.
 * Prints "heap_visit: N checks, 0 failed". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define N 600
static void *live[N];
static int seen[N];
static size_t n_live;
static long blocks_visited, unknown_blocks, exact_used, huge_areas, areas, calls, allocs_in_cb;
static uintptr_t last_area;
static int order_ok = 1;

static int find(void *b) {
    for (size_t i = 0; i < n_live; i++) if (live[i] == b) return (int)i;
    return -1;
}

static int visit(const struct ox_heap_area *a, const struct ox_heap_page *p, void *block, size_t size, void *arg) {
    (void)arg;
    calls++;
    if (!p) {
        if (a->start <= last_area) order_ok = 0;
        last_area = a->start;
        areas++;
        if (a->kind == 2) huge_areas++;
        /* Allocating inside the walk must be allowed. */
        void *x = malloc(100);
        free(x);
        allocs_in_cb++;
    } else if (!block) {
        if (p->exact && a->kind != 2) exact_used += p->used;
    } else {
        blocks_visited++;
        int i = find(block);
        if (i < 0) unknown_blocks++;
        else { seen[i]++; if (size < malloc_usable_size(block)) unknown_blocks++; }
    }
    return 0;
}

static int stop_after_three(const struct ox_heap_area *a, const struct ox_heap_page *p, void *b, size_t s, void *arg) {
    (void)a; (void)p; (void)b; (void)s;
    return ++*(int *)arg == 3 ? 42 : 0;
}

int main(void) {
    void *freed[N];
    size_t n_freed = 0, small_live = 0;
    for (int i = 0; i < N; i++) {
        size_t size = (size_t[]){24, 200, 1000, 5000, 20000}[i % 5];
        void *p = malloc(size);
        if (i % 3 == 0) freed[n_freed++] = p;
        else { live[n_live++] = p; small_live++; }
    }
    for (int i = 0; i < 4; i++) live[n_live++] = malloc(300000 + i * 500000);
    for (size_t i = 0; i < n_freed; i++) free(freed[i]);
    int r = OX(ox_heap_visit)(OX_VISIT_BLOCKS, visit, NULL);
    CHECK("the walk goes to the end", r == 0);
    int once = 1;
    for (size_t i = 0; i < n_live; i++) if (seen[i] != 1) once = 0;
    CHECK("every live block is visited once", once);
    CHECK("no block that is not live", unknown_blocks == 0);
    CHECK("the thread's pages count its live blocks exactly", exact_used == (long)small_live);
    CHECK("a huge area per huge block", huge_areas == 4);
    CHECK("areas in address order", order_ok);
    CHECK("the callback may allocate", allocs_in_cb == areas && areas > 4);
    int count = 0;
    CHECK("a nonzero return stops the walk", OX(ox_heap_visit)(0, stop_after_three, &count) == 42 && count == 3);
    CHECK("a NULL function visits nothing", OX(ox_heap_visit)(0, NULL, NULL) == 0);
    for (size_t i = 0; i < n_live; i++) free(live[i]);
    printf("heap_visit: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
