/* Invalid free: a stack address. */
#include "misuse.h"
int main(void) {
    char local[64];
    use(local);
    ptr(local);
    free(local);
    return survived();
}
