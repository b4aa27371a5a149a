/* Double free of a medium block (64 KiB). */
#include "misuse.h"
int main(void) {
    char *a = malloc(64 << 10), *b = malloc(64 << 10);
    ptr(a);
    free(a);
    free(a);
    free(b);
    return survived();
}
