/* Heap overflow by 8 bytes past the requested size of a large block: malloc(256 KiB), then
 * the 8 bytes from p[256 KiB] on are written. */
#include "misuse.h"
int main(void) {
    size_t n = 256 << 10;
    char *p = malloc(n);
    ptr(p);
    memset(p + n, 'x', 8);
    free(p);
    return survived();
}
