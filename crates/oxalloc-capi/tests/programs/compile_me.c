/* A C program for gcc to compile under oxalloc: enough code for the optimiser to allocate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { int key; struct node *left, *right; };

static struct node *insert(struct node *n, int key) {
    if (!n) { n = calloc(1, sizeof *n); n->key = key; return n; }
    if (key < n->key) n->left = insert(n->left, key); else n->right = insert(n->right, key);
    return n;
}
static long sum(const struct node *n) { return n ? n->key + sum(n->left) + sum(n->right) : 0; }
static int depth(const struct node *n) { if (!n) return 0; int a = depth(n->left), b = depth(n->right); return 1 + (a > b ? a : b); }

#define SORT(T) static void sort_##T(T *a, int n) { for (int i = 1; i < n; i++) { T v = a[i]; int j = i - 1; while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; } a[j + 1] = v; } }
SORT(int) SORT(long) SORT(double) SORT(short)

int main(void) {
    struct node *root = NULL;
    unsigned x = 12345;
    for (int i = 0; i < 10000; i++) { x = x * 1103515245 + 12345; root = insert(root, (int)(x % 100000)); }
    int a[100]; long b[100]; double c[100]; short d[100];
    for (int i = 0; i < 100; i++) { a[i] = 100 - i; b[i] = i * 37 % 100; c[i] = (i * 13) % 7; d[i] = (short)(i ^ 5); }
    sort_int(a, 100); sort_long(b, 100); sort_double(c, 100); sort_short(d, 100);
    printf("sum=%ld depth=%d a0=%d b99=%ld c50=%g d7=%d\n", sum(root), depth(root), a[0], b[99], c[50], d[7]);
    return 0;
}
