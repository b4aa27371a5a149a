/* Huge blocks grown (moved with mremap) and shrunk by realloc, half of them kept live to the
 * end: for crates/oxalloc-cli/tests/profile.rs. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(void) {
    void *keep[20];
    for (int i = 0; i < 20; i++) {
        char *p = malloc(2 << 20);
        memset(p, 1, 1 << 20);
        p = realloc(p, 64 << 20);   /* huge: moved or grown in place */
        p = realloc(p, 200 << 10);  /* shrinks */
        keep[i] = p;
    }
    for (int i = 0; i < 10; i++) free(keep[i]);
    printf("ok %p\n", keep[19]);
    return 0;
}
