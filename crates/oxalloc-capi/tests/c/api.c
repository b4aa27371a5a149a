/* C API conformance: one named check per edge case of the malloc family, as glibc documents it.
 * Run preloaded (LD_PRELOAD=liboxalloc.so) or linked against liboxalloc; prints one line per
 * check and "N passed, N failed" at the end; exits non-zero on any failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <dlfcn.h>
#include "oxalloc.h"

/* Preloaded, the ox_ names are looked up at run time; linked, they are linked. */
#ifdef OX_DYNAMIC
#define OX(name) ((__typeof__(&name))dlsym(RTLD_DEFAULT, #name))
#else
#define OX(name) (&name)
#endif

/* glibc's internal entry points. */
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);

static int passed, failed;
#define CHECK(name, cond)                                                       \
    do {                                                                        \
        if (cond) { passed++; printf("ok   %s\n", name); }                      \
        else { failed++; printf("FAIL %s (line %d)\n", name, __LINE__); }       \
    } while (0)

/* Resident set size in KiB, from /proc/self/statm. */
static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int all_bytes(const void *p, int v, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) if (c[i] != (unsigned char)v) return 0;
    return 1;
}

static int is_ours(void *p) {
    /* The oxalloc-only entry point agrees on the block's size: the pointer came from oxalloc. */
    return p && OX(ox_malloc_usable_size)(p) == malloc_usable_size(p);
}

/* malloc_stats on a thread with a cancellation request pending: glibc disables cancellation
 * around its write (a cancellation point), so the thread must come back from malloc_stats with
 * its cancel state restored and be cancelled only at the next cancellation point. */
static void *stats_thread(void *arg) {
    int *returned = arg;
    pthread_cancel(pthread_self()); /* deferred: pending until a cancellation point */
    malloc_stats();
    int state = -1;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &state);
    *returned = 1 + (state == PTHREAD_CANCEL_ENABLE); /* 2: returned, state restored */
    for (;;) pthread_testcancel();
    return NULL;
}

static int malloc_stats_cancellation_check(void) {
    int returned = 0;
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* the statistics are not part of this program's output */
    pthread_t t;
    void *res = NULL;
    int ok = pthread_create(&t, NULL, stats_thread, &returned) == 0 && pthread_join(t, &res) == 0;
    dup2(saved, 2);
    close(saved);
    close(devnull);
    return ok && returned == 2 && res == PTHREAD_CANCELED;
}

int main(void) {
    /* malloc(0) returns a unique, freeable pointer. */
    void *z1 = malloc(0), *z2 = malloc(0);
    CHECK("malloc_zero_unique", z1 && z2 && z1 != z2);
    free(z1); free(z2);

    /* 16-byte alignment for every small size. */
    int aligned = 1;
    for (size_t s = 1; s <= 4096; s++) {
        void *p = malloc(s);
        if (!p || ((uintptr_t)p & 15)) aligned = 0;
        free(p);
    }
    CHECK("malloc_alignment_16", aligned);

    errno = 0;
    CHECK("malloc_overflow_enomem", malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK("malloc_half_space_enomem", malloc(SIZE_MAX / 2 + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK("calloc_overflow_enomem", calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);

    /* calloc zeroes reused memory too. */
    int zero_ok = 1;
    for (size_t s = 8; s <= (1 << 20); s *= 3) {
        unsigned char *d = malloc(s);
        memset(d, 0xAA, s);
        free(d);
        unsigned char *c = calloc(1, s);
        if (!c || !all_bytes(c, 0, s)) zero_ok = 0;
        free(c);
    }
    CHECK("calloc_zeroes", zero_ok);

    /* realloc keeps contents growing through every kind of block, and shrinking. */
    size_t n = 1;
    unsigned char *r = malloc(n);
    r[0] = 0x5A;
    int kept = 1;
    while (n < (16u << 20)) {
        size_t m = n * 2 + 7;
        r = realloc(r, m);
        if (!r || !all_bytes(r, 0x5A, n)) { kept = 0; break; }
        memset(r, 0x5A, m);
        n = m;
    }
    while (kept && n > 3) {
        n /= 3;
        r = realloc(r, n);
        if (!r || !all_bytes(r, 0x5A, n)) kept = 0;
    }
    CHECK("realloc_keeps_contents", kept);
    free(r);

    void *rn = realloc(NULL, 100);
    CHECK("realloc_null_is_malloc", rn != NULL && malloc_usable_size(rn) >= 100);
    CHECK("realloc_zero_frees", realloc(rn, 0) == NULL);

    char *keep = malloc(64);
    memset(keep, 7, 64);
    errno = 0;
    CHECK("realloc_failure_keeps_block", realloc(keep, SIZE_MAX - 4096) == NULL && errno == ENOMEM && all_bytes(keep, 7, 64));
    errno = 0;
    CHECK("reallocarray_overflow_enomem", reallocarray(keep, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM && all_bytes(keep, 7, 64));
    keep = reallocarray(keep, 10, 100);
    CHECK("reallocarray_grows", keep && malloc_usable_size(keep) >= 1000 && all_bytes(keep, 7, 64));
    free(keep);

    /* posix_memalign: EINVAL for bad alignments, and *out untouched. */
    void *out = (void *)0x1234;
    CHECK("posix_memalign_einval_3", posix_memalign(&out, 3, 10) == EINVAL && out == (void *)0x1234);
    CHECK("posix_memalign_einval_4", posix_memalign(&out, 4, 10) == EINVAL && out == (void *)0x1234);
    CHECK("posix_memalign_einval_0", posix_memalign(&out, 0, 10) == EINVAL && out == (void *)0x1234);
    CHECK("posix_memalign_einval_24", posix_memalign(&out, 24, 10) == EINVAL);
    int pm_ok = 1;
    for (size_t a = sizeof(void *); a <= (1 << 21); a *= 2) {
        for (size_t s = 0; s < 300000; s = s * 5 + 1) {
            void *p = NULL;
            if (posix_memalign(&p, a, s) != 0 || ((uintptr_t)p & (a - 1))) pm_ok = 0;
            else memset(p, 1, s);
            free(p);
        }
    }
    CHECK("posix_memalign_aligns", pm_ok);
    errno = 0;
    CHECK("posix_memalign_enomem", posix_memalign(&out, 64, SIZE_MAX) == ENOMEM);
    /* A failure sets errno to the error it returns (glibc does for ENOMEM). Called through a
     * volatile pointer: gcc assumes its builtin posix_memalign leaves errno alone. */
    int (*volatile pm)(void **, size_t, size_t) = posix_memalign;
    int pm_e1, pm_e2;
    errno = 0;
    pm_e1 = pm(&out, 64, SIZE_MAX);
    pm_e1 = pm_e1 == ENOMEM && errno == ENOMEM;
    errno = 0;
    pm_e2 = pm(&out, 24, 10);
    pm_e2 = pm_e2 == EINVAL && errno == EINVAL;
    CHECK("posix_memalign_failure_sets_errno", pm_e1 && pm_e2 && out == (void *)0x1234);

    void *aa = aligned_alloc(64, 100);
    CHECK("aligned_alloc_aligns", aa && ((uintptr_t)aa & 63) == 0);
    free(aa);
    errno = 0;
    CHECK("aligned_alloc_einval", aligned_alloc(3, 100) == NULL && errno == EINVAL);

    void *ma = memalign(4096, 10);
    CHECK("memalign_aligns", ma && ((uintptr_t)ma & 4095) == 0);
    free(ma);
    void *ma3 = memalign(48, 10); /* glibc rounds up to a power of two */
    CHECK("memalign_rounds_alignment", ma3 && ((uintptr_t)ma3 & 63) == 0);
    free(ma3);
    long page = sysconf(_SC_PAGESIZE);
    void *va = valloc(100);
    CHECK("valloc_page_aligned", va && ((uintptr_t)va % page) == 0);
    free(va);
    void *pv = pvalloc(100);
    CHECK("pvalloc_rounds_to_page", pv && ((uintptr_t)pv % page) == 0 && malloc_usable_size(pv) >= (size_t)page);
    free(pv);
    errno = 0;
    CHECK("pvalloc_overflow_enomem", pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);

    /* malloc_usable_size: at least the request, and all of it writable. */
    int us_ok = 1;
    for (size_t s = 1; s < (3u << 20); s = s * 3 / 2 + 1) {
        unsigned char *p = malloc(s), *q = malloc(s);
        size_t u = malloc_usable_size(p);
        if (u < s) us_ok = 0;
        memset(q, 0x11, s);
        memset(p, 0x22, u);
        if (!all_bytes(q, 0x11, s)) us_ok = 0;
        free(p); free(q);
    }
    CHECK("malloc_usable_size_writable", us_ok);
    CHECK("malloc_usable_size_null", malloc_usable_size(NULL) == 0);

    /* free(NULL) does nothing, and free never changes errno. */
    void *fe = malloc(10), *fh = malloc(50 << 20);
    errno = 4321;
    free(NULL);
    free(fe);
    free(fh);
    CHECK("free_keeps_errno", errno == 4321);

    /* C23's sized frees (looked up at run time: glibc 2.36 does not have them). */
    void (*fsz)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fasz)(void *, size_t, size_t) = (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    void *fs = malloc(100);
    void *fa = aligned_alloc(256, 512);
    if (fsz) fsz(fs, 100);
    if (fasz) fasz(fa, 256, 512);
    CHECK("free_sized_and_aligned_sized", fsz && fasz);

    /* glibc's internal entry points share the heap. */
    void *lm = __libc_malloc(40);
    CHECK("libc_malloc_is_ours", is_ours(lm));
    free(lm);
    void *lc = __libc_calloc(4, 10);
    CHECK("libc_calloc_zeroes", lc && all_bytes(lc, 0, 40));
    lc = __libc_realloc(lc, 4000);
    void *la = __libc_memalign(128, 10);
    CHECK("libc_memalign_aligns", la && ((uintptr_t)la & 127) == 0);
    __libc_free(lc);
    __libc_free(la);

    /* Memory allocated inside glibc is oxalloc's and can be freed with free. */
    char *sd = strdup("hello");
    CHECK("strdup_is_ours", is_ours(sd));
    free(sd);
    char *as = NULL;
    CHECK("asprintf_is_ours", asprintf(&as, "%d-%s", 42, "x") == 4 && is_ours(as));
    free(as);
    char *ms = NULL;
    size_t msz = 0;
    FILE *mf = open_memstream(&ms, &msz);
    for (int i = 0; i < 1000; i++) fprintf(mf, "line %d\n", i);
    fclose(mf);
    CHECK("open_memstream_is_ours", is_ours(ms) && msz > 5000);
    free(ms);
    FILE *gl = fmemopen((void *)"a\nbb\nccc\n", 9, "r");
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, gl) > 0) lines++;
    fclose(gl);
    CHECK("getline_is_ours", lines == 3 && is_ours(line));
    free(line);

    /* Huge blocks are mapped and unmapped. */
    unsigned char *huge = malloc(64u << 20);
    huge[0] = 1; huge[(64u << 20) - 1] = 2;
    CHECK("huge_block_writable", huge[0] == 1 && huge[(64u << 20) - 1] == 2);
    free(huge);
    unsigned char *hz = calloc(1, 32u << 20);
    CHECK("huge_calloc_zero", hz && hz[12345] == 0 && hz[(32u << 20) - 1] == 0);
    free(hz);

    /* Introspection. */
    void *hold = malloc(1000);
    struct mallinfo2 mi2 = mallinfo2();
    CHECK("mallinfo2_counts_live", mi2.uordblks >= 1000 && mi2.arena > 0);
    struct mallinfo mi = mallinfo();
    CHECK("mallinfo_counts_live", mi.uordblks >= 1000);
    free(hold);
    CHECK("malloc_trim_returns", malloc_trim(0) >= 0);
    CHECK("mallopt_known_param", mallopt(M_ARENA_MAX, 1) == 1 && mallopt(12345, 1) == 0);
    /* M_TRIM_THRESHOLD 0: a freed 32 MiB block leaves the resident set at once, no trim. */
    CHECK("mallopt_trim_threshold", mallopt(M_TRIM_THRESHOLD, 0) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 0);
    char *big = malloc(32 << 20);
    memset(big, 1, 32 << 20);
    long rss_full = rss_kib();
    free(big);
    long rss_freed = rss_kib();
    CHECK("mallopt_trim_threshold_purges_at_once", rss_full - rss_freed > 24 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    char *info = NULL;
    size_t info_len = 0;
    FILE *inf = open_memstream(&info, &info_len);
    int ir = malloc_info(0, inf);
    fclose(inf);
    CHECK("malloc_info_xml", ir == 0 && strstr(info, "<malloc version=\"oxalloc") && strstr(info, "</malloc>"));
    free(info);
    errno = 0;
    CHECK("malloc_info_einval", malloc_info(1, stdout) == -1 && errno == EINVAL);
    CHECK("malloc_stats_not_cancelled", malloc_stats_cancellation_check());
    char js[4096];
    size_t jn = OX(ox_stats_json)(js, sizeof js);
    CHECK("ox_stats_json", jn > 0 && jn < sizeof js && strstr(js, "\"allocations\":"));

    /* The ox_ names work alongside the standard ones. */
    void *ox = OX(ox_malloc)(77);
    CHECK("ox_malloc_usable", ox && OX(ox_malloc_usable_size)(ox) >= 77);
    ox = OX(ox_realloc)(ox, 5000);
    void *oc = OX(ox_calloc)(10, 10);
    CHECK("ox_calloc_zero", oc && all_bytes(oc, 0, 100));
    void *op = NULL;
    CHECK("ox_posix_memalign", OX(ox_posix_memalign)(&op, 1024, 10) == 0 && ((uintptr_t)op & 1023) == 0);
    OX(ox_free)(ox); OX(ox_free)(oc); free(op);

    /* A huge block that cannot grow where it is moves onto a cached span, not a new mapping:
     * b's span is cached, a's end is blocked by a mapping of ours, and a grows past its span. */
    malloc_trim(0);
    unsigned char *a = malloc(3u << 20);
    unsigned char *b = malloc(16u << 20);
    memset(a, 0x5c, 3u << 20);
    free(b);
    void *fence = mmap(a + malloc_usable_size(a), 4096, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    unsigned char *grown = realloc(a, 8u << 20);
    CHECK("huge_realloc_moves_onto_cached_span", grown == b && all_bytes(grown, 0x5c, 3u << 20));
    free(grown);
    if (fence != MAP_FAILED) munmap(fence, 4096);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
