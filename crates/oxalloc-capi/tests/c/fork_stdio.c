/* fork() while another thread runs fflush(NULL) and a third reads a stream with getline, which
 * reallocates its line buffer under the stream's lock. glibc's fork takes stdio's list lock
 * before its own malloc locks; an allocator whose atfork handler takes its lock first closes a
 * cycle: the forking thread holds the allocator's lock and waits for the list lock, fflush(NULL)
 * holds the list lock and waits for the stream's lock, and getline holds the stream's lock and
 * waits for the allocator's. The lines are long (hundreds of KiB), so getline's reallocations
 * take the allocator's slow paths, which lock. A hang is the failure (alarm). Usage:
 * fork_stdio [FORKS]. Prints "fork_stdio: N forks, 0 failed". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int done;
static char path[64];

static void *flusher(void *arg) {
    (void)arg;
    while (!done) fflush(NULL);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    while (!done) {
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char *line = NULL;
        size_t cap = 0;
        while (!done && getline(&line, &cap, f) > 0) {
            /* A fresh buffer each time, so getline allocates and grows it again. */
            free(line);
            line = NULL;
            cap = 0;
        }
        free(line);
        fclose(f);
    }
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "fork_stdio: HANG (time limit reached)\n";
    write(2, msg, sizeof msg - 1);
    _exit(3);
}

int main(int argc, char **argv) {
    long want = argc > 1 ? atol(argv[1]) : 300;
    signal(SIGALRM, on_alarm);
    alarm(60);
    snprintf(path, sizeof path, "/tmp/oxalloc-fork-stdio-%d", (int)getpid());
    FILE *w = fopen(path, "w");
    if (!w) { perror("fopen"); return 1; }
    for (int l = 0; l < 8; l++) {
        size_t n = 150000 + l * 60000;
        for (size_t i = 0; i < n; i++) fputc('a' + l, w);
        fputc('\n', w);
    }
    fclose(w);
    pthread_t a, b;
    pthread_create(&a, NULL, flusher, NULL);
    pthread_create(&b, NULL, reader, NULL);
    long forks = 0;
    for (; forks < want; forks++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child can allocate. */
            void *p = malloc(300000);
            free(p);
            _exit(p ? 0 : 1);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { printf("fork_stdio: child failed\n"); return 1; }
    }
    done = 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    unlink(path);
    printf("fork_stdio: %ld forks, 0 failed\n", forks);
    return 0;
}
