// C++ sized delete with the wrong size: ::operator delete(::operator new(32), 4096)
// (compiled with -fsized-deallocation).
#include "misuse.h"
#include <new>
int main() {
    void *p = ::operator new(32);
    ptr(p);
    ::operator delete(p, 4096);
    ::operator delete(::operator new(32));
    return survived();
}
