/* Compiled against an installed oxalloc through pkg-config (tests/install.rs): checks that the
 * program's malloc is oxalloc's (ox_malloc_usable_size ends the process on any other block) and
 * that the statistics count it. Prints "installed oxalloc in use". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oxalloc.h"

int main(void) {
    char *volatile p = malloc(100);
    if (!p || ox_malloc_usable_size(p) < 100) {
        printf("malloc is not oxalloc's\n");
        return 1;
    }
    memset(p, 1, 100);
    free(p);
    char json[4096];
    if (ox_stats_json(json, sizeof json) == 0 || !strstr(json, "\"allocations\":")) {
        printf("no statistics from ox_stats_json\n");
        return 1;
    }
    printf("installed oxalloc in use\n");
    return 0;
}
