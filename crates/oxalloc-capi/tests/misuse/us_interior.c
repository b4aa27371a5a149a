/* malloc_usable_size of an interior pointer of a small block (64-byte block, 16 bytes in). */
#include "misuse.h"
#include <malloc.h>
int main(void) {
    char *p = malloc(64);
    block(p);
    ptr(p + 16);
    printf("SIZE %zu\n", malloc_usable_size(p + 16));
    return survived();
}
