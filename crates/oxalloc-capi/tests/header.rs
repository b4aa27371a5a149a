//! The library's interface as a C program and the dynamic linker see it: `include/oxalloc.h`
//! declares exactly the `ox_*` functions liboxalloc.so exports (both ways), every declaration
//! compiles and links from C and C++, the library exports every replaceable C++ operator
//! new/delete (mangled, on purpose not in the header), and it carries its SONAME.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn header() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include/oxalloc.h")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (cc and binutils are needed: see .ci/run)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `ox_*` functions `oxalloc.h` declares: identifiers starting with `ox_` followed by `(`
/// in the preprocessed header (comments removed; struct tags are not followed by `(`).
fn declared() -> BTreeSet<String> {
    let text = run(Command::new("cc")
        .args(["-E", "-P", "-x", "c"])
        .arg(header()));
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"ox_") && (i == 0 || !ident(b[i - 1])) {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let name = &text[start..i];
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == b'(' {
                names.insert(name.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `ox_*` symbols liboxalloc.so defines in its dynamic symbol table.
fn exported() -> BTreeSet<String> {
    let text = run(Command::new("nm").args(["-D", "--defined-only"]).arg(lib()));
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|name| name.starts_with("ox_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn header_declares_exactly_the_exported_ox_functions() {
    let declared = declared();
    let exported = exported();
    assert!(
        declared.len() >= 20,
        "too few declarations found: {declared:?}"
    );
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    let unexported: Vec<_> = declared.difference(&exported).collect();
    assert!(
        undeclared.is_empty() && unexported.is_empty(),
        "exported by liboxalloc.so but not declared in oxalloc.h: {undeclared:?}\n\
         declared in oxalloc.h but not exported: {unexported:?}"
    );
}

/// The C++ operators liboxalloc exports (src/cxx.rs), libstdc++'s list
/// (`nm -D --defined-only libstdc++.so.6 | grep -E ' _Z(nw|na|dl|da)'`).
const CXX_OPERATORS: [&str; 20] = [
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
];

#[test]
fn every_cxx_operator_is_exported() {
    let text = run(Command::new("nm").args(["-D", "--defined-only"]).arg(lib()));
    let defined: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("T"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let missing: Vec<_> = CXX_OPERATORS
        .iter()
        .filter(|s| !defined.contains(**s))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by liboxalloc.so: {missing:?}"
    );
    let others: Vec<_> = defined
        .iter()
        .filter(|s| {
            ["_Znw", "_Zna", "_Zdl", "_Zda"]
                .iter()
                .any(|p| s.starts_with(p))
        })
        .filter(|s| !CXX_OPERATORS.contains(s))
        .collect();
    assert!(others.is_empty(), "unexpected C++ operators: {others:?}");
}

/// A program that includes the header and takes the address of every declared function, so
/// each declaration must compile (strictly) and link against liboxalloc.so.
fn address_program(cxx: bool) -> PathBuf {
    let names = declared();
    let table: String = names
        .iter()
        .map(|n| format!("    (void (*)(void))&{n},\n"))
        .collect();
    let src = format!(
        "#include \"oxalloc.h\"\n#include <stdio.h>\n\n\
         typedef void (*fn_t)(void);\n\
         static fn_t const functions[] = {{\n{table}}};\n\n\
         int main(void) {{\n\
         \x20   unsigned n = 0;\n\
         \x20   for (unsigned i = 0; i < sizeof functions / sizeof functions[0]; i++)\n\
         \x20       n += functions[i] != 0;\n\
         \x20   printf(\"%u of {} functions resolved\\n\", n);\n\
         \x20   return n == {} ? 0 : 1;\n}}\n",
        names.len(),
        names.len()
    );
    let stem = if cxx { "header-cxx" } else { "header-c" };
    let file = out_dir().join(format!("{stem}.{}", if cxx { "cpp" } else { "c" }));
    std::fs::write(&file, src).unwrap();
    let exe = out_dir().join(stem);
    let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
    if cxx {
        cmd.args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-cast-function-type",
        ]);
    } else {
        cmd.args([
            "-std=c11",
            "-pedantic-errors",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wstrict-prototypes",
        ]);
    }
    cmd.arg("-I")
        .arg(header().parent().unwrap())
        .arg(&file)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir().display()))
        .arg("-loxalloc")
        .arg(format!("-Wl,-rpath,{}", soname_dir().display()));
    run(&mut cmd);
    exe
}

#[test]
fn every_declared_function_links_from_c() {
    let out = run(&mut Command::new(address_program(false)));
    assert!(out.contains(" functions resolved"), "{out}");
}

#[test]
fn every_declared_function_links_from_cxx() {
    let out = run(&mut Command::new(address_program(true)));
    assert!(out.contains(" functions resolved"), "{out}");
}

#[test]
fn library_has_its_soname() {
    let text = run(Command::new("readelf").arg("-d").arg(lib()));
    let want = format!("Library soname: [{}]", soname());
    assert!(
        text.lines()
            .any(|l| l.contains("(SONAME)") && l.contains(&want)),
        "{want} not in readelf -d:\n{text}"
    );
}
