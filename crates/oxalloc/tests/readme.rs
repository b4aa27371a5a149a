//! The README's options table documents exactly the options the code reads.

#[test]
fn readme_lists_every_option_with_its_default() {
    // The workspace's README, or the copy `cargo package` puts in the crate.
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/../../README.md"))
        .or_else(|_| std::fs::read_to_string(format!("{dir}/README.md")))
        .unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `OXALLOC_"))
        .collect();
    assert_eq!(
        rows.len(),
        oxalloc::options::TABLE.len(),
        "one README row per option"
    );
    for desc in oxalloc::options::TABLE {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `OXALLOC_{}`", desc.name)))
            .unwrap_or_else(|| panic!("OXALLOC_{} is not in the README", desc.name));
        let default = desc
            .words
            .iter()
            .find(|(_, v)| *v == desc.default)
            .map(|(w, _)| w.to_string())
            .unwrap_or_else(|| desc.default.to_string());
        let shown = if std::ptr::eq(desc.words, oxalloc::options::PATH) {
            "unset".to_string()
        } else {
            format!("`{default}`")
        };
        assert!(
            row.contains(&format!("| {shown} |")),
            "README default of OXALLOC_{}: {row}",
            desc.name
        );
    }
}

/// The README's Rust example of first-class heaps is the doctest of `oxalloc::Heap`, line for
/// line, so the README shows code that is compiled and run.
#[test]
fn readme_heap_example_is_the_heap_doctest() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/first_class.rs"))
        .unwrap();
    let start = readme
        .find("```rust\nuse allocator_api2")
        .expect("the README's heap example");
    let block: Vec<&str> = readme[start + 8..]
        .lines()
        .take_while(|l| *l != "```")
        .collect();
    let doc: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("/// ").or(l.strip_prefix("///")))
        .collect();
    let at = doc
        .iter()
        .position(|l| *l == block[0])
        .expect("the Heap doctest");
    assert_eq!(
        &doc[at..at + block.len()],
        &block[..],
        "README and doctest differ"
    );
}
