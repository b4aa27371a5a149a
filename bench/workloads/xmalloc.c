/* xmalloc-test style: producer threads allocate blocks (16..256 B) and pass them in batches to
 * consumer threads, which free them: every free is a remote free, and the traffic is one-way.
 * THREADS producers and THREADS consumers. Usage: xmalloc THREADS BLOCKS-PER-PRODUCER */
#include "common.h"

#define BATCH 256
typedef struct batch { struct batch *next; void *blocks[BATCH]; } batch_t;
static batch_t *queue;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nonempty = PTHREAD_COND_INITIALIZER;
static int producers_left;
static long per_producer;

static void *producer(void *arg) {
    uint64_t s = 99 + (intptr_t)arg;
    for (long done = 0; done < per_producer; done += BATCH) {
        batch_t *b = malloc(sizeof *b);
        for (int i = 0; i < BATCH; i++) { size_t n = 16 + xr(&s) % 241; b->blocks[i] = malloc(n); memset(b->blocks[i], 1, 16); }
        pthread_mutex_lock(&lock);
        b->next = queue; queue = b;
        pthread_cond_signal(&nonempty);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    producers_left--;
    pthread_cond_broadcast(&nonempty);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!queue && producers_left) pthread_cond_wait(&nonempty, &lock);
        batch_t *b = queue;
        if (b) queue = b->next;
        pthread_mutex_unlock(&lock);
        if (!b) return NULL;
        for (int i = 0; i < BATCH; i++) free(b->blocks[i]);
        free(b);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    per_producer = argc > 2 ? atol(argv[2]) : 2000000;
    producers_left = threads;
    pthread_t p[128], c[128];
    for (intptr_t i = 0; i < threads; i++) pthread_create(&c[i], NULL, consumer, (void *)i);
    for (intptr_t i = 0; i < threads; i++) pthread_create(&p[i], NULL, producer, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < threads; i++) pthread_join(c[i], NULL);
    report_final_rss();
    printf("xmalloc: %d producers, %d consumers, %ld blocks each\n", threads, threads, per_producer);
    return 0;
}
