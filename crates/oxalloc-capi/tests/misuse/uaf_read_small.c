/* Read after free, small block: the program reads back what it stored in a freed block. */
#include "misuse.h"
int main(void) {
    char *p = malloc(32);
    strcpy(p, "secret");
    ptr(p);
    free(p);
    volatile char c = p[0];
    printf("READ %d\n", c);
    return survived();
}
