//! First-class heaps from C (`c/heaps.c`), preloaded and linked: 10,000 heaps without growth,
//! frees from other threads, destroy and delete with live blocks, calloc/realloc/aligned, a heap
//! alive at thread exit; a heap used by a thread that did not create it ends the process; and
//! valgrind mode has no heaps.

mod common;
use common::*;

#[test]
fn heaps_preloaded() {
    let bin = compile("heaps.c", false);
    let out = run_preloaded(&bin, &[], &[]);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert_passed("heaps.c preloaded", &out);
}

#[test]
fn heaps_linked() {
    let bin = compile("heaps.c", true);
    let out = std::process::Command::new(&bin).output().unwrap();
    assert_passed("heaps.c linked", &out);
}

#[test]
fn a_heap_used_by_another_thread_ends_the_process() {
    let bin = compile("heaps.c", false);
    let out = run_preloaded(&bin, &["wrong-thread"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("ox_heap_malloc(): not a live heap of this thread"),
        "{}: {stderr}",
        out.status
    );
}

#[test]
fn valgrind_mode_has_no_heaps() {
    let bin = compile("heaps.c", false);
    let out = run_preloaded(&bin, &["new-only"], &[("OXALLOC_VALGRIND", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ox_heap_new: NULL, errno ENOMEM"),
        "{}: {stdout}",
        out.status
    );
    let out = run_preloaded(&bin, &["new-only"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ox_heap_new: a heap"));
}

#[test]
fn heaps_in_secure_mode() {
    let bin = compile("heaps.c", false);
    for level in ["1", "2"] {
        let out = run_preloaded(&bin, &[], &[("OXALLOC_SECURE", level)]);
        assert_passed(&format!("heaps.c with OXALLOC_SECURE={level}"), &out);
    }
}

#[test]
fn heaps_with_sampled_profiling() {
    let bin = compile("heaps.c", false);
    let file = out_dir().join("heaps-profile.%p.txt");
    let out = run_preloaded(
        &bin,
        &[],
        &[
            ("OXALLOC_PROFILE", "1"),
            ("OXALLOC_PROFILE_RATE", "4096"),
            ("OXALLOC_PROFILE_FILE", file.to_str().unwrap()),
        ],
    );
    assert_passed("heaps.c with OXALLOC_PROFILE=1", &out);
}
