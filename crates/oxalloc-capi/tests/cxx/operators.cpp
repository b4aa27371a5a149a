// liboxalloc's C++ operators (src/cxx.rs): every replaceable operator new/delete resolves into
// liboxalloc, and behaves as the standard says: the new_handler is called and the allocation
// retried, std::bad_alloc is thrown, nothrow returns nullptr (also when the new_handler throws:
// nothrow new is the throwing one inside try { } catch (...) { return nullptr; }), alignments
// are honoured, new(0) is unique, sized and aligned deletes release, and STL containers work
// across 4 threads. Prints one line per check; tests/cxx.rs compares the output with
// operators.expected. Built with g++ (libstdc++) and with clang++ -stdlib=libc++.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <new>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unordered_map>
#include <vector>

static int passed, failed;
static void check(const char *name, bool ok) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    (ok ? passed : failed)++;
}

static const char *const SYMBOLS[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZdlPv", "_ZdaPv",
    "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

static bool in_liboxalloc(const void *addr) {
    Dl_info info;
    return addr && dladdr(addr, &info) && info.dli_fname && std::strstr(info.dli_fname, "liboxalloc");
}

// Keeps the compiler from pairing and removing new/delete.
static void *volatile sink;
static size_t huge() { volatile size_t h = SIZE_MAX / 2; return h; }

static int calls;
static char *reserve;
static void free_reserve() { calls++; delete[] reserve; reserve = nullptr; std::set_new_handler(nullptr); }
static void uninstall() { calls++; std::set_new_handler(nullptr); }
struct Custom {};
static void throw_custom() { calls++; throw Custom(); }
static void throw_bad_alloc() { calls++; throw std::bad_alloc(); }
static int live_customs;
// An exception with a destructor: nothrow new must destroy what it catches.
struct Counted {
    Counted() { live_customs++; }
    Counted(const Counted &) { live_customs++; }
    ~Counted() { live_customs--; }
};
static void throw_counted() { calls++; throw Counted(); }
static void throw_int() { calls++; throw 42; }

static size_t address_space() {
    long pages = 0;
    if (FILE *f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    return (size_t)pages * 4096;
}

static void symbols() {
    int ours = 0;
    for (const char *s : SYMBOLS) {
        bool ok = in_liboxalloc(dlsym(RTLD_DEFAULT, s));
        if (!ok) std::printf("     %s does not resolve into liboxalloc\n", s);
        ours += ok;
    }
    check("every operator new/delete resolves into liboxalloc", ours == 20);
    void *(*plain)(size_t) = &::operator new;
    check("&operator new is liboxalloc's", in_liboxalloc((void *)plain));
}

static bool throws_bad_alloc_plain() {
    try {
        sink = ::operator new(huge());
    } catch (const std::bad_alloc &) {
        return true;
    }
    return false;
}

static void handlers() {
    // A handler that frees a reserve: the failed allocation is retried and succeeds. The
    // address space is limited so that 32 MiB fit only once the 48 MiB reserve is gone.
    reserve = new char[48 << 20];
    std::memset(reserve, 1, 4096);
    struct rlimit old;
    getrlimit(RLIMIT_AS, &old);
    struct rlimit lim = old;
    lim.rlim_cur = address_space() + (24 << 20);
    setrlimit(RLIMIT_AS, &lim);
    calls = 0;
    std::set_new_handler(free_reserve);
    char *p = nullptr;
    try {
        p = new char[32 << 20];
        p[0] = 1;
    } catch (const std::bad_alloc &) {
    }
    setrlimit(RLIMIT_AS, &old);
    check("new_handler frees a reserve, new retries and succeeds", p && calls == 1 && !reserve);
    delete[] p;

    calls = 0;
    std::set_new_handler(uninstall);
    bool threw = false;
    try {
        sink = ::operator new(huge());
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    check("new_handler uninstalls itself: called once, then bad_alloc", threw && calls == 1);

    calls = 0;
    std::set_new_handler(throw_custom);
    bool custom = false;
    try {
        sink = ::operator new[](huge(), std::align_val_t(64));
    } catch (const Custom &) {
        custom = true;
    }
    check("an exception thrown by the new_handler propagates from new", custom && calls == 1);

    calls = 0;
    std::set_new_handler(uninstall);
    void *n = ::operator new(huge(), std::nothrow);
    check("nothrow new calls the new_handler, then returns nullptr", !n && calls == 1);

    // The four nothrow operators, each with handlers that throw: std::bad_alloc, a class type
    // with a destructor, an int. Each must return nullptr after one call of the handler.
    void (*throwers[])() = {throw_bad_alloc, throw_counted, throw_int, throw_custom};
    int caught = 0, tries = 0;
    for (void (*h)() : throwers) {
        for (int variant = 0; variant < 4; variant++) {
            calls = 0;
            std::set_new_handler(h);
            void *r = nullptr;
            try {
                switch (variant) {
                case 0: r = ::operator new(huge(), std::nothrow); break;
                case 1: r = ::operator new[](huge(), std::nothrow); break;
                case 2: r = ::operator new(huge(), std::align_val_t(64), std::nothrow); break;
                default: r = ::operator new[](huge(), std::align_val_t(4096), std::nothrow); break;
                }
            } catch (...) {
                r = (void *)1;  // escaped: the check fails
            }
            tries++;
            caught += r == nullptr && calls == 1;
        }
    }
    std::set_new_handler(nullptr);
    check("nothrow new (all four) returns nullptr when the new_handler throws", caught == tries);
    check("nothrow new destroys the exception it catches", live_customs == 0);
    calls = 0;
    std::set_new_handler(throw_bad_alloc);
    char *arr = new (std::nothrow) char[huge()];
    sink = arr;
    std::set_new_handler(nullptr);
    check("new (nothrow) char[SIZE_MAX/2] with a throwing new_handler is nullptr", !arr && calls == 1);
    // And afterwards exceptions still work: a throwing new still throws through.
    check("after that, new still throws bad_alloc", throws_bad_alloc_plain());

    // The same from 4 threads at once (the handler is the process's).
    std::set_new_handler(throw_bad_alloc);
    std::atomic<int> nulls{0};
    {
        std::vector<std::thread> ts;
        for (int t = 0; t < 4; t++)
            ts.emplace_back([&nulls] {
                for (int i = 0; i < 200; i++)
                    nulls += ::operator new[](huge(), std::align_val_t(16 << (i % 4)), std::nothrow) == nullptr;
            });
        for (auto &t : ts) t.join();
    }
    std::set_new_handler(nullptr);
    check("nothrow new with a throwing new_handler on 4 threads at once", nulls == 800 && live_customs == 0);

    // A handler that frees a reserve and returns: nothrow new retries and succeeds.
    bool all = true;
    for (int variant = 0; variant < 4; variant++) {
        reserve = new char[48 << 20];
        std::memset(reserve, 1, 4096);
        getrlimit(RLIMIT_AS, &old);
        lim = old;
        lim.rlim_cur = address_space() + (24 << 20);
        setrlimit(RLIMIT_AS, &lim);
        calls = 0;
        std::set_new_handler(free_reserve);
        size_t n = 32 << 20;
        char *q = (char *)(variant == 0   ? ::operator new(n, std::nothrow)
                           : variant == 1 ? ::operator new[](n, std::nothrow)
                           : variant == 2 ? ::operator new(n, std::align_val_t(64), std::nothrow)
                                          : ::operator new[](n, std::align_val_t(4096), std::nothrow));
        setrlimit(RLIMIT_AS, &old);
        all = all && q && calls == 1 && !reserve;
        if (q) q[0] = 1;
        if (variant < 2)
            ::operator delete(q);
        else
            ::operator delete(q, std::align_val_t(variant == 2 ? 64 : 4096));
        std::set_new_handler(nullptr);
        delete[] reserve;
        reserve = nullptr;
    }
    check("nothrow new (all four): new_handler frees a reserve, retry succeeds", all);

    calls = 0;
    std::set_new_handler(uninstall);
    void *bad = ::operator new(64, std::align_val_t(3), std::nothrow);
    check("an invalid alignment fails without calling the new_handler", !bad && calls == 0);
    std::set_new_handler(nullptr);
}

template <class F> static bool throws_bad_alloc(F f) {
    try {
        f();
    } catch (const std::bad_alloc &) {
        return true;
    }
    return false;
}

static void failures() {
    check("new(SIZE_MAX/2) throws bad_alloc", throws_bad_alloc([] { sink = ::operator new(huge()); }));
    check("new[](SIZE_MAX/2) throws bad_alloc", throws_bad_alloc([] { sink = ::operator new[](huge()); }));
    check("new char[SIZE_MAX/2] throws bad_alloc", throws_bad_alloc([] { sink = new char[huge()]; }));
    check("aligned new(SIZE_MAX/2) throws bad_alloc",
          throws_bad_alloc([] { sink = ::operator new(huge(), std::align_val_t(128)); }));
    check("aligned new[] with alignment 3 throws bad_alloc",
          throws_bad_alloc([] { sink = ::operator new[](64, std::align_val_t(3)); }));
    check("nothrow new returns nullptr", ::operator new(huge(), std::nothrow) == nullptr);
    check("nothrow new[] returns nullptr", ::operator new[](huge(), std::nothrow) == nullptr);
    // Through sink: clang may otherwise leave out the allocation of a new-expression.
    check("new (nothrow) char[SIZE_MAX/2] is nullptr", (sink = new (std::nothrow) char[huge()]) == nullptr);
    check("aligned nothrow new returns nullptr",
          ::operator new(huge(), std::align_val_t(4096), std::nothrow) == nullptr);
    check("aligned nothrow new[] returns nullptr",
          ::operator new[](huge(), std::align_val_t(4096), std::nothrow) == nullptr);
}

static void zero_and_aligned() {
    void *a = ::operator new(0), *b = ::operator new(0), *c = ::operator new[](0);
    void *d = ::operator new(0, std::align_val_t(64)), *e = ::operator new(0, std::nothrow);
    check("new(0) returns unique non-null pointers",
          a && b && c && d && e && a != b && a != c && b != c && a != e &&
              (uintptr_t)d % 64 == 0 && in_liboxalloc(dlsym(RTLD_DEFAULT, "_Znwm")));
    ::operator delete(a);
    ::operator delete(b, (size_t)0);
    ::operator delete[](c);
    ::operator delete(d, std::align_val_t(64));
    ::operator delete(e, std::nothrow);

    bool ok = true;
    for (size_t align = 16; align <= (1 << 20); align <<= 1) {
        for (size_t size : {(size_t)1, (size_t)100, align, 3 * align + 8}) {
            char *p = (char *)::operator new(size, std::align_val_t(align));
            char *q = (char *)::operator new[](size, std::align_val_t(align));
            char *r = (char *)::operator new(size, std::align_val_t(align), std::nothrow);
            char *s = (char *)::operator new[](size, std::align_val_t(align), std::nothrow);
            for (char *x : {p, q, r, s}) {
                ok = ok && x && (uintptr_t)x % align == 0;
                if (x) std::memset(x, 0x5a, size);
            }
            ::operator delete(p, size, std::align_val_t(align));
            ::operator delete[](q, size, std::align_val_t(align));
            ::operator delete(r, std::align_val_t(align), std::nothrow);
            ::operator delete[](s, std::align_val_t(align));
        }
    }
    check("aligned new/new[] (nothrow too) for alignments 16 to 1 MiB", ok);

    struct alignas(256) Wide { char c[300]; };
    Wide *w = new Wide[5];
    Wide *one = new Wide;
    check("new-expressions of an over-aligned type", (uintptr_t)w % 256 == 0 && (uintptr_t)one % 256 == 0);
    delete[] w;
    delete one;  // the compiler's aligned sized delete
}

static void sized() {
    bool ok = true;
    for (size_t size : {(size_t)1, (size_t)24, (size_t)1000, (size_t)100000, (size_t)(3 << 20)}) {
        void *p = ::operator new(size), *q = ::operator new[](size);
        ok = ok && p && q;
        std::memset(p, 1, size);
        std::memset(q, 2, size);
        ::operator delete(p, size);
        ::operator delete[](q, size);
        void *r = ::operator new(size, std::nothrow), *s = ::operator new[](size, std::nothrow);
        ok = ok && r && s;
        ::operator delete(r, std::nothrow);
        ::operator delete[](s, std::nothrow);
        void *t = ::operator new(size, std::align_val_t(512));
        ::operator delete(t, size, std::align_val_t(512));
    }
    struct Obj { long v[5]; };
    for (int i = 0; i < 1000; i++) {
        Obj *o = new Obj();  // sized delete from the delete-expression
        sink = o;
        delete o;
    }
    check("sized, nothrow and aligned sized deletes release their blocks", ok);
}

static void containers() {
    const int T = 4, N = 20000;
    struct Work {
        std::vector<std::string> *vec;
        std::map<int, std::string> *map;
        std::unordered_map<std::string, int> *hash;
        std::string *text;
    };
    std::vector<Work> made(T);
    std::vector<std::thread> ts;
    for (int t = 0; t < T; t++)
        ts.emplace_back([t, &made] {
            Work w{new std::vector<std::string>, new std::map<int, std::string>,
                   new std::unordered_map<std::string, int>, new std::string};
            for (int i = 0; i < N; i++) {
                std::string s = "thread" + std::to_string(t) + "-item" + std::to_string(i);
                w.vec->push_back(s);
                (*w.map)[i] = s;
                (*w.hash)[s] = i;
                if (i % 10 == 0) *w.text += s;
            }
            made[t] = w;
        });
    for (auto &t : ts) t.join();
    ts.clear();
    std::atomic<int> good{0};
    // Each thread checks and frees the containers another thread built.
    for (int t = 0; t < T; t++)
        ts.emplace_back([t, &made, &good] {
            Work &w = made[(t + 1) % T];
            bool ok = w.vec->size() == N && w.map->size() == N && w.hash->size() == N;
            for (int i = 0; i < N && ok; i += 997)
                ok = (*w.hash)[(*w.map)[i]] == i && (*w.vec)[i] == (*w.map)[i];
            w.vec->erase(w.vec->begin(), w.vec->begin() + N / 2);
            w.vec->shrink_to_fit();
            delete w.vec;
            delete w.map;
            delete w.hash;
            delete w.text;
            good += ok;
        });
    for (auto &t : ts) t.join();
    check("vector, map, string, unordered_map on 4 threads, freed by other threads", good == T);
}

int main() {
    symbols();
    handlers();
    failures();
    zero_and_aligned();
    sized();
    containers();
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
