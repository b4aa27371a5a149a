/* Fast-path cost: N rounds of 64 mallocs of `size` bytes followed by their 64 frees (LIFO), on
 * one thread. Run under `valgrind --tool=callgrind` with two values of N; the difference in
 * instructions divided by the difference in pairs is the cost of one malloc/free pair, with
 * start-up and the first page set-up cancelled out. Usage: pair ROUNDS [SIZE] */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 100000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    void *volatile slots[64];
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 64; i++) slots[i] = malloc(size);
        for (int i = 63; i >= 0; i--) free(slots[i]);
    }
    printf("pair: %ld pairs of %zu bytes\n", rounds * 64, size);
    return 0;
}
