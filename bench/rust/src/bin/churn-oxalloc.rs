#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

fn main() {
    oxalloc_bench::main_with_args();
}
