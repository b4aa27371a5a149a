/* Zero-size block read and written: p = malloc(0); read p[0]; p[0] = 1; free(p). */
#include "misuse.h"
int main(void) {
    char *p = malloc(0);
    ptr(p);
    volatile char c = p[0];
    (void)c;
    p[0] = 1;
    free(p);
    return survived();
}
