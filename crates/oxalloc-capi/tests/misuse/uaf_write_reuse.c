/* Write after free followed by reuse: the freed 32-byte block is overwritten, then blocks of the
 * same size are allocated (and written) until the freed block comes back (REUSE), and 4 more. */
#include "misuse.h"
int main(void) {
    char *p = malloc(32);
    ptr(p);
    free(p);
    memset(p, 0x41, 32);
    int i = 0;
    for (; i < 10000; i++) {
        char *q = malloc(32);
        if (q) memset(q, 0x42, 32);
        if (q == p) break;
    }
    printf("REUSE after %d\n", i);
    for (int j = 0; j < 4; j++) {
        char *q = malloc(32);
        printf("NEXT %p\n", (void *)q);
        if (q) memset(q, 0x43, 32);
    }
    return survived();
}
