//! `ox_heap_visit` from C, preloaded and linked (`c/heap_visit.c`).

mod common;
use common::*;

#[test]
fn heap_visit_preloaded() {
    let bin = compile("heap_visit.c", false);
    assert_passed("heap_visit.c preloaded", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn heap_visit_linked() {
    let bin = compile("heap_visit.c", true);
    let out = std::process::Command::new(&bin).output().unwrap();
    assert_passed("heap_visit.c linked", &out);
}
