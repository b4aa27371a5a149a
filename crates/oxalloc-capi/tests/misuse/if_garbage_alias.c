/* Invalid free: a garbage pointer made by corrupting the top byte of a live block's address
 * (a non-canonical address whose low 48 bits are a real block). */
#include "misuse.h"
int main(void) {
    char *a = malloc(32);
    char *bad = (char *)((uintptr_t)a ^ ((uintptr_t)0xbe << 56));
    block(a);
    ptr(bad);
    free(bad);
    return survived();
}
