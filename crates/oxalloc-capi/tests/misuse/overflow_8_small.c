/* Heap overflow by 8 bytes past the requested size: malloc(24), then p[24..32) is written. */
#include "misuse.h"
int main(void) {
    char *p = malloc(24);
    ptr(p);
    memset(p + 24, 'x', 8);
    free(p);
    free(malloc(24));
    return survived();
}
