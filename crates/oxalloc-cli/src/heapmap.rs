//! Heap maps: the dumps liboxalloc writes under `oxalloc run` (`oxalloc_core::visit::dump`, one
//! JSON object per line), read back, summed per size class and drawn for a terminal.

use oxalloc_core::size_class::bin_size;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// A page of an area, as the walk described it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Page {
    pub index: u32,
    /// Size class (0 for a huge block).
    pub bin: u32,
    pub block_size: u64,
    /// Blocks that fit in the page.
    pub reserved: u32,
    /// Blocks carved so far.
    pub capacity: u32,
    /// Blocks in use.
    pub used: u32,
    /// Counts exact (the dumping thread's page) rather than as of the page's last refill.
    pub exact: bool,
    pub full: bool,
}

/// An area: a segment of small (64 KiB) or medium (512 KiB) pages, or a huge block.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Area {
    pub start: u64,
    pub size: u64,
    /// "small", "medium" or "huge".
    pub kind: &'static str,
    pub slots: u32,
    pub slot_bytes: u64,
    /// Resident 4 KiB pages of each slot (from `mincore`); empty when unknown.
    pub resident_pages: Vec<u32>,
    pub pages: Vec<Page>,
}

impl Area {
    /// Resident bytes of slot `i`, if known.
    pub fn resident(&self, i: usize) -> Option<u64> {
        self.resident_pages.get(i).map(|&n| n as u64 * 4096)
    }
    /// Bytes of slot `i` (the last slot of a huge area may be shorter).
    pub fn slot_len(&self, i: usize) -> u64 {
        (self.size - (i as u64 * self.slot_bytes).min(self.size)).min(self.slot_bytes)
    }
    /// Slots a page covers (1, or all of a huge area).
    pub fn page_slots(&self, p: &Page) -> std::ops::Range<usize> {
        if self.kind == "huge" {
            0..self.slots.max(1) as usize
        } else {
            p.index as usize..p.index as usize + 1
        }
    }
}

/// Live and resident bytes of one size class in a heap map.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ClassUse {
    /// Block size (0: huge blocks).
    pub block_size: u64,
    pub pages: u64,
    pub live_bytes: u64,
    pub resident_bytes: u64,
    /// live / resident (0 when nothing is resident).
    pub live_per_resident: f64,
}

/// One heap-map dump of one process.
#[derive(Serialize, Clone, Debug)]
pub struct HeapMap {
    pub pid: u32,
    /// "peak" (the last dump as the peak of mapped bytes grew) or "exit".
    pub when: String,
    /// Milliseconds since the program started.
    pub t_ms: f64,
    pub live_bytes: u64,
    pub mapped_bytes: u64,
    pub peak_mapped_bytes: u64,
    /// The dump ended with its end line (a process killed while writing leaves it cut).
    pub complete: bool,
    pub page_count: u64,
    pub areas: Vec<Area>,
    /// Per size class, small classes first, huge last.
    pub classes: Vec<ClassUse>,
    /// Bytes of free page slots still resident, and purged (given back to the OS).
    pub free_resident_bytes: u64,
    pub free_purged_bytes: u64,
}

fn arr(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// Parses a dump; `start_ms` is the program's start on the library's clock
/// (`CLOCK_MONOTONIC_COARSE`, milliseconds).
pub fn parse(text: &str, start_ms: u64) -> Result<HeapMap, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: serde_json::Value =
        serde_json::from_str(lines.next().ok_or("empty heap map")?).map_err(|e| e.to_string())?;
    let num = |k: &str| head.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut m = HeapMap {
        pid: num("pid") as u32,
        when: head
            .get("heapmap")
            .and_then(|v| v.as_str())
            .ok_or("not a heap map")?
            .to_string(),
        t_ms: num("t_ms").saturating_sub(start_ms) as f64,
        live_bytes: num("live_bytes"),
        mapped_bytes: num("mapped_bytes"),
        peak_mapped_bytes: num("peak_mapped_bytes"),
        complete: false,
        page_count: 0,
        areas: Vec::new(),
        classes: Vec::new(),
        free_resident_bytes: 0,
        free_purged_bytes: 0,
    };
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("{e}: {l}"))?;
        if let Some(a) = v.get("a") {
            let a = arr(a);
            if a.len() < 6 {
                return Err(format!("malformed area {l}"));
            }
            m.areas.push(Area {
                start: a[0],
                size: a[1],
                kind: match a[2] {
                    0 => "small",
                    1 => "medium",
                    _ => "huge",
                },
                slots: a[3] as u32,
                slot_bytes: a[5].max(1),
                resident_pages: arr(v.get("res").unwrap_or(&serde_json::Value::Null))
                    .into_iter()
                    .map(|n| n as u32)
                    .collect(),
                pages: Vec::new(),
            });
        } else if let Some(p) = v.get("p") {
            let p = arr(p);
            let area = m.areas.last_mut().ok_or("a page before any area")?;
            if p.len() < 8 {
                return Err(format!("malformed page {l}"));
            }
            area.pages.push(Page {
                index: p[0] as u32,
                bin: p[1] as u32,
                block_size: p[2],
                reserved: p[3] as u32,
                capacity: p[4] as u32,
                used: p[5] as u32,
                exact: p[6] != 0,
                full: p[7] != 0,
            });
            m.page_count += 1;
        } else if let Some(n) = v.get("end").and_then(|n| n.as_u64()) {
            m.complete = n == m.page_count;
        }
    }
    m.summarise();
    Ok(m)
}

impl HeapMap {
    /// Fills `classes` and the free-slot totals from the areas.
    fn summarise(&mut self) {
        let mut by = std::collections::BTreeMap::<u32, ClassUse>::new();
        let (mut free_res, mut free_purged) = (0, 0);
        for a in &self.areas {
            let mut taken = vec![false; a.slots.max(1) as usize];
            for p in &a.pages {
                let c = by.entry(p.bin).or_insert(ClassUse {
                    block_size: if p.bin == 0 {
                        0
                    } else {
                        bin_size(p.bin as usize) as u64
                    },
                    pages: 0,
                    live_bytes: 0,
                    resident_bytes: 0,
                    live_per_resident: 0.0,
                });
                c.pages += 1;
                c.live_bytes += p.used as u64 * p.block_size;
                for i in a.page_slots(p) {
                    if let Some(t) = taken.get_mut(i) {
                        *t = true;
                    }
                    c.resident_bytes += a.resident(i).unwrap_or(0);
                }
            }
            if a.kind != "huge" {
                for (i, t) in taken.iter().enumerate() {
                    if !t {
                        let r = a.resident(i).unwrap_or(0);
                        free_res += r;
                        free_purged += a.slot_len(i).saturating_sub(r);
                    }
                }
            }
        }
        for c in by.values_mut() {
            if c.resident_bytes > 0 {
                c.live_per_resident = c.live_bytes as f64 / c.resident_bytes as f64;
            }
        }
        let huge = by.remove(&0);
        self.classes = by.into_values().chain(huge).collect();
        self.free_resident_bytes = free_res;
        self.free_purged_bytes = free_purged;
    }
}

/// Reads every dump in `dir`: for each process its last peak dump and its exit dump, processes
/// in decreasing order of peak mapped bytes.
pub fn read_dir(dir: &Path, start_ms: u64) -> Vec<HeapMap> {
    let mut maps = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        match parse(&text, start_ms) {
            Ok(m) => maps.push(m),
            Err(err) => eprintln!("oxalloc: heap map {} unreadable: {err}", e.path().display()),
        }
    }
    let peak_of = |pid: u32, maps: &[HeapMap]| {
        maps.iter()
            .filter(|m| m.pid == pid)
            .map(|m| m.peak_mapped_bytes)
            .max()
            .unwrap_or(0)
    };
    let keys: Vec<(u64, u32, bool)> = maps
        .iter()
        .map(|m| (peak_of(m.pid, &maps), m.pid, m.when != "peak"))
        .collect();
    let mut order: Vec<usize> = (0..maps.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (keys[a], keys[b]);
        kb.0.cmp(&ka.0).then(ka.1.cmp(&kb.1)).then(ka.2.cmp(&kb.2))
    });
    let mut slots: Vec<Option<HeapMap>> = maps.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// How full a page is, as one character: `·` empty, `░▒▓█` by quarters.
pub fn fullness_char(used: u32, reserved: u32) -> char {
    if used == 0 || reserved == 0 {
        return '·';
    }
    match used as u64 * 4 / reserved as u64 {
        0 => '░',
        1 => '▒',
        2 => '▓',
        _ => '█',
    }
}

/// The map for a terminal: one line per segment, one character per 64 KiB (so a medium page is
/// 8 characters); huge blocks one line each; at most `max_rows` segments.
pub fn to_text(m: &HeapMap, max_rows: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "heap map of pid {} at {} ({:.2} s): {} mapped, {} live, {} pages{}",
        m.pid,
        m.when,
        m.t_ms / 1000.0,
        crate::report::human(m.mapped_bytes),
        crate::report::human(m.live_bytes),
        m.page_count,
        if m.complete { "" } else { " (cut off)" }
    );
    let _ = writeln!(
        s,
        "  one char per 64 KiB: █▓▒░ page ¾+ ½+ ¼+ <¼ full, · empty page, : free slot resident, ' ' free slot purged"
    );
    let mut rows = 0;
    let mut huge = (0u64, 0u64);
    for a in &m.areas {
        if a.kind == "huge" {
            huge.0 += 1;
            huge.1 += a.size;
            continue;
        }
        rows += 1;
        if rows > max_rows {
            continue;
        }
        let per = (a.slot_bytes / 65536).max(1) as usize;
        let mut cells = vec![' '; a.slots as usize * per];
        for i in 0..a.slots as usize {
            let c = if a.resident(i).unwrap_or(1) > 0 {
                ':'
            } else {
                ' '
            };
            cells[i * per..(i + 1) * per].fill(c);
        }
        for p in &a.pages {
            let i = p.index as usize;
            if i < a.slots as usize {
                cells[i * per..(i + 1) * per].fill(fullness_char(p.used, p.reserved));
            }
        }
        let _ = writeln!(
            s,
            "  {:#014x} {:<6} |{}|",
            a.start,
            a.kind,
            cells.into_iter().collect::<String>()
        );
    }
    if rows > max_rows {
        let _ = writeln!(s, "  ... {} more segments", rows - max_rows);
    }
    if huge.0 > 0 {
        let _ = writeln!(
            s,
            "  {} huge block(s), {} in all",
            huge.0,
            crate::report::human(huge.1)
        );
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oxalloc_core::util::fmt::FixedBuf;
    use oxalloc_core::visit::{dump, AreaInfo, Gauges, PageInfo};

    /// A dump as the library writes it, through the core's writer: one small segment with two
    /// pages (one of 16-byte blocks, half used; one of 1 KiB blocks, full), one free resident
    /// slot, the rest purged; and a huge block of 1 MiB.
    pub fn sample_dump(pid: u32, when: &str) -> String {
        let mut buf = FixedBuf::<65536>::new();
        let g = Gauges {
            live_bytes: 100,
            mapped_bytes: 5 << 20,
            peak_live_bytes: 100,
            peak_mapped_bytes: 6 << 20,
            segments: 2,
        };
        dump::header(&mut buf, when, pid, 1500, &g).unwrap();
        let a = AreaInfo {
            start: 0x4000_0000,
            size: 4 << 20,
            kind: 0,
            slots: 64,
            pages: 2,
        };
        let mut res = [0u32; 64];
        (res[0], res[1], res[2]) = (16, 16, 16);
        dump::area(&mut buf, &a, &res).unwrap();
        let p = |index, bin: u32, block_size, reserved, used| PageInfo {
            start: 0,
            index,
            bin,
            block_size,
            reserved,
            capacity: reserved,
            used,
            exact: 1,
            full: 0,
        };
        dump::page(&mut buf, &p(0, 1, 16, 4000, 2000)).unwrap();
        dump::page(&mut buf, &p(1, 40, 1024, 64, 64)).unwrap();
        let h = AreaInfo {
            start: 0x4040_0000,
            size: 1 << 20,
            kind: 2,
            slots: 1,
            pages: 1,
        };
        dump::area(&mut buf, &h, &[200]).unwrap();
        dump::page(&mut buf, &p(0, 0, (1 << 20) - 4096, 1, 1)).unwrap();
        dump::end(&mut buf, 3).unwrap();
        String::from_utf8(buf.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn reads_the_library_dump_and_sums_classes() {
        let m = parse(&sample_dump(7, "exit"), 1000).unwrap();
        assert!(m.complete);
        assert_eq!((m.pid, m.when.as_str(), m.t_ms), (7, "exit", 500.0));
        assert_eq!(m.page_count, 3);
        assert_eq!(m.areas.len(), 2);
        assert_eq!(m.areas[0].slot_bytes, 65536);
        assert_eq!(m.classes.len(), 3);
        assert_eq!(m.classes[0].block_size, 16);
        assert_eq!(m.classes[0].live_bytes, 32000);
        assert_eq!(m.classes[0].resident_bytes, 65536);
        assert_eq!(m.classes[2].block_size, 0, "huge last");
        assert_eq!(m.classes[2].resident_bytes, 200 * 4096);
        assert_eq!(m.free_resident_bytes, 65536);
        assert_eq!(m.free_purged_bytes, 61 * 65536);
        let cut = sample_dump(7, "exit").replace("{\"end\":3}", "");
        assert!(!parse(&cut, 0).unwrap().complete);
    }

    #[test]
    fn text_map_has_one_char_per_slot() {
        let m = parse(&sample_dump(7, "peak"), 0).unwrap();
        let t = to_text(&m, 10);
        let row = t.lines().find(|l| l.contains("small")).unwrap();
        let cells = row.split('|').nth(1).unwrap();
        assert_eq!(cells.chars().count(), 64);
        assert!(cells.starts_with("▓█:"), "{cells}");
        assert!(t.contains("1 huge block(s)"), "{t}");
        assert_eq!(fullness_char(0, 10), '·');
        assert_eq!(fullness_char(10, 10), '█');
        assert_eq!(fullness_char(1, 10), '░');
    }
}
