/* Double free of a block written before the first free: q = malloc(8); q[2] = 44; free(q);
 * free(q). */
#include "misuse.h"
int main(void) {
    char *q = malloc(8);
    ptr(q);
    q[2] = 44;
    free(q);
    free(q);
    return survived();
}
