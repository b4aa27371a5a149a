/* fork() from a signal handler that interrupted the same thread inside malloc, free or realloc.
 * POSIX lists fork as async-signal-safe, and glibc keeps it so with respect to malloc: the fork
 * must return in the parent and in the child, whatever the interrupted thread was doing. Another
 * thread sends the signal at random moments while the main thread allocates (small, medium and
 * huge blocks, so the slow paths that take the allocator's locks run) and forks itself now and
 * then (so the allocator's fork handlers run too), with the signal blocked around its own fork:
 * glibc 2.36 holds its own atfork lock across the fork system call, so a handler that forks
 * while the same thread is inside that system call deadlocks in glibc whatever the allocator
 * (seen with glibc's malloc and with mimalloc). The child only calls _exit.
 * A hang is the failure: the program has a time limit (alarm). Usage: fork_signal [FORKS].
 * Prints "fork_signal: N forks, 0 failed". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t forks;
static pthread_t main_thread;
static volatile int done;

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        forks++;
    }
    errno = saved;
}

static void *signaller(void *arg) {
    (void)arg;
    uint64_t s = 88172645463325252ull;
    while (!done) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        usleep(50 + s % 400);
        pthread_kill(main_thread, SIGUSR1);
    }
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "fork_signal: HANG (time limit reached)\n";
    write(2, msg, sizeof msg - 1);
    _exit(3);
}

int main(int argc, char **argv) {
    long want = argc > 1 ? atol(argv[1]) : 300;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm(60);
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, signaller, NULL);
    void *slots[64] = {0};
    uint64_t s = 1;
    long rounds = 0;
    while (forks < want) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int i = s % 64;
        size_t size = (s >> 8) % 8 == 0 ? 200000 + (s >> 20) % 3000000 : (s >> 8) % 3000;
        if ((s >> 40) % 4 == 0 && slots[i]) {
            slots[i] = realloc(slots[i], size + 1);
        } else {
            free(slots[i]);
            slots[i] = malloc(size + 1);
        }
        if (slots[i]) ((char *)slots[i])[0] = 1;
        if (++rounds % 5000 == 0) {
            /* The main thread forks too, so the allocator's fork handlers run. */
            sigset_t usr1, old;
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            pthread_sigmask(SIG_BLOCK, &usr1, &old);
            pid_t pid = fork();
            if (pid == 0) _exit(0);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        }
    }
    done = 1;
    pthread_join(t, NULL);
    for (int i = 0; i < 64; i++) free(slots[i]);
    printf("fork_signal: %ld forks, 0 failed\n", (long)forks);
    return 0;
}
