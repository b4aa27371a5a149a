// C++ on oxalloc (its own operator new/delete, src/cxx.rs, or malloc/free); containers, strings,
// threads, and std::bad_alloc when a request cannot be met.
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

int main() {
    int passed = 0, failed = 0;
    auto check = [&](const char *name, bool ok) {
        std::printf("%s %s\n", ok ? "ok  " : "FAIL", name);
        (ok ? passed : failed)++;
    };
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < 20000; i++) m["key" + std::to_string(i % 1000)].push_back(i);
    check("containers", m.size() == 1000 && m["key7"].size() == 20);
    std::vector<std::thread> ts;
    std::vector<std::unique_ptr<std::string>> out(8);
    for (int t = 0; t < 8; t++)
        ts.emplace_back([t, &out] {
            std::string s;
            for (int i = 0; i < 10000; i++) s += std::to_string(i);
            out[t] = std::make_unique<std::string>(s);
        });
    for (auto &t : ts) t.join();
    out.clear();  // freed on another thread than the one that allocated
    check("threads_cross_free", true);
    bool threw = false;
    try {
        volatile size_t huge = static_cast<size_t>(-1) / 2;
        char *p = new char[huge];
        p[0] = 1;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    check("bad_alloc", threw);
    auto *aligned = new (std::align_val_t(256)) double[10];
    check("aligned_new", reinterpret_cast<uintptr_t>(aligned) % 256 == 0);
    operator delete[](aligned, std::align_val_t(256));
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
