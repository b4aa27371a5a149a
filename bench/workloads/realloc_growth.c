/* Realloc growth: string builders that append random chunks with realloc to the exact new
 * length (the naive builder), and vectors that double. Stresses realloc in place and the copy
 * path across size classes up to huge blocks. Usage: realloc_growth BUILDERS */
#include "common.h"

int main(int argc, char **argv) {
    long builders = argc > 1 ? atol(argv[1]) : 3000;
    uint64_t s = 11, check = 0;
    for (long b = 0; b < builders; b++) {
        size_t target = 100 + xr(&s) % (b % 50 == 0 ? 2000000 : 20000), len = 0;
        char *str = NULL;
        while (len < target) {
            size_t chunk = 1 + xr(&s) % 64;
            str = realloc(str, len + chunk + 1);
            memset(str + len, 'a' + (int)(chunk % 26), chunk);
            len += chunk;
            str[len] = 0;
        }
        check += (unsigned char)str[len / 2];
        free(str);
        size_t cap = 1, n = 0;
        long *vec = malloc(cap * sizeof *vec);
        for (size_t i = 0; i < target; i++) {
            if (n == cap) { cap *= 2; vec = realloc(vec, cap * sizeof *vec); }
            vec[n++] = (long)i;
        }
        check += (uint64_t)vec[n - 1];
        free(vec);
    }
    report_final_rss();
    printf("realloc_growth: %ld builders, check %llu\n", builders, (unsigned long long)check);
    return 0;
}
