/* Double free by other threads: the main thread allocates, thread A frees, then thread B frees
 * the same pointer (A is joined before B starts). */
#include "misuse.h"
#include <pthread.h>
static void *do_free(void *p) {
    free(p);
    return NULL;
}
int main(void) {
    char *a = malloc(48);
    ptr(a);
    pthread_t t;
    pthread_create(&t, NULL, do_free, a);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, do_free, a);
    pthread_join(t, NULL);
    return survived();
}
