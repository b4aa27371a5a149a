/* Heap overflow by 1 byte past the requested size: malloc(24), then p[24] is written. */
#include "misuse.h"
int main(void) {
    char *p = malloc(24);
    ptr(p);
    p[24] = 'x';
    free(p);
    free(malloc(24));
    return survived();
}
