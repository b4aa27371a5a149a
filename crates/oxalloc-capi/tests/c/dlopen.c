/* liboxalloc loaded with dlopen (dynamic TLS, not preloaded): its ox_ functions must work on
 * several threads. Usage: dlopen PATH-TO-liboxalloc.so */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void *(*ox_malloc)(size_t);
static void (*ox_free)(void *);

static void *work(void *arg) {
    for (int i = 0; i < 10000; i++) {
        char *p = ox_malloc(i % 3000 + 1);
        memset(p, 1, i % 3000 + 1);
        ox_free(p);
    }
    return arg;
}

int main(int argc, char **argv) {
    void *h = dlopen(argc > 1 ? argv[1] : "liboxalloc.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("FAIL dlopen: %s\n0 passed, 1 failed\n", dlerror()); return 1; }
    ox_malloc = (void *(*)(size_t))dlsym(h, "ox_malloc");
    ox_free = (void (*)(void *))dlsym(h, "ox_free");
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("ok   dlopen_threads\n1 passed, 0 failed\n");
    return 0;
}
