/* Write after free, then more churn: the freed 32-byte block is overwritten, then the program
 * allocates and frees 32-byte blocks 3000 times (so the block heads a free list again, and a
 * quarantine lets it go) and allocates 200 more. */
#include "misuse.h"
int main(void) {
    char *p = malloc(32);
    ptr(p);
    free(p);
    memset(p, 0x41, 32);
    for (int i = 0; i < 3000; i++) free(malloc(32));
    for (int i = 0; i < 200; i++) {
        char *q = malloc(32);
        if (q) memset(q, 0x42, 32);
    }
    return survived();
}
