/* malloc_usable_size of a stack address. */
#include "misuse.h"
#include <malloc.h>
int main(void) {
    char local[64];
    use(local);
    ptr(local);
    printf("SIZE %zu\n", malloc_usable_size(local));
    return survived();
}
