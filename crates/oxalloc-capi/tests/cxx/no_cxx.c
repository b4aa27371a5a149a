// A C program, which loads no C++ runtime, on liboxalloc (preloaded or linked): the library
// still loads (it refers to no C++ symbol: src/cxx.rs looks them up when a new fails), malloc
// and free work, and its operator new, reached through dlsym, serves blocks; a failed nothrow
// new returns NULL rather than aborting, since there is no new_handler to ask.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
static void check(const char *name, int ok) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    ok ? passed++ : failed++;
}

static int maps_mention(const char *what) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, what) != NULL;
    if (f) fclose(f);
    return found;
}

int main(void) {
    check("no C++ runtime is loaded", !maps_mention("libstdc++") && !maps_mention("libc++"));
    check("liboxalloc is loaded", maps_mention("liboxalloc"));
    char *p = malloc(100);
    memset(p, 1, 100);
    free(p);
    check("malloc and free", p != NULL);

    void *(*new_nothrow)(size_t, const void *) =
        (void *(*)(size_t, const void *))dlsym(RTLD_DEFAULT, "_ZnwmRKSt9nothrow_t");
    void *(*new_plain)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "_Znwm");
    void (*delete_plain)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZdlPv");
    check("operator new and delete are there", new_nothrow && new_plain && delete_plain);
    if (new_nothrow && new_plain && delete_plain) {
        void *q = new_plain(64);
        check("operator new(64) serves a block", q != NULL);
        delete_plain(q);
        char tag = 0;
        check("a failed nothrow operator new returns NULL", new_nothrow(SIZE_MAX / 2, &tag) == NULL);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
