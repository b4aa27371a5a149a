/* cfrac style (the continued-fraction factoring benchmark of the Zorn/Grunwald suite, used by
 * mimalloc-bench): one thread running big-number arithmetic in which every result is a fresh
 * heap block and every operand dies right after use, so nearly all allocations are tiny
 * (24-64 B) and short-lived; a few (the smooth relations found) live to the end.
 * It expands sqrt(N) as a continued fraction for a fixed 37-digit N, keeping the numerators
 * P_k mod N, and trial-divides each Q_k by a factor base of small primes (each division step
 * another temporary); Q_k whose cofactor left after trial division fits in 32 bits (cfrac's
 * "large prime" relations) are kept, with a copy of P_k and their exponent vector, in a list
 * freed only at exit. Every 16th P_k is also kept in a window of the last 2048 (medium-lived).
 * Usage: cfrac ITERATIONS */
#include "common.h"

typedef struct { uint32_t n; uint32_t d[]; } big; /* n limbs, little-endian, no leading zero limb */

static big *bnew(uint32_t n) {
    big *b = malloc(sizeof(big) + (n ? n : 1) * sizeof(uint32_t));
    b->n = n;
    return b;
}
static big *norm(big *b) { while (b->n && !b->d[b->n - 1]) b->n--; return b; }
static big *copy(const big *a) { big *b = bnew(a->n); memcpy(b->d, a->d, a->n * sizeof(uint32_t)); return b; }
static big *from_u32(uint32_t v) { big *b = bnew(1); b->d[0] = v; return norm(b); }

static int cmp(const big *a, const big *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (uint32_t i = a->n; i-- > 0;)
        if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

static big *add(const big *a, const big *b) {
    if (a->n < b->n) { const big *t = a; a = b; b = t; }
    big *r = bnew(a->n + 1);
    uint64_t c = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c;
        c >>= 32;
    }
    r->d[a->n] = (uint32_t)c;
    return norm(r);
}

static big *sub(const big *a, const big *b) { /* a >= b */
    big *r = bnew(a->n);
    int64_t c = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c;
        c >>= 32;
    }
    return norm(r);
}

static big *mul(const big *a, const big *b) {
    big *r = bnew(a->n + b->n);
    memset(r->d, 0, r->n * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t c = 0;
        for (uint32_t j = 0; j < b->n; j++) {
            c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
            r->d[i + j] = (uint32_t)c;
            c >>= 32;
        }
        r->d[i + b->n] = (uint32_t)c;
    }
    return norm(r);
}

static big *mul_add_small(const big *a, uint32_t m, uint32_t add_) {
    big *r = bnew(a->n + 1);
    uint64_t c = add_;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (uint64_t)a->d[i] * m;
        r->d[i] = (uint32_t)c;
        c >>= 32;
    }
    r->d[a->n] = (uint32_t)c;
    return norm(r);
}

static big *div_small(const big *a, uint32_t m, uint32_t *rem) {
    big *q = bnew(a->n);
    uint64_t r = 0;
    for (uint32_t i = a->n; i-- > 0;) {
        r = (r << 32) | a->d[i];
        q->d[i] = (uint32_t)(r / m);
        r %= m;
    }
    *rem = (uint32_t)r;
    return norm(q);
}

/* Knuth's algorithm D (as in Hacker's Delight, divmnu), 32-bit limbs. Quotient and remainder
 * are new numbers; the normalised copies of the operands are temporaries too. */
static big *divmod(const big *u, const big *v, big **rem) {
    if (cmp(u, v) < 0) { if (rem) *rem = copy(u); return bnew(0); }
    if (v->n == 1) {
        uint32_t r;
        big *q = div_small(u, v->d[0], &r);
        if (rem) *rem = from_u32(r);
        return q;
    }
    uint32_t n = v->n, m = u->n - v->n;
    int s = __builtin_clz(v->d[n - 1]);
    uint32_t *vn = malloc(n * sizeof(uint32_t)), *un = malloc((u->n + 1) * sizeof(uint32_t));
    for (uint32_t i = n - 1; i > 0; i--) vn[i] = (v->d[i] << s) | (s ? v->d[i - 1] >> (32 - s) : 0);
    vn[0] = v->d[0] << s;
    un[u->n] = s ? u->d[u->n - 1] >> (32 - s) : 0;
    for (uint32_t i = u->n - 1; i > 0; i--) un[i] = (u->d[i] << s) | (s ? u->d[i - 1] >> (32 - s) : 0);
    un[0] = u->d[0] << s;
    big *q = bnew(m + 1);
    for (int64_t j = m; j >= 0; j--) {
        uint64_t num = ((uint64_t)un[j + n] << 32) | un[j + n - 1];
        uint64_t qhat = num / vn[n - 1], rhat = num % vn[n - 1];
        while (qhat >> 32 || qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
            qhat--;
            rhat += vn[n - 1];
            if (rhat >> 32) break;
        }
        int64_t k = 0, t;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t p = qhat * vn[i];
            t = (int64_t)un[i + j] - k - (int64_t)(p & 0xFFFFFFFFu);
            un[i + j] = (uint32_t)t;
            k = (int64_t)(p >> 32) - (t >> 32);
        }
        t = (int64_t)un[j + n] - k;
        un[j + n] = (uint32_t)t;
        q->d[j] = (uint32_t)qhat;
        if (t < 0) {
            q->d[j]--;
            uint64_t c = 0;
            for (uint32_t i = 0; i < n; i++) {
                c += (uint64_t)un[i + j] + vn[i];
                un[i + j] = (uint32_t)c;
                c >>= 32;
            }
            un[j + n] += (uint32_t)c;
        }
    }
    if (rem) {
        big *r = bnew(n);
        for (uint32_t i = 0; i + 1 < n; i++) r->d[i] = (un[i] >> s) | (s ? un[i + 1] << (32 - s) : 0);
        r->d[n - 1] = un[n - 1] >> s;
        *rem = norm(r);
    }
    free(vn);
    free(un);
    return norm(q);
}

static big *from_decimal(const char *s) {
    big *r = bnew(0);
    for (; *s; s++) { big *t = mul_add_small(r, 10, (uint32_t)(*s - '0')); free(r); r = t; }
    return r;
}

static big *isqrt(const big *a) { /* Newton's iteration from above */
    big *x = bnew(a->n / 2 + 1);
    memset(x->d, 0, x->n * sizeof(uint32_t));
    x->d[x->n - 1] = 1u << 16;
    norm(x);
    for (;;) {
        big *q = divmod(a, x, NULL), *s = add(x, q), *y;
        uint32_t r;
        y = div_small(s, 2, &r);
        free(q), free(s);
        if (cmp(y, x) >= 0) { free(y); return x; }
        free(x);
        x = y;
    }
}

#define PRIMES 80
#define WINDOW 2048
typedef struct relation { struct relation *next; big *p, *q; uint32_t cofactor; unsigned char *exps; } relation;

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 100000;
    uint32_t primes[PRIMES];
    for (uint32_t c = 2, k = 0; k < PRIMES; c++) {
        int prime = 1;
        for (uint32_t d = 2; d * d <= c; d++) if (c % d == 0) { prime = 0; break; }
        if (prime) primes[k++] = c;
    }
    big *N = from_decimal("1047290000000000000000000000001299709");
    big *a0 = isqrt(N);
    big *m = bnew(0), *d = from_u32(1), *a = copy(a0);
    big *p_prev = from_u32(1), *p = NULL;
    free(divmod(a0, N, &p)); /* P_0 = a0 mod N */
    relation *rels = NULL;
    big *window[WINDOW] = {0};
    long smooth = 0;
    for (long k = 0; k < iterations; k++) {
        /* m' = d a - m;  d' = (N - m'^2) / d;  a' = (a0 + m') / d' */
        big *da = mul(d, a), *m2 = sub(da, m);
        free(da), free(m), m = m2;
        big *mm = mul(m, m), *nm = sub(N, mm), *d2 = divmod(nm, d, NULL);
        free(mm), free(nm), free(d), d = d2;
        big *am = add(a0, m), *a2 = divmod(am, d, NULL);
        free(am), free(a), a = a2;
        /* P' = (a' P + P_prev) mod N */
        big *ap = mul(a, p), *s = add(ap, p_prev), *p2;
        free(divmod(s, N, &p2));
        free(ap), free(s), free(p_prev);
        p_prev = p, p = p2;
        /* Trial division of Q = d' over the factor base. */
        unsigned char *exps = calloc(PRIMES, 1);
        big *q = copy(d);
        for (int i = 0; i < PRIMES && q->n; i++) {
            for (;;) {
                uint32_t r;
                big *t = div_small(q, primes[i], &r);
                if (r) { free(t); break; }
                free(q), q = t;
                exps[i]++;
            }
        }
        if (k % 16 == 0) {
            free(window[(k / 16) % WINDOW]);
            window[(k / 16) % WINDOW] = copy(p);
        }
        if (q->n <= 1) {
            relation *rel = malloc(sizeof *rel);
            rel->next = rels, rel->p = copy(p), rel->q = copy(d), rel->cofactor = q->n ? q->d[0] : 0, rel->exps = exps;
            rels = rel;
            smooth++;
        } else {
            free(exps);
        }
        free(q);
    }
    uint64_t check = 0;
    while (rels) {
        relation *r = rels;
        rels = r->next;
        for (int i = 0; i < PRIMES; i++) check = check * 31 + r->exps[i];
        check ^= (r->p->n ? r->p->d[0] : 0) ^ ((uint64_t)r->cofactor << 32);
        free(r->p), free(r->q), free(r->exps), free(r);
    }
    for (int i = 0; i < WINDOW; i++) {
        if (window[i]) check += window[i]->d[0];
        free(window[i]);
    }
    uint64_t tail = p->n ? p->d[0] : 0;
    free(N), free(a0), free(m), free(d), free(a), free(p_prev), free(p);
    report_final_rss();
    printf("cfrac: %ld iterations, %ld smooth, check %016llx, P mod 2^32 %08llx\n", iterations, smooth,
           (unsigned long long)check, (unsigned long long)tail);
    return 0;
}
