/* Counts the inaccessible mappings (guard pages) inside the segment of a small block and right
 * after a huge block, from /proc/self/maps, and prints both counts: "SEGMENT n HUGE m". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int guards_in(uintptr_t lo, uintptr_t hi) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && perms[0] == '-' &&
            perms[1] == '-' && a < hi && b > lo)
            n++;
    }
    fclose(f);
    return n;
}

int main(void) {
    char *small = malloc(64);
    uintptr_t seg = (uintptr_t)small & ~(uintptr_t)((4 << 20) - 1);
    size_t size = 3 << 20;
    char *huge = malloc(size);
    uintptr_t end = ((uintptr_t)huge + size + 4095) & ~(uintptr_t)4095;
    printf("SEGMENT %d HUGE %d\n", guards_in(seg, seg + (4 << 20)), guards_in(end, end + 8192 + 4096));
    free(huge);
    free(small);
    return 0;
}
