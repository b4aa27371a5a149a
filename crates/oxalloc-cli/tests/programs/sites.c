/* Known allocation sites for the heap profile test (crates/oxalloc-cli/tests/profile.rs):
 * site_a allocates three times the bytes of site_b (both keep their blocks to the end), and
 * leak_c leaks blocks that are never freed; churn() allocates and frees at once, so it must not
 * show among live blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP 40000
static void *kept[2 * KEEP];

__attribute__((noinline)) void *site_a(size_t n) { void *p = malloc(n); memset(p, 1, n); return p; }
__attribute__((noinline)) void *site_b(size_t n) { void *p = malloc(n); memset(p, 2, n); return p; }
__attribute__((noinline)) void leak_c(void) {
    for (int i = 0; i < 2000; i++) {
        char *p = malloc(1000);
        memset(p, 3, 1000);
        __asm__ volatile("" : : "r"(p) : "memory"); /* lost: never freed */
    }
}
__attribute__((noinline)) void churn(void) {
    for (int i = 0; i < 200000; i++) {
        void *p = malloc(200);
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
}

int main(void) {
    for (int i = 0; i < KEEP; i++) {
        kept[2 * i] = site_a(300);     /* 3 x 300 bytes ... */
        kept[2 * i + 1] = site_b(100); /* ... for each 100 */
    }
    churn();
    leak_c();
    long sum = 0;
    for (int i = 0; i < 2 * KEEP; i++) sum += ((char *)kept[i])[0];
    printf("sum %ld\n", sum);
    return 0;
}
