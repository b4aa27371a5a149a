/* Double free by another thread: the allocating (main) thread frees, then thread B frees the
 * same pointer. The main thread then allocates blocks of that size again and reports (DUPLICATE)
 * if the allocator hands the block out twice. */
#include "misuse.h"
#include <pthread.h>
static void *do_free(void *p) {
    free(p);
    return NULL;
}
static void *got[4000];
int main(void) {
    char *a = malloc(48);
    ptr(a);
    free(a);
    pthread_t t;
    pthread_create(&t, NULL, do_free, a);
    pthread_join(t, NULL);
    int seen = 0;
    for (int i = 0; i < 4000; i++) {
        got[i] = malloc(48);
        if (got[i] == a && ++seen == 2) printf("DUPLICATE %p\n", got[i]);
    }
    return survived();
}
