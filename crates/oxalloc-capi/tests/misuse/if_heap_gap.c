/* Invalid free: a never-allocated pointer further into the heap region, 1 MiB after a small
 * block (16-byte aligned); with glibc this is past the initial heap. */
#include "misuse.h"
int main(void) {
    char *a = malloc(64);
    use(a);
    ptr(a + (1 << 20));
    free(a + (1 << 20));
    return survived();
}
