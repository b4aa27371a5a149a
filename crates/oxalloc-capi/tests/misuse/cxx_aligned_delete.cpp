// C++ aligned delete with the wrong alignment: a block from operator new(100, align 256) is
// released with operator delete(p, align 64).
#include "misuse.h"
#include <new>
int main() {
    void *p = ::operator new(100, std::align_val_t(256));
    ptr(p);
    ::operator delete(p, std::align_val_t(64));
    ::operator delete(::operator new(100, std::align_val_t(256)), std::align_val_t(256));
    return survived();
}
