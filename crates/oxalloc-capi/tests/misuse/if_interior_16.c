/* Invalid free: an interior pointer of a small block, 16 bytes in (16-byte aligned). */
#include "misuse.h"
int main(void) {
    char *p = malloc(64);
    block(p);
    ptr(p + 16);
    free(p + 16);
    return survived();
}
