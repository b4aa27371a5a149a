/* Invalid free: an interior pointer of a large block (256 KiB block, 4 KiB in). */
#include "misuse.h"
int main(void) {
    char *p = malloc(256 << 10);
    block(p);
    ptr(p + 4096);
    free(p + 4096);
    return survived();
}
