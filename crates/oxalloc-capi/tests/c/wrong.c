/* Misuse that oxalloc must detect: each case must abort with a one-line message naming the
 * pointer, before the heap is corrupted. Usage: wrong CASE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

static void *p_shared;
static void *free_in_thread(void *arg) { free(arg); return NULL; }

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(c, "double-free")) {
        void *a = malloc(32), *b = malloc(32);
        printf("pointer %p\n", a);
        free(a);
        free(a);
        free(b);
    } else if (!strcmp(c, "double-free-huge")) {
        void *a = malloc(1 << 20);
        printf("pointer %p\n", a);
        free(a);
        free(a);
    } else if (!strcmp(c, "double-free-remote")) {
        void *a = malloc(48);
        printf("pointer %p\n", a);
        pthread_t t;
        pthread_create(&t, NULL, free_in_thread, a);
        pthread_join(t, NULL);
        pthread_create(&t, NULL, free_in_thread, a);
        pthread_join(t, NULL);
        /* The owner collects its remote frees when it allocates again. */
        for (int i = 0; i < 100000; i++) p_shared = malloc(48);
    } else if (!strcmp(c, "stack-pointer")) {
        int local = 0;
        printf("pointer %p\n", (void *)&local);
        free(&local);
    } else if (!strcmp(c, "interior-pointer")) {
        char *a = malloc(1 << 20);
        printf("pointer %p\n", (void *)(a + 4096));
        free(a + 4096);
    } else if (!strcmp(c, "usable-size-foreign")) {
        static char global[64];
        printf("pointer %p\n", (void *)global);
        printf("%zu\n", malloc_usable_size(global));
    } else {
        fprintf(stderr, "unknown case\n");
        return 2;
    }
    printf("not detected\n");
    return 0;
}
