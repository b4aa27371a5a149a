/* The background purge thread (OXALLOC_PURGE_THREAD=1). Usage: purge_thread MODE [ARG].
 *   sleep   256 MiB of small blocks (200 B) and 256 MiB of large ones (1 MiB) are allocated,
 *           touched and freed; then the program only sleeps, 10 ms at a time, for 2 s. It prints
 *           "purge_thread sleep: back within 16 MiB after N ms" (or "never") and the RSS over
 *           the start after 4 purge delays and at the end:
 *           "purge_thread sleep: RSS over start X MiB after 4 delays, Y MiB after 2 s".
 *   abandoned  two threads allocate 128 MiB of 64-byte blocks each and exit; this thread frees
 *           them all, then only sleeps, printing as the sleep mode.
 *   fork    ARG times: allocates and frees a few MiB in pages of many classes (so the purge
 *           thread has slots to claim), then forks; the child allocates and frees the same way,
 *           checks that its own purge thread has started (a thread named oxalloc-purge in
 *           /proc/self/task, restarted by its allocations) and exits; the parent waits for it.
 *           A hang is a failure (alarm, exit 3).
 *   stress  4 threads for ARG ms allocate blocks of every kind (small, medium, huge), fill them
 *           with a pattern, pass a share to the next thread, which checks and frees them, and
 *           free the rest in bursts, so pages are retired and taken again while the purge
 *           thread claims and purges free slots (run with OXALLOC_PURGE_DELAY=0 or 1): a block
 *           that lost its contents is a failure.
 * Every mode ends with "purge_thread MODE: N checks, F failed". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks, failed;
#define CHECK(c, ...) do { checks++; if (!(c)) { failed++; fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* VmRSS in KiB, read with open and read only: no stdio, so reading it allocates nothing (a
 * malloc here would run the allocator's slow path, and its purge clock, which the sleep mode
 * must not). */
static long rss_kib(void) {
    static char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *line = strstr(buf, "VmRSS:");
    return line ? atol(line + 6) : -1;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static long delay_ms(void) {
    const char *d = getenv("OXALLOC_PURGE_DELAY");
    return d ? atol(d) : 50;
}

/* Whether a thread named oxalloc-purge runs in this process. */
static int has_purge_thread(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) {
        char path[300], name[32] = {0};
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(name, sizeof name, f) && strncmp(name, "oxalloc-purge", 13) == 0) found = 1;
        if (f) fclose(f);
    }
    if (d) closedir(d);
    return found;
}

static void sleep_and_report(const char *mode, long start);

static void mode_sleep(void) {
    long start = rss_kib();
    size_t nsmall = (256u << 20) / 200, nlarge = 256;
    char **small = malloc(nsmall * sizeof *small);
    char **large = malloc(nlarge * sizeof *large);
    for (size_t i = 0; i < nsmall; i++) { small[i] = malloc(200); memset(small[i], 1, 200); }
    for (size_t i = 0; i < nlarge; i++) { large[i] = malloc(1 << 20); memset(large[i], 2, 1 << 20); }
    long peak = rss_kib();
    CHECK(peak - start > 400 * 1024, "only %ld MiB resident at the peak", (peak - start) / 1024);
    for (size_t i = 0; i < nsmall; i++) free(small[i]);
    for (size_t i = 0; i < nlarge; i++) free(large[i]);
    free(small);
    free(large);
    sleep_and_report("sleep", start);
}

/* Sleeps 2 s, 10 ms at a time, and prints when RSS came back within 16 MiB of `start`, and
 * what it was after 4 purge delays and at the end. */
static void sleep_and_report(const char *mode, long start) {
    double t0 = now_ms(), back = -1;
    long at4 = -1;
    struct timespec ten = {0, 10 * 1000 * 1000};
    while (now_ms() - t0 < 2000) {
        nanosleep(&ten, NULL);
        long r = rss_kib() - start;
        if (back < 0 && r < 16 * 1024) back = now_ms() - t0;
        if (at4 < 0 && now_ms() - t0 >= 4 * delay_ms()) at4 = r;
    }
    if (back >= 0) printf("purge_thread %s: back within 16 MiB after %.0f ms\n", mode, back);
    else printf("purge_thread %s: back within 16 MiB after never\n", mode);
    printf("purge_thread %s: RSS over start %.1f MiB after 4 delays, %.1f MiB after 2 s\n", mode,
           at4 / 1024.0, (rss_kib() - start) / 1024.0);
    printf("purge_thread %s: thread %s\n", mode, has_purge_thread() ? "running" : "absent");
}

#define AB_BLOCKS (128u * 1024 * 1024 / 64)
static void *ab_thread(void *arg) {
    void **v = arg;
    for (size_t i = 0; i < AB_BLOCKS; i++) { v[i] = malloc(64); memset(v[i], 5, 64); }
    return NULL;
}

/* Two threads allocate 128 MiB of 64-byte blocks each and exit; this thread frees them all
 * (into the segments the threads abandoned), then only sleeps. */
static void mode_abandoned(void) {
    long start = rss_kib();
    void **v[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) { v[i] = malloc(AB_BLOCKS * sizeof(void *)); pthread_create(&t[i], NULL, ab_thread, v[i]); }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    long peak = rss_kib();
    CHECK(peak - start > 200 * 1024, "only %ld MiB resident at the peak", (peak - start) / 1024);
    for (int i = 0; i < 2; i++) { for (size_t j = 0; j < AB_BLOCKS; j++) free(v[i][j]); free(v[i]); }
    sleep_and_report("abandoned", start);
}

/* Blocks of many classes, allocated then freed in bursts: pages retire, their slots are
 * published, and the next burst takes them again. */
static void churn(int rounds) {
    static void *b[4096];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 4096; i++) {
            size_t n = 16 + (size_t)((i * 2654435761u + r) % 20000);
            b[i] = malloc(n);
            if (b[i]) memset(b[i], i, n < 64 ? n : 64);
        }
        for (int i = 0; i < 4096; i++) free(b[i]);
    }
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "purge_thread: HANG (time limit reached)\n";
    write(2, msg, sizeof msg - 1);
    _exit(3);
}

static void mode_fork(int n) {
    churn(2);
    CHECK(has_purge_thread(), "no purge thread in the parent");
    for (int k = 0; k < n; k++) {
        churn(1);
        pid_t pid = fork();
        if (pid == 0) {
            churn(3);
            int ok = 0;
            for (int i = 0; i < 100 && !(ok = has_purge_thread()); i++) { churn(1); usleep(1000); }
            _exit(ok ? 0 : 1);
        }
        CHECK(pid > 0, "fork failed: %s", strerror(errno));
        int st = 0;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x (1: no purge thread)", k, st);
    }
}

#define THREADS 4
#define SLOTS 1024
static volatile int stop;
/* Blocks passed from thread i to thread i+1 (each a single-producer, single-consumer ring). */
static struct { char *volatile p[SLOTS]; volatile size_t n[SLOTS]; } pass[THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fill(char *p, size_t n, uint8_t tag) {
    for (size_t i = 0; i < n; i += 512) p[i] = (char)(tag + i / 512);
    p[n - 1] = (char)(tag + (n - 1) / 512);
}
static int intact(const char *p, size_t n, uint8_t tag) {
    for (size_t i = 0; i < n; i += 512) if (p[i] != (char)(tag + i / 512)) return 0;
    return p[n - 1] == (char)(tag + (n - 1) / 512);
}

static void *stress_thread(void *arg) {
    int me = (int)(intptr_t)arg, next = (me + 1) % THREADS;
    uint64_t s = 0x9E3779B97F4A7C15ull * (me + 1);
    static __thread char *mine[2048];
    static __thread size_t len[2048];
    int bad = 0, n = 0;
    while (!stop) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int burst = 256 + (int)(s % 1792);
        for (int i = 0; i < burst; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t sz = s % 100 == 0 ? 200000 + s % 300000 : s % 10 == 0 ? 8000 + s % 100000 : 16 + s % 2000;
            mine[i] = malloc(sz);
            len[i] = sz;
            fill(mine[i], sz, (uint8_t)(sz * 7 + me));
        }
        /* Hand a share to the next thread, take what the previous one left. */
        for (int i = 0; i < burst; i += 8) {
            int k = (int)((s + i) % SLOTS);
            if (!pass[next].p[k]) { pass[next].n[k] = len[i]; pass[next].p[k] = mine[i]; mine[i] = NULL; }
        }
        for (int k = 0; k < SLOTS; k++) {
            char *p = pass[me].p[k];
            if (p) {
                size_t sz = pass[me].n[k];
                bad += !intact(p, sz, (uint8_t)(sz * 7 + (me + THREADS - 1) % THREADS));
                pass[me].p[k] = NULL;
                free(p);
                n++;
            }
        }
        for (int i = 0; i < burst; i++) {
            if (!mine[i]) continue;
            bad += !intact(mine[i], len[i], (uint8_t)(len[i] * 7 + me));
            free(mine[i]);
            n++;
        }
        if (s % 16 == 0) usleep(s % 3000); /* let slots wait out the delay now and then */
    }
    pthread_mutex_lock(&lock);
    checks += n;
    failed += bad;
    if (bad) fprintf(stderr, "thread %d: %d blocks lost their contents\n", me, bad);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void mode_stress(int ms) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, stress_thread, (void *)(intptr_t)i);
    usleep(ms * 1000);
    CHECK(has_purge_thread(), "no purge thread");
    stop = 1;
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < SLOTS; k++) free(pass[i].p[k]);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleep";
    int arg = argc > 2 ? atoi(argv[2]) : 0;
    signal(SIGALRM, on_alarm);
    alarm(120);
    if (strcmp(mode, "sleep") == 0) mode_sleep();
    else if (strcmp(mode, "abandoned") == 0) mode_abandoned();
    else if (strcmp(mode, "fork") == 0) mode_fork(arg ? arg : 50);
    else if (strcmp(mode, "stress") == 0) mode_stress(arg ? arg : 3000);
    else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
    printf("purge_thread %s: %d checks, %d failed\n", mode, checks, failed);
    return failed != 0;
}
