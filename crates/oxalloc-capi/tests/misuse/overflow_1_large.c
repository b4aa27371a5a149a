/* Heap overflow by 1 byte past the requested size of a large block: malloc(256 KiB), then
 * p[256 KiB] is written. */
#include "misuse.h"
int main(void) {
    size_t n = 256 << 10;
    char *p = malloc(n);
    ptr(p);
    p[n] = 'x';
    free(p);
    return survived();
}
