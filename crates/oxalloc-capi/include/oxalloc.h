/* oxalloc.h: the oxalloc allocator's C API.
 *
 * liboxalloc exports the standard malloc family (malloc, free, calloc, realloc, ...), so
 * preloading or linking it replaces the system allocator. The same functions are available
 * with an `ox_` prefix, which always call oxalloc whatever else is linked in. */
#ifndef OXALLOC_H
#define OXALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

void  *ox_malloc(size_t size);
void   ox_free(void *p);
void  *ox_calloc(size_t n, size_t size);
void  *ox_realloc(void *p, size_t size);
void  *ox_reallocarray(void *p, size_t n, size_t size);
int    ox_posix_memalign(void **out, size_t alignment, size_t size);
void  *ox_aligned_alloc(size_t alignment, size_t size);
void  *ox_memalign(size_t alignment, size_t size);
void  *ox_valloc(size_t size);
void  *ox_pvalloc(size_t size);
size_t ox_malloc_usable_size(void *p);
void   ox_free_sized(void *p, size_t size);
void   ox_free_aligned_sized(void *p, size_t alignment, size_t size);
int    ox_malloc_trim(size_t pad);
int    ox_mallopt(int param, int value);
void   ox_malloc_stats(void);
int    ox_malloc_info(int options, FILE *stream);

struct ox_mallinfo2 {
    size_t arena;    /* bytes mapped for small and medium blocks */
    size_t ordblks;  /* segments mapped */
    size_t smblks;
    size_t hblks;    /* live huge blocks */
    size_t hblkhd;   /* bytes in live huge blocks */
    size_t usmblks;  /* peak bytes mapped */
    size_t fsmblks;
    size_t uordblks; /* bytes in live blocks */
    size_t fordblks; /* bytes mapped but not in live blocks */
    size_t keepcost;
};
struct ox_mallinfo2 ox_mallinfo2(void);

/* glibc's older struct mallinfo: the same fields as int, saturated at INT_MAX. */
struct ox_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct ox_mallinfo ox_mallinfo(void);

/* Writes the statistics as one JSON line into buf (NUL-terminated, truncated to len);
 * returns the length of the full line. */
size_t ox_stats_json(char *buf, size_t len);
/* Prints a human-readable summary of the statistics to stderr. */
void   ox_stats_print(void);

/* The heap walk. An area is a segment of small (kind 0) or medium (kind 1) pages, or a huge
 * block's segment (kind 2). */
struct ox_heap_area {
    uintptr_t start;   /* first byte (the segment header) */
    size_t size;       /* bytes mapped */
    uint32_t kind;     /* 0 small pages, 1 medium pages, 2 one huge block */
    uint32_t slots;    /* page slots */
    uint32_t pages;    /* slots that hold a page */
};
struct ox_heap_page {
    uintptr_t start;   /* first block */
    uint32_t index;    /* slot in its area */
    uint32_t bin;      /* size class (0 for a huge block) */
    size_t block_size; /* bytes per block */
    uint32_t reserved; /* blocks that fit */
    uint32_t capacity; /* blocks carved so far */
    uint32_t used;     /* blocks in use */
    uint32_t exact;    /* 1: the calling thread's page, counts exact and blocks visited;
                          0: another thread's, counts as of its last refill */
    uint32_t full;     /* 1: in its heap's full queue (exact pages only) */
};
/* Called for each area (page and block NULL), each page (block NULL) and, with
 * OX_VISIT_BLOCKS, each live block of the calling thread's pages and each huge block, in
 * address order. Return 0 to go on, anything else to stop. The walk allocates nothing and holds
 * no lock while the function runs. */
typedef int (*ox_heap_visit_fn)(const struct ox_heap_area *area, const struct ox_heap_page *page,
                                void *block, size_t block_size, void *arg);
#define OX_VISIT_BLOCKS 1
/* Walks the heap; returns 0 when it went to the end, or the value that stopped it. */
int    ox_heap_visit(int flags, ox_heap_visit_fn visit, void *arg);

/* The sampled heap profile (OXALLOC_PROFILE=1; mean bytes between samples OXALLOC_PROFILE_RATE).
 * Writes the live samples (size, raw return addresses) and /proc/self/maps to `path`, or with
 * NULL to OXALLOC_PROFILE_FILE (`%p` is the process id; default oxalloc-profile.%p.txt), as it
 * is written at exit; `oxalloc` symbolises it. Returns 0, or -1 if profiling is off or the file
 * cannot be written. Allocates nothing. */
int    ox_profile_dump(const char *path);

/* First-class heaps: allocate into a heap of your own, then drop it whole.
 * A heap belongs to the thread that created it: only that thread allocates from it, deletes or
 * destroys it (any other thread, or a heap that is not live, ends the process with a message).
 * Its blocks are ordinary blocks: free() (or ox_free, realloc, malloc_usable_size) takes them on
 * any thread. The allocation calls follow malloc, calloc, realloc and aligned_alloc (NULL with
 * errno ENOMEM or EINVAL); ox_heap_realloc(h, p, 0) frees p and returns NULL, and a block that
 * moves is allocated from h (p may come from any heap).
 * ox_heap_destroy frees every block allocated from the heap at once, freed or not (its memory
 * goes back to oxalloc's caches): a block of it still held anywhere, by any thread, becomes
 * invalid, and freeing one later, or while the destroy runs, is undefined behaviour.
 * ox_heap_delete releases the heap but keeps its blocks valid: free each later, on any thread.
 * When a thread exits, the heaps it still has are deleted. NULL is ignored by both. */
typedef struct ox_heap ox_heap_t;
/* A new heap of the calling thread; NULL (ENOMEM) when out of memory, and always in valgrind
 * mode (OXALLOC_VALGRIND=1), which has no first-class heaps. */
ox_heap_t *ox_heap_new(void);
void   ox_heap_delete(ox_heap_t *heap);
void   ox_heap_destroy(ox_heap_t *heap);
void  *ox_heap_malloc(ox_heap_t *heap, size_t size);
void  *ox_heap_calloc(ox_heap_t *heap, size_t n, size_t size);
void  *ox_heap_realloc(ox_heap_t *heap, void *p, size_t size);
void  *ox_heap_aligned_alloc(ox_heap_t *heap, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* OXALLOC_H */
