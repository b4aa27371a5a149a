/* Sized free with the wrong size: free_sized(malloc(32), 4096). free_sized (C23) is looked up
 * with dlsym, so an allocator without it reports NOT SUPPORTED (exit 77). */
#include "misuse.h"
int main(void) {
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    if (!free_sized) {
        printf("NOT SUPPORTED\n");
        return 77;
    }
    char *p = malloc(32);
    ptr(p);
    free_sized(p, 4096);
    free(malloc(32));
    return survived();
}
