/* Double free of a large block (256 KiB). */
#include "misuse.h"
int main(void) {
    char *a = malloc(256 << 10);
    ptr(a);
    free(a);
    free(a);
    return survived();
}
