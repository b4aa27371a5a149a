/* Write after free, small block: the whole freed 32-byte block is overwritten; the program then
 * allocates and frees blocks of another size and exits. */
#include "misuse.h"
int main(void) {
    char *p = malloc(32);
    ptr(p);
    free(p);
    memset(p, 0x41, 32);
    free(malloc(100));
    return survived();
}
