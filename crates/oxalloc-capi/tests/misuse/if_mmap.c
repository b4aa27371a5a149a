/* Invalid free: a pointer into a mapping the program made itself with mmap. */
#include "misuse.h"
#include <sys/mman.h>
int main(void) {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 3;
    ptr(m);
    free(m);
    return survived();
}
