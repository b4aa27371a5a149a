/* Double free of a large block (8 MiB). */
#include "misuse.h"
int main(void) {
    char *a = malloc(8 << 20);
    ptr(a);
    free(a);
    free(a);
    return survived();
}
