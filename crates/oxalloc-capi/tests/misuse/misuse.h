/* Shared by the misuse programs (one misuse each). Protocol on stdout, unbuffered:
 *   PTR 0x...     the pointer the misuse is about, printed before the misuse
 *   BLOCK 0x...   (optional) the start of the block PTR points into
 *   SURVIVED      printed after the misuse: the allocator did not stop the program
 *   NOT SUPPORTED the allocator lacks the function under test (exit code 77)
 * A SIGSEGV/SIGBUS handler prints `FAULT in <object> ...` (the object holding the faulting
 * instruction, found with dladdr) on stderr, then the signal kills the program as usual, so a
 * crash inside the allocator can be told from one in the program. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

static void misuse_fault(int sig, siginfo_t *si, void *ctx) {
    void *pc = (void *)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
    Dl_info info;
    char buf[512];
    const char *obj = dladdr(pc, &info) && info.dli_fname ? info.dli_fname : "?";
    const char *fn = dladdr(pc, &info) && info.dli_sname ? info.dli_sname : "?";
    int n = snprintf(buf, sizeof buf, "FAULT in %s (%s) signal %d at address %p\n", obj, fn, sig,
                     si->si_addr);
    if (n > 0) write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    /* SA_RESETHAND restored the default action: returning re-executes the faulting
     * instruction and the signal kills the process. */
}

__attribute__((constructor)) static void misuse_init(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = misuse_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static inline void ptr(const void *p) { printf("PTR %p\n", p); }
static inline void block(const void *p) { printf("BLOCK %p\n", p); }
static inline int survived(void) {
    printf("SURVIVED\n");
    return 0;
}
/* Keeps the compiler from removing accesses it can prove pointless. */
static inline void use(volatile const void *p) { (void)p; }
