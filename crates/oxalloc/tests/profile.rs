//! The sampled heap profile of a Rust program using oxalloc as its `#[global_allocator]`: the
//! test runs itself again as a child with `OXALLOC_PROFILE=1` (options are read at the first
//! allocation, before any test code runs), the child allocates known blocks in a known function
//! and writes the profile with `oxalloc::profile_dump`; the parent checks the file.

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

use std::alloc::Layout;
use std::hint::black_box;

const BLOCK: usize = 3000;
const COUNT: usize = 20_000;

fn layout() -> Layout {
    Layout::from_size_align(BLOCK, 8).unwrap()
}

/// Keeps `COUNT` blocks of `BLOCK` bytes (60 MB: about 115 samples at the default rate), each
/// allocated right here (a small function, so a return address into it is easy to recognise).
#[inline(never)]
fn known_site() -> Vec<usize> {
    let mut kept = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout()) };
        assert!(!p.is_null());
        kept.push(black_box(p) as usize);
    }
    kept
}

fn child(path: &str) {
    let kept = known_site();
    let c = std::ffi::CString::new(path).unwrap();
    assert!(oxalloc::profile_dump(Some(&c)), "profile_dump failed");
    // The function's address in this process (the parent's differs: ASLR).
    std::fs::write(
        format!("{path}.site"),
        format!("{:x}", known_site as *const () as usize),
    )
    .unwrap();
    for p in kept {
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(p as *mut u8, layout()) };
    }
}

#[test]
fn rust_front_end_profile_names_the_allocating_function() {
    if let Ok(path) = std::env::var("OXALLOC_PROFILE_TEST_CHILD") {
        child(&path);
        return;
    }
    let path = std::env::temp_dir().join(format!("oxalloc-rust-profile-{}", std::process::id()));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rust_front_end_profile_names_the_allocating_function",
            "--nocapture",
        ])
        .env("OXALLOC_PROFILE", "1")
        .env("OXALLOC_PROFILE_FILE", "/dev/null")
        .env("OXALLOC_PROFILE_TEST_CHILD", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let site_file = format!("{}.site", path.display());
    let site = u64::from_str_radix(&std::fs::read_to_string(&site_file).unwrap(), 16).unwrap();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&site_file);
    assert!(text.starts_with("oxalloc-profile 1\n"), "{text}");
    assert!(text.contains("\nwhen request\nrate 524288\n"), "{text}");
    let samples: Vec<Vec<&str>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sample "))
        .map(|l| l.split(' ').collect())
        .collect();
    let ours: Vec<&Vec<&str>> = samples
        .iter()
        .filter(|s| s[0] == BLOCK.to_string())
        .collect();
    // 20000 blocks of 3072 bytes, one sample per 512 KiB: 117 expected (sd 11).
    assert!(
        (60..180).contains(&ours.len()),
        "{} samples of our blocks",
        ours.len()
    );
    // Each stack reaches `known_site`: one of its return addresses lies in the function's code
    // (it is small: a loop around the allocation).
    for s in &ours {
        let frames: Vec<u64> = s[3..]
            .iter()
            .map(|f| u64::from_str_radix(f, 16).unwrap())
            .collect();
        assert!(frames.len() >= 3, "{s:?}");
        assert!(
            frames.iter().any(|&f| f > site && f < site + 4096),
            "no frame in known_site ({site:#x}): {frames:x?}"
        );
    }
    // And the mappings are there to symbolise with.
    assert!(text.contains("\nmaps\n"));
    let exe = std::env::current_exe().unwrap();
    assert!(
        text.contains(exe.to_str().unwrap()),
        "the executable's mapping"
    );
}

#[test]
fn profile_dump_is_refused_when_profiling_is_off() {
    if std::env::var("OXALLOC_PROFILE_TEST_CHILD").is_ok() {
        return;
    }
    let c = std::ffi::CString::new("/dev/null").unwrap();
    assert!(!oxalloc::profile_dump(Some(&c)));
}
