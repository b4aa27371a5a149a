/* oxalloc.h: the oxalloc allocator's C API.
 *
 * liboxalloc exports the standard malloc family (malloc, free, calloc, realloc, ...), so
 * preloading or linking it replaces the system allocator. The same functions are available
 * with an `ox_` prefix, which always call oxalloc whatever else is linked in. */
#ifndef OXALLOC_H
#define OXALLOC_H

#include <stddef.h>
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

#ifdef __cplusplus
}
#endif

#endif /* OXALLOC_H */
