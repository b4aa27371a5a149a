/* Double free of a small block (32 bytes), freed twice in a row. */
#include "misuse.h"
int main(void) {
    char *a = malloc(32), *b = malloc(32);
    ptr(a);
    free(a);
    free(a);
    free(b);
    return survived();
}
