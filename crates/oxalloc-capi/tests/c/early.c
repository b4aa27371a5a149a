/* Allocation in the awkward places: a constructor that runs before main (and before or after
 * oxalloc's own), dlopen/dlsym/dlerror (glibc callocs its error buffer), thread-local storage
 * with destructors, threads that allocate in their key destructors, and atexit handlers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *from_constructor;
__attribute__((constructor(101))) static void early(void) {
    from_constructor = malloc(100);
    strcpy(from_constructor, "constructed");
    void *tmp = calloc(3, 1000);
    free(tmp);
}

static pthread_key_t key;
static void key_destructor(void *v) {
    free(v);
    /* Allocate again after the thread's heap may already be gone. */
    void *late = malloc(500);
    free(late);
}

static __thread char *tls_buffer;

static void *thread_main(void *arg) {
    tls_buffer = malloc(256);
    pthread_setspecific(key, malloc(64));
    free(tls_buffer);
    return arg;
}

static void at_exit_handler(void) {
    char *p = malloc(1000);
    memset(p, 1, 1000);
    free(p);
    free(from_constructor);
}

int main(void) {
    int passed = 0, failed = 0;
#define CHECK(name, cond) do { if (cond) { passed++; printf("ok   %s\n", name); } else { failed++; printf("FAIL %s\n", name); } } while (0)
    CHECK("constructor_allocation", from_constructor && strcmp(from_constructor, "constructed") == 0);
    void *h = dlopen("libm.so.6", RTLD_NOW);
    double (*cosine)(double) = h ? (double (*)(double))dlsym(h, "cos") : NULL;
    CHECK("dlopen_dlsym", cosine && cosine(0.0) == 1.0);
    CHECK("dlsym_missing_sets_dlerror", dlsym(h, "no_such_symbol_here") == NULL && dlerror() != NULL);
    dlclose(h);
    CHECK("dlopen_missing_library", dlopen("liboxalloc-no-such-lib.so", RTLD_NOW) == NULL && dlerror() != NULL);
    pthread_key_create(&key, key_destructor);
    int ok = 1;
    for (int round = 0; round < 50; round++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++) ok &= pthread_create(&t[i], NULL, thread_main, NULL) == 0;
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    }
    CHECK("thread_exit_destructors_allocate", ok);
    atexit(at_exit_handler);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
