/* Invalid free: an interior pointer of a small block, 8 bytes in (not 16-byte aligned). */
#include "misuse.h"
int main(void) {
    char *p = malloc(64);
    block(p);
    ptr(p + 8);
    free(p + 8);
    return survived();
}
