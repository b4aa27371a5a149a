/* Double free delayed by other frees in between: free(a); free(b); free(c); free(a). */
#include "misuse.h"
int main(void) {
    char *a = malloc(32), *b = malloc(32), *c = malloc(32);
    ptr(a);
    free(a);
    free(b);
    free(c);
    free(a);
    return survived();
}
