/* Runs one benchmark process and reports its wall time, CPU time and peak RSS.
 * Usage: measure OUTFILE PRELOAD|- PROGRAM ARGS...
 * A launcher of its own, small, because Linux keeps a process's peak RSS across exec: a child
 * forked from the (Python) runner would report at least the runner's size. PRELOAD is put in
 * the child's environment only, so the launcher itself runs on the system allocator.
 * OUTFILE receives: exit-status wall-seconds cpu-seconds peak-rss-kib */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: measure OUTFILE PRELOAD|- PROGRAM ARGS...\n"); return 2; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(argv[2], "-") != 0) setenv("LD_PRELOAD", argv[2], 1);
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%d %.6f %.6f %ld\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), wall, cpu, ru.ru_maxrss);
    fclose(f);
    return 0;
}
