/* Double free of a block written between the two frees: q = malloc(8); free(q); q[0] = ...;
 * free(q), where q[0] is the block's whole first word (where allocators keep their free-list
 * link). A whole word, not one byte: oxalloc's links are XORed with a random key, and a one-byte
 * write is caught only when the key's low byte happens to equal the byte written (1 run in 256). */
#include "misuse.h"
int main(void) {
    long *q = malloc(8);
    ptr(q);
    free(q);
    q[0] = 0x4141414141414141L;
    free(q);
    return survived();
}
