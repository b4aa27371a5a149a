//! The system allocator (glibc; jemalloc and tcmalloc when the runner preloads them).
fn main() {
    oxalloc_bench::main_with_args();
}
