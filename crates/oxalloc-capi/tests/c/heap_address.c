/* Prints where the heap is: the address of a small block and of a huge one. Run twice, the
 * addresses must differ (oxalloc draws its first mapping hint at random). */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *small = malloc(64);
    void *huge = malloc(1 << 20);
    printf("%p %p\n", small, huge);
    free(huge);
    free(small);
    return 0;
}
