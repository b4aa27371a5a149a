/* Invalid free: a never-allocated pointer inside the heap, at a block boundary: 20 blocks of
 * 64 bytes after the only 64-byte block the program allocated. */
#include "misuse.h"
int main(void) {
    char *a = malloc(64);
    use(a);
    ptr(a + 64 * 20);
    free(a + 64 * 20);
    return survived();
}
