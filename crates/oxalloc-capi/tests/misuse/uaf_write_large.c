/* Write after free, large block (256 KiB): the first page of the freed block is overwritten. */
#include "misuse.h"
int main(void) {
    char *p = malloc(256 << 10);
    ptr(p);
    free(p);
    memset(p, 0x41, 4096);
    free(malloc(100));
    return survived();
}
