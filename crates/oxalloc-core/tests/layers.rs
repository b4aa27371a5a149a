//! The layer rule of `src/lib.rs`, checked: every module may use only modules of lower layers
//! (or its own layer). The layers are read from the table in the crate's design comment, so the
//! comment and this check cannot drift apart; a module missing from the table fails too.

use std::collections::BTreeMap;
use std::path::Path;

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// `module -> layer`, parsed from the `## Layers` table of lib.rs.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut map = BTreeMap::new();
    let mut in_table = false;
    for line in lib.lines() {
        let line = line.trim_start_matches("//!").trim();
        if line.starts_with("## Layers") {
            in_table = true;
            continue;
        }
        if in_table && line.starts_with("## ") {
            break;
        }
        let mut words = line.split_whitespace();
        let Some(Ok(layer)) = words.next().map(str::parse::<usize>) else {
            continue;
        };
        let rest: String = words.collect::<Vec<_>>().join(" ");
        // Module names come first, comma separated, before the description.
        for name in rest.split("  ").next().unwrap().split(',') {
            let name = name.split_whitespace().next().unwrap_or("");
            if !name.is_empty() {
                map.insert(name.to_string(), layer);
            }
        }
    }
    assert!(map.len() > 10, "could not read the layer table: {map:?}");
    map
}

/// Every top-level module file (`src/x.rs`, `src/x/mod.rs` with its children) and its text.
fn modules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src()).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut text = String::new();
            for f in std::fs::read_dir(&path).unwrap().flatten() {
                text += &std::fs::read_to_string(f.path()).unwrap();
            }
            out.push((name, text));
        } else if name != "lib" && name != "tests" {
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn modules_use_only_lower_layers() {
    let layers = layers();
    let mut broken = Vec::new();
    for (module, text) in modules() {
        let Some(&own) = layers.get(&module) else {
            broken.push(format!(
                "module `{module}` is not in the layer table of lib.rs"
            ));
            continue;
        };
        // Test modules may reach anything.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let used: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some(&layer) = layers.get(&used) {
                if layer > own {
                    broken.push(format!(
                        "`{module}` (layer {own}) uses `{used}` (layer {layer})"
                    ));
                }
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "layer rule broken:\n{}",
        broken.join("\n")
    );
}
