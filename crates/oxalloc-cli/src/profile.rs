//! Sampled heap profiles: reading the files the library writes (`OXALLOC_PROFILE_FILE`, one per
//! process, at exit and at peaks), symbolising their raw return addresses through the process's
//! mappings (`addr2line` and `object`: DWARF line tables where the object has them, else its
//! symbol table or dynamic symbols), and what the report makes of them: the top allocation sites
//! by estimated live bytes, folded stacks (the input of flame graphs) and leaks by call site.
//!
//! Each sample stands for `size / (1 - exp(-block_size / rate))` bytes: a block of `block_size`
//! bytes is sampled with probability `1 - exp(-block_size / rate)`, so dividing by it makes the
//! estimate unbiased (blocks far larger than the rate count once, as themselves).

use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// One mapping of `/proc/PID/maps`.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// One sample as the library wrote it.
#[derive(Clone, Debug)]
pub struct RawSample {
    pub size: u64,
    pub block_size: u64,
    /// Return addresses, innermost first.
    pub frames: Vec<u64>,
}

/// One profile file.
#[derive(Clone, Debug)]
pub struct RawProfile {
    pub pid: u32,
    /// `exit`, `peak` or `request`.
    pub when: String,
    pub rate: u64,
    pub taken: u64,
    pub dropped: u64,
    pub samples: Vec<RawSample>,
    pub maps: Vec<Mapping>,
}

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|e| format!("bad address {s:?}: {e}"))
}

/// Parses a profile file (format: see `crates/oxalloc/src/init/profile.rs`).
pub fn parse(text: &str) -> Result<RawProfile, String> {
    let mut lines = text.lines();
    if lines.next() != Some("oxalloc-profile 1") {
        return Err("not an oxalloc profile (first line)".into());
    }
    let mut p = RawProfile {
        pid: 0,
        when: String::new(),
        rate: 0,
        taken: 0,
        dropped: 0,
        samples: Vec::new(),
        maps: Vec::new(),
    };
    let num = |v: Option<&str>| -> Result<u64, String> {
        v.unwrap_or("")
            .trim()
            .parse()
            .map_err(|e| format!("bad number: {e}"))
    };
    for line in lines.by_ref() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "pid" => p.pid = num(Some(rest))? as u32,
            "when" => p.when = rest.to_string(),
            "rate" => p.rate = num(Some(rest))?,
            "taken" => p.taken = num(Some(rest))?,
            "dropped" => p.dropped = num(Some(rest))?,
            "sample" => {
                let mut w = rest.split_whitespace();
                let size = num(w.next())?;
                let block_size = num(w.next())?;
                hex(w.next().unwrap_or(""))?; // the block's address
                let frames = w.map(hex).collect::<Result<Vec<_>, _>>()?;
                p.samples.push(RawSample {
                    size,
                    block_size,
                    frames,
                });
            }
            "maps" => break,
            _ => {}
        }
    }
    for line in lines {
        // start-end perms offset dev inode path
        let mut w = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let (Some(_dev), Some(_inode)) = (w.next(), w.next()) else {
            continue;
        };
        let path = w.collect::<Vec<_>>().join(" ");
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        p.maps.push(Mapping {
            start: hex(a)?,
            end: hex(b)?,
            offset: hex(offset)?,
            path,
        });
    }
    if p.rate == 0 {
        return Err("profile without a rate".into());
    }
    Ok(p)
}

/// Reads every profile file of a directory (the ones `oxalloc run` asked for).
pub fn read_dir(dir: &Path) -> Vec<RawProfile> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if let Ok(text) = std::fs::read_to_string(&path) {
            match parse(&text) {
                Ok(p) => out.push(p),
                Err(e) => eprintln!("oxalloc: {}: {e}", path.display()),
            }
        }
    }
    out
}

/// A symbolised frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// Function name (demangled), or `0xADDR` when unknown.
    pub function: String,
    /// `file:line` when the object has line tables.
    pub location: Option<String>,
    /// File name of the object (program or library).
    pub object: String,
}

struct Object {
    loader: Option<addr2line::Loader>,
    /// (file offset, file size, virtual address) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
}

/// Symbolises addresses, caching objects and results.
#[derive(Default)]
pub struct Symbolizer {
    objects: HashMap<String, Object>,
    cache: HashMap<(String, u64), Vec<Frame>>,
}

fn load_object(path: &str) -> Object {
    let segments = std::fs::read(path)
        .ok()
        .and_then(|data| {
            use object::{Object as _, ObjectSegment as _};
            let file = object::File::parse(&*data).ok()?;
            Some(
                file.segments()
                    .map(|s| {
                        let (off, size) = s.file_range();
                        (off, size, s.address())
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    Object {
        loader: addr2line::Loader::new(path).ok(),
        segments,
    }
}

fn short_object(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

impl Symbolizer {
    /// The frames (innermost first, inlined ones included) at `addr`, a return address unless
    /// `first` (the innermost frame is an exact address).
    pub fn symbolize(&mut self, maps: &[Mapping], addr: u64, first: bool) -> Vec<Frame> {
        let probe_addr = if first { addr } else { addr.saturating_sub(1) };
        let Some(m) = maps
            .iter()
            .find(|m| probe_addr >= m.start && probe_addr < m.end)
        else {
            return vec![Frame {
                function: format!("{addr:#x}"),
                location: None,
                object: "?".into(),
            }];
        };
        let key = (m.path.clone(), probe_addr - m.start + m.offset);
        if let Some(f) = self.cache.get(&key) {
            return f.clone();
        }
        let frames = self.lookup(m, key.1, addr);
        self.cache.insert(key, frames.clone());
        frames
    }

    fn lookup(&mut self, m: &Mapping, file_offset: u64, addr: u64) -> Vec<Frame> {
        let object = short_object(&m.path);
        let unknown = || {
            vec![Frame {
                function: format!("{addr:#x}"),
                location: None,
                object: object.clone(),
            }]
        };
        if !m.path.starts_with('/') {
            return unknown();
        }
        let obj = self
            .objects
            .entry(m.path.clone())
            .or_insert_with(|| load_object(&m.path));
        let Some(vaddr) = obj
            .segments
            .iter()
            .find(|(off, size, _)| file_offset >= *off && file_offset < off + size)
            .map(|(off, _, va)| file_offset - off + va)
        else {
            return unknown();
        };
        let Some(loader) = &obj.loader else {
            return unknown();
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = loader.find_frames(vaddr) {
            while let Ok(Some(f)) = frames.next() {
                let Some(name) = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|n| n.into_owned())
                else {
                    continue;
                };
                let location = f.location.as_ref().and_then(|l| {
                    let file = short_object(l.file?);
                    Some(match l.line {
                        Some(line) => format!("{file}:{line}"),
                        None => file,
                    })
                });
                out.push(Frame {
                    function: name,
                    location,
                    object: object.clone(),
                });
            }
        }
        if out.is_empty() {
            if let Some(sym) = loader.find_symbol(vaddr) {
                let name = addr2line::demangle_auto(sym.into(), None).into_owned();
                out.push(Frame {
                    function: name,
                    location: None,
                    object: object.clone(),
                });
            }
        }
        if out.is_empty() {
            return unknown();
        }
        out
    }
}

/// Whether a frame is the allocator itself (cut from the top of every stack).
fn is_allocator(f: &Frame) -> bool {
    f.object.starts_with("liboxalloc")
        || f.function.starts_with("oxalloc_core::")
        || f.function.starts_with("oxalloc_os::")
        || f.function.starts_with("oxalloc::")
        || f.function.starts_with("<oxalloc::")
        || f.function.starts_with("__rust_alloc")
        || f.function.starts_with("__rust_realloc")
        || f.function.starts_with("__rust_alloc_zeroed")
        || f.function.starts_with("__rustc::__rust_")
        || f.function.starts_with("__rdl_")
}

/// Whether a frame is allocation plumbing rather than the place that asked for memory: the
/// allocation site is the first frame that is not.
fn is_plumbing(f: &Frame) -> bool {
    const PREFIXES: &[&str] = &[
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::",
        "<std::",
        "hashbrown::",
        "<hashbrown::",
        "__GI___libc_malloc",
        "__libc_",
        "strdup",
        "__strdup",
        "strndup",
        "__strndup",
        "operator new",
        "xmalloc",
        "xcalloc",
        "xrealloc",
        "PyMem_",
        "_PyMem_",
        "PyObject_Malloc",
        "_PyObject_Malloc",
    ];
    PREFIXES.iter().any(|p| f.function.starts_with(p))
}

/// A sample with its stack symbolised (allocator frames cut), innermost first.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Estimated bytes this sample stands for.
    pub weight: f64,
    /// Estimated blocks this sample stands for.
    pub count: f64,
    pub stack: Vec<Frame>,
}

/// Symbolises the samples of a profile.
pub fn resolve(p: &RawProfile, sym: &mut Symbolizer) -> Vec<Resolved> {
    p.samples
        .iter()
        .map(|s| {
            let mut stack = Vec::new();
            for (i, &a) in s.frames.iter().enumerate() {
                stack.extend(sym.symbolize(&p.maps, a, i == 0));
            }
            // The allocator's own frames come first (the unwinder starts inside it); a
            // program's frames never lie between them.
            let cut = stack
                .iter()
                .take(24)
                .rposition(is_allocator)
                .map_or(0, |i| i + 1);
            stack.drain(..cut);
            let prob = 1.0 - (-(s.block_size.max(1) as f64) / p.rate as f64).exp();
            Resolved {
                weight: s.size as f64 / prob,
                count: 1.0 / prob,
                stack,
            }
        })
        .collect()
}

/// An allocation site (or call stack) and the estimated live memory allocated there.
#[derive(Clone, Debug, Serialize)]
pub struct Site {
    /// The function that asked for memory.
    pub function: String,
    /// Its `file:line`, when known.
    pub location: Option<String>,
    pub object: String,
    /// The callers (outermost last), up to 4, for leaks.
    pub callers: Vec<String>,
    /// Estimated live bytes.
    pub bytes: u64,
    /// Estimated live blocks.
    pub blocks: u64,
    /// Samples behind the estimate.
    pub samples: u64,
}

fn site_frame(stack: &[Frame]) -> Option<usize> {
    if stack.is_empty() {
        return None;
    }
    Some(stack.iter().position(|f| !is_plumbing(f)).unwrap_or(0))
}

/// Groups samples by allocation site (the function, and its line when known), most bytes first.
/// With `by_stack`, groups by the site and its callers instead (the leaks table).
pub fn sites(samples: &[Resolved], by_stack: bool) -> Vec<Site> {
    let mut map: HashMap<String, (Site, f64, f64)> = HashMap::new();
    for s in samples {
        let (frame, callers) = match site_frame(&s.stack) {
            Some(i) => (
                s.stack[i].clone(),
                s.stack[i + 1..]
                    .iter()
                    .take(4)
                    .map(|f| f.function.clone())
                    .collect::<Vec<_>>(),
            ),
            None => (
                Frame {
                    function: "(no stack)".into(),
                    location: None,
                    object: String::new(),
                },
                Vec::new(),
            ),
        };
        let mut key = format!("{}@{:?}", frame.function, frame.location);
        if by_stack {
            key.push_str(&callers.join(";"));
        }
        let e = map.entry(key).or_insert_with(|| {
            (
                Site {
                    function: frame.function.clone(),
                    location: frame.location.clone(),
                    object: frame.object.clone(),
                    callers: if by_stack {
                        callers.clone()
                    } else {
                        Vec::new()
                    },
                    bytes: 0,
                    blocks: 0,
                    samples: 0,
                },
                0.0,
                0.0,
            )
        });
        e.0.samples += 1;
        e.1 += s.weight;
        e.2 += s.count;
    }
    let mut out: Vec<Site> = map
        .into_values()
        .map(|(mut site, bytes, blocks)| {
            site.bytes = bytes.round() as u64;
            site.blocks = blocks.round().max(1.0) as u64;
            site
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.function.cmp(&b.function)));
    out
}

/// Folded stacks (`root;...;leaf bytes`, one line per distinct stack, sorted), the input format
/// of flame graph tools. Semicolons in names are replaced, so they cannot split a frame.
pub fn folded(samples: &[Resolved]) -> Vec<String> {
    let mut map: HashMap<String, f64> = HashMap::new();
    for s in samples {
        let mut names: Vec<String> = s
            .stack
            .iter()
            .rev()
            .map(|f| f.function.replace(';', ":"))
            .collect();
        if names.is_empty() {
            names.push("(no stack)".into());
        }
        *map.entry(names.join(";")).or_default() += s.weight;
    }
    let mut lines: Vec<String> = map
        .into_iter()
        .map(|(k, v)| format!("{k} {}", v.round() as u64))
        .collect();
    lines.sort();
    lines
}

/// A flame graph SVG (with `inferno`) of folded stack lines.
pub fn flamegraph_svg(folded: &[String], title: &str) -> Result<String, String> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = "bytes".into();
    opts.colors =
        inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    let mut out = Vec::new();
    let lines = folded.iter().map(String::as_str);
    if folded.is_empty() {
        // inferno refuses empty input; an empty graph says so.
        let mut s = String::new();
        let _ = write!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">{title}: no samples</text></svg>");
        return Ok(s);
    }
    inferno::flamegraph::from_lines(&mut opts, lines, &mut out).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// What the report shows of the profiles of a run.
#[derive(Serialize, Default, Clone, Debug)]
pub struct Summary {
    /// Mean bytes between samples.
    pub rate: u64,
    /// Processes that wrote a profile at exit.
    pub processes: usize,
    /// Samples taken over the run (live or not), and dropped for lack of room.
    pub samples_taken: u64,
    pub samples_dropped: u64,
    /// Samples live at exit, over every process.
    pub samples_at_exit: usize,
    /// Top allocation sites by estimated bytes live at exit.
    pub sites_at_exit: Vec<Site>,
    /// Top allocation sites by estimated bytes live at each process's last peak dump (the
    /// main process's peak of mapped bytes, within 20%); empty when no peak was dumped.
    pub sites_at_peak: Vec<Site>,
    /// Blocks still live at exit, grouped by call site and callers.
    pub leaks: Vec<Site>,
    /// Folded stacks of the blocks live at exit (the flame graph).
    pub folded: Vec<String>,
}

impl Summary {
    /// The text report's lines: the top `n` allocation sites live at exit.
    pub fn to_text(&self, n: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "heap profile: {} samples ({} live at exit), one per {} bytes on average",
            self.samples_taken, self.samples_at_exit, self.rate
        );
        for site in self.sites_at_exit.iter().take(n) {
            let _ = writeln!(
                s,
                "  {:>12} bytes in {:>8} blocks (est., {} samples)  {}  {}",
                site.bytes,
                site.blocks,
                site.samples,
                site.function,
                site.location.as_deref().unwrap_or(&site.object)
            );
        }
        s
    }
}

/// Builds the summary from every profile of a run.
pub fn summarize(profiles: &[RawProfile], top: usize) -> Summary {
    let mut sym = Symbolizer::default();
    let mut exit = Vec::new();
    let mut peak = Vec::new();
    let mut s = Summary::default();
    for p in profiles {
        s.rate = p.rate;
        match p.when.as_str() {
            "peak" => peak.extend(resolve(p, &mut sym)),
            _ => {
                s.processes += 1;
                s.samples_taken += p.taken;
                s.samples_dropped += p.dropped;
                s.samples_at_exit += p.samples.len();
                exit.extend(resolve(p, &mut sym));
            }
        }
    }
    s.sites_at_exit = sites(&exit, false);
    s.sites_at_exit.truncate(top);
    s.sites_at_peak = sites(&peak, false);
    s.sites_at_peak.truncate(top);
    s.leaks = sites(&exit, true);
    s.leaks.truncate(top);
    s.folded = folded(&exit);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: &str) -> Frame {
        Frame {
            function: f.into(),
            location: None,
            object: "prog".into(),
        }
    }

    fn sample(weight: f64, stack: &[&str]) -> Resolved {
        Resolved {
            weight,
            count: 1.0,
            stack: stack.iter().map(|f| frame(f)).collect(),
        }
    }

    #[test]
    fn folded_stacks_are_root_first_summed_and_sorted() {
        let s = [
            sample(100.0, &["a", "main", "_start"]),
            sample(50.0, &["b", "main", "_start"]),
            sample(25.0, &["a", "main", "_start"]),
            sample(10.0, &["x;y", "main"]),
            sample(1.0, &[]),
        ];
        assert_eq!(
            folded(&s),
            vec![
                "(no stack) 1".to_string(),
                "_start;main;a 125".into(),
                "_start;main;b 50".into(),
                "main;x:y 10".into(),
            ]
        );
    }

    #[test]
    fn sites_skip_plumbing_and_group() {
        let s = [
            sample(300.0, &["alloc::raw_vec::grow", "app::make", "main"]),
            sample(100.0, &["app::make", "app::other", "main"]),
            sample(50.0, &["strdup", "copy_name", "main"]),
        ];
        let by_site = sites(&s, false);
        assert_eq!(by_site[0].function, "app::make");
        assert_eq!(by_site[0].bytes, 400);
        assert_eq!(by_site[0].samples, 2);
        assert_eq!(by_site[1].function, "copy_name");
        let by_stack = sites(&s, true);
        assert_eq!(by_stack.len(), 3);
        assert_eq!(by_stack[0].callers, vec!["main".to_string()]);
    }

    #[test]
    fn parses_what_the_library_writes() {
        let text = "oxalloc-profile 1\npid 42\nwhen exit\nrate 524288\ntaken 3\ndropped 0\n\
                    sample 300 320 1000 401000 402000\nmaps\n\
                    00400000-00401000 r--p 00000000 08:01 123 /usr/bin/prog\n\
                    00401000-00403000 r-xp 00001000 08:01 123 /usr/bin/prog\n\
                    7ffc000-7ffd000 rw-p 00000000 00:00 0 [stack]\n";
        let p = parse(text).unwrap();
        assert_eq!((p.pid, p.rate, p.taken), (42, 524288, 3));
        assert_eq!(p.samples[0].frames, vec![0x401000, 0x402000]);
        assert_eq!(p.maps.len(), 3);
        assert_eq!(p.maps[1].offset, 0x1000);
        assert_eq!(p.maps[2].path, "[stack]");
        assert!(parse("something else").is_err());
    }

    #[test]
    fn weights_are_rate_adjusted() {
        let p = RawProfile {
            pid: 1,
            when: "exit".into(),
            rate: 1000,
            taken: 2,
            dropped: 0,
            samples: vec![
                RawSample {
                    size: 10,
                    block_size: 16,
                    frames: vec![],
                },
                RawSample {
                    size: 1_000_000,
                    block_size: 1_000_000,
                    frames: vec![],
                },
            ],
            maps: vec![],
        };
        let r = resolve(&p, &mut Symbolizer::default());
        // 16-byte blocks are sampled with probability 1 - e^(-16/1000), about 1.6%.
        assert!((r[0].count - 1.0 / (1.0 - (-0.016f64).exp())).abs() < 1e-9);
        assert!((r[0].weight - 10.0 * r[0].count).abs() < 1e-6);
        // A block far above the rate counts once.
        assert!((r[1].weight - 1_000_000.0).abs() < 1.0);
    }

    #[test]
    fn flamegraph_is_an_svg() {
        let svg = flamegraph_svg(&["main;a 300".into(), "main;b 100".into()], "t").unwrap();
        assert!(svg.contains("<svg") && svg.contains("main"));
        assert!(flamegraph_svg(&[], "t").unwrap().contains("no samples"));
    }
}
