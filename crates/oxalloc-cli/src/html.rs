//! The HTML report (`oxalloc run --report FILE.html`): one self-contained page, with inline CSS
//! and inline SVG drawn here; no script, no external resource, nothing fetched.
//!
//! Sections (each an element with the id in brackets): the summary [`summary`], the timelines
//! of live, mapped and resident bytes [`timelines`], the heap maps at the peak and at exit
//! [`heapmaps`], the size-class histogram [`histogram`], fragmentation per size class
//! [`fragmentation`], and sampled profiling — top allocation sites at exit and at the peak
//! [`sites`], a flame graph of the blocks live at exit [`flamegraph`] (inline SVG drawn here,
//! a rectangle per frame with its bytes on hover) and leaks by call site [`leaks`] — which say
//! why when the run had no profile.

use crate::heapmap::{Area, HeapMap, Page};
use crate::profile::{Site, Summary};
use crate::report::{human, Report};
use crate::sample::Sample;
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}th{text-align:left}\
td.l{text-align:left}.muted{color:#777}.note{background:#f6f6f6;padding:8px 12px;border-left:3px solid #bbb}\
svg text{font:11px system-ui,sans-serif;fill:#333}.legend span{display:inline-block;margin-right:14px}\
.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;border:1px solid #999}";

/// Colour of a size class: the hue goes round with the class (huge blocks are grey-blue),
/// lighter for emptier pages.
pub fn class_colour(bin: u32, fullness: f64) -> String {
    if bin == 0 {
        return format!(
            "hsl(215,25%,{:.0}%)",
            75.0 - 30.0 * fullness.clamp(0.0, 1.0)
        );
    }
    let hue = (bin as f64 * 47.0) % 360.0;
    let light = 88.0 - 50.0 * fullness.clamp(0.0, 1.0);
    format!("hsl({hue:.0},70%,{light:.0}%)")
}

fn fmt_bytes_axis(b: f64) -> String {
    human(b.max(0.0) as u64)
}

/// A line chart of the timelines: x in seconds, y in bytes; one polyline per series, a
/// vertical mark at each `marks` time (ms, label).
pub fn timeline_svg(samples: &[Sample], marks: &[(f64, String)]) -> String {
    let (w, h, left, bottom, top, right) = (900.0, 260.0, 70.0, 30.0, 10.0, 10.0);
    let t_max = samples.iter().map(|s| s.t_ms).fold(1.0f64, f64::max);
    let y_max = samples
        .iter()
        .map(|s| s.live_bytes.max(s.mapped_bytes).max(s.rss_bytes))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: f64| left + (w - left - right) * t / t_max;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / y_max);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"timeline\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            y(v) + 4.0,
            esc(&fmt_bytes_axis(v)),
            y = y(v)
        );
        let t = t_max * i as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.2} s</text>",
            x(t),
            h - 10.0,
            t / 1000.0
        );
    }
    for (t, label) in marks {
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"3,3\"><title>{}</title></line>",
            h - bottom,
            esc(label),
            x = x(*t)
        );
    }
    type Series = (&'static str, &'static str, fn(&Sample) -> u64);
    let series: [Series; 3] = [
        ("live", "#d62728", |p| p.live_bytes),
        ("mapped", "#1f77b4", |p| p.mapped_bytes),
        ("RSS", "#2ca02c", |p| p.rss_bytes),
    ];
    for (name, colour, f) in series {
        let pts: Vec<String> = samples
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t_ms), y(f(p) as f64)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"series\" data-series=\"{name}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" points=\"{}\"><title>{name}</title></polyline>",
            pts.join(" ")
        );
    }
    s.push_str("</svg>");
    s
}

/// Cell width in pixels of 64 KiB in the heap map (a 4 MiB segment is 64 cells).
const CELL: f64 = 11.0;
/// Row height.
const ROW: f64 = 14.0;
/// Room for the row labels.
const LABEL: f64 = 150.0;
/// Rows drawn at most per map.
pub const MAX_ROWS: usize = 2048;

fn page_title(a: &Area, p: &Page) -> String {
    let res = a
        .page_slots(p)
        .map(|i| a.resident(i).unwrap_or(0))
        .sum::<u64>();
    let kind = if p.bin == 0 {
        "huge block".to_string()
    } else {
        format!("{} blocks", human(p.block_size))
    };
    format!(
        "{} page {} at {:#x}: {kind}, {}/{} used ({:.0}%), {} carved; {} resident{}{}",
        a.kind,
        p.index,
        a.start + p.index as u64 * a.slot_bytes,
        p.used,
        p.reserved,
        p.used as f64 * 100.0 / p.reserved.max(1) as f64,
        p.capacity,
        human(res),
        if p.full { "; in the full queue" } else { "" },
        if p.exact {
            ""
        } else {
            "; counts as of its last refill (another thread's page)"
        }
    )
}

/// The heap map as SVG: one row per 4 MiB (a segment, or part of a huge block, drawn to scale),
/// one cell per page (`class="pg"`, coloured by size class and shaded by fullness), free slots
/// resident (`class="free"`) or purged (`class="purged"`), huge blocks (`class="pg huge"`).
pub fn heap_map_svg(m: &HeapMap) -> String {
    let per_row = 64u64 * 65536;
    let mut body = String::new();
    let mut row = 0usize;
    let mut cut = 0usize;
    for a in &m.areas {
        let rows = a.size.div_ceil(per_row).max(1) as usize;
        if row + rows > MAX_ROWS {
            cut += 1;
            continue;
        }
        let y0 = row as f64 * ROW;
        let _ = write!(
            body,
            "<text x=\"0\" y=\"{:.1}\">{:#x} {}</text>",
            y0 + ROW - 3.0,
            a.start,
            a.kind
        );
        if a.kind == "huge" {
            let p = a.pages.first();
            let title = p.map_or_else(
                || format!("huge area at {:#x}, {}", a.start, human(a.size)),
                |p| page_title(a, p),
            );
            let title = format!("{title}; {} mapped", human(a.size));
            let res = a.resident(0).unwrap_or(a.size);
            let frac = if a.size > 0 {
                res as f64 / a.size as f64
            } else {
                1.0
            };
            let mut left = a.size;
            for r in 0..rows {
                let bytes = left.min(per_row);
                left -= bytes;
                let w = bytes as f64 / 65536.0 * CELL;
                let class = if r == 0 { "pg huge" } else { "huge" };
                let _ = write!(
                    body,
                    "<rect class=\"{class}\" x=\"{LABEL}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{}</title></rect>",
                    y0 + r as f64 * ROW,
                    ROW - 2.0,
                    class_colour(0, frac),
                    esc(&title)
                );
            }
            row += rows;
            continue;
        }
        let cells_per_slot = (a.slot_bytes / 65536).max(1) as f64;
        let w = cells_per_slot * CELL;
        let mut taken = vec![false; a.slots as usize];
        for p in &a.pages {
            if let Some(t) = taken.get_mut(p.index as usize) {
                *t = true;
            }
            let fullness = p.used as f64 / p.reserved.max(1) as f64;
            let res = a.resident(p.index as usize);
            let purged = res == Some(0);
            let _ = write!(
                body,
                "<rect class=\"pg\" data-bin=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"{}\"{}><title>{}</title></rect>",
                p.bin,
                LABEL + p.index as f64 * w,
                y0,
                w - 1.0,
                ROW - 2.0,
                class_colour(p.bin, fullness),
                if purged { "#888" } else { "#fff" },
                if purged { " stroke-dasharray=\"2,2\"" } else { "" },
                esc(&page_title(a, p))
            );
        }
        for (i, t) in taken.iter().enumerate() {
            if *t {
                continue;
            }
            let res = a.resident(i);
            let purged = res == Some(0);
            let title = format!(
                "free slot {i} at {:#x}: {} of {} resident{}",
                a.start + i as u64 * a.slot_bytes,
                res.map_or_else(|| "unknown".into(), human),
                human(a.slot_len(i)),
                if purged {
                    " (purged: given back to the OS)"
                } else {
                    ""
                }
            );
            let _ = write!(
                body,
                "<rect class=\"{}\" x=\"{:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"#ccc\" stroke-width=\"0.5\"><title>{}</title></rect>",
                if purged { "purged" } else { "free" },
                LABEL + i as f64 * w,
                w - 1.0,
                ROW - 2.0,
                if purged { "#fff" } else { "#bdbdbd" },
                esc(&title)
            );
        }
        row += 1;
    }
    let width = LABEL + 64.0 * CELL + 4.0;
    let height = (row as f64 * ROW).max(ROW);
    let mut s = format!(
        "<svg class=\"heapmap\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    s.push_str(&body);
    s.push_str("</svg>");
    if cut > 0 {
        let _ = write!(
            s,
            "<p class=\"muted\">{cut} more areas not drawn (over {MAX_ROWS} rows).</p>"
        );
    }
    s
}

fn summary_table(r: &Report) -> String {
    let mut s = String::from("<table>");
    let exit = r
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "signal".into());
    let rows: Vec<(&str, String)> = vec![
        ("exit", exit),
        ("wall time", format!("{:.2} s", r.wall_seconds)),
        ("processes", r.processes.len().to_string()),
        ("thread heaps", r.threads.to_string()),
        ("allocations", r.allocations.to_string()),
        ("frees", r.frees.to_string()),
        ("peak live", human(r.peak_live_bytes)),
        ("peak mapped", human(r.peak_mapped_bytes)),
        ("peak RSS", human(r.peak_rss_bytes)),
        ("huge blocks", r.huge_allocations.to_string()),
        ("timeline samples", r.timeline.len().to_string()),
    ];
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    s.push_str("</table>");
    if r.processes.is_empty() {
        s.push_str("<p class=\"note\">No statistics were written: the program may not use malloc, or ran statically linked.</p>");
    }
    if r.processes.len() > 1 {
        let _ = write!(
            s,
            "<details{}><summary>{} processes</summary>",
            if r.processes.len() <= 8 { " open" } else { "" },
            r.processes.len()
        );
        s.push_str(
            "<table><tr><th>pid</th><th>allocations</th><th>peak live</th><th>peak RSS</th></tr>",
        );
        for p in &r.processes {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.pid,
                p.allocations,
                esc(&human(p.peak_live_bytes)),
                esc(&human(p.peak_rss_bytes))
            );
        }
        s.push_str("</table></details>");
    }
    s
}

fn histogram_svg(classes: &[(u64, u64)]) -> String {
    let total: u64 = classes.iter().map(|c| c.1).sum::<u64>().max(1);
    let top = classes.iter().map(|c| c.1).max().unwrap_or(1).max(1);
    let (row, bar_w) = (16.0, 560.0);
    let h = classes.len() as f64 * row + 4.0;
    let mut s =
        format!("<svg class=\"histogram\" width=\"820\" height=\"{h}\" viewBox=\"0 0 820 {h}\">");
    for (i, &(size, n)) in classes.iter().enumerate() {
        let y = i as f64 * row;
        let label = if size == 0 {
            "huge".into()
        } else {
            human(size)
        };
        let w = (n as f64 / top as f64 * bar_w).max(1.0);
        let bin = if size == 0 {
            0
        } else {
            oxalloc_core::size_class::bin_of(size as usize) as u32
        };
        let _ = write!(
            s,
            "<text x=\"70\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"76\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {} allocations ({:.1}%)</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{} ({:.1}%)</text>",
            y + row - 4.0,
            esc(&label),
            row - 3.0,
            class_colour(bin, 0.7),
            esc(&label),
            n,
            n as f64 * 100.0 / total as f64,
            80.0 + w,
            y + row - 4.0,
            n,
            n as f64 * 100.0 / total as f64
        );
    }
    s.push_str("</svg>");
    s
}

fn fragmentation_table(m: &HeapMap) -> String {
    let mut s = String::from("<table class=\"frag\"><tr><th>block size</th><th>pages</th><th>live</th><th>resident</th><th>live / resident</th><th></th></tr>");
    let (mut live, mut res) = (0, 0);
    for c in &m.classes {
        live += c.live_bytes;
        res += c.resident_bytes;
        let label = if c.block_size == 0 {
            "huge".into()
        } else {
            human(c.block_size)
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td class=\"l\"><svg width=\"120\" height=\"10\"><rect width=\"120\" height=\"10\" fill=\"#eee\"/><rect width=\"{:.1}\" height=\"10\" fill=\"#4a8\"/></svg></td></tr>",
            esc(&label),
            c.pages,
            esc(&human(c.live_bytes)),
            esc(&human(c.resident_bytes)),
            c.live_per_resident * 100.0,
            120.0 * c.live_per_resident.min(1.0)
        );
    }
    let _ = write!(
        s,
        "<tr><th>all pages</th><td></td><td>{}</td><td>{}</td><td>{:.0}%</td><td></td></tr></table><p>Free page slots: {} resident, {} purged (given back to the OS).</p>",
        esc(&human(live)),
        esc(&human(res)),
        if res > 0 { live as f64 * 100.0 / res as f64 } else { 0.0 },
        esc(&human(m.free_resident_bytes)),
        esc(&human(m.free_purged_bytes))
    );
    s
}

fn legend() -> String {
    let mut s = String::from("<p class=\"legend\">");
    for (label, colour, extra) in [
        ("16 B page, ¼ full", class_colour(1, 0.25), ""),
        ("16 B page, full", class_colour(1, 1.0), ""),
        ("1 KiB page, full", class_colour(40, 1.0), ""),
        ("huge block", class_colour(0, 1.0), ""),
        ("free slot, resident", "#bdbdbd".into(), ""),
        ("free slot, purged", "#fff".into(), "border-style:dashed"),
    ] {
        let _ = write!(
            s,
            "<span><i class=\"sw\" style=\"background:{colour};{extra}\"></i>{}</span>",
            esc(label)
        );
    }
    s.push_str("</p><p class=\"muted\">Each row is 4 MiB: a segment of 64 KiB pages (64 cells) or 512 KiB pages (8 wide cells), or 4 MiB of a huge block, drawn to scale. A page's colour is its size class, darker when fuller; hover a cell for what it is. Pages of other threads than the one that wrote the map are counted as of their last refill.</p>");
    s
}

/// A table of allocation sites (with callers when `callers`).
fn sites_table(sites: &[Site], callers: bool) -> String {
    let mut s = String::from("<table class=\"sites\"><tr><th>site</th><th>where</th>");
    if callers {
        s.push_str("<th>called from</th>");
    }
    s.push_str("<th>live bytes (est.)</th><th>blocks (est.)</th><th>samples</th></tr>");
    for site in sites {
        let _ = write!(
            s,
            "<tr data-function=\"{}\" data-bytes=\"{}\"><td class=\"l\"><code>{}</code></td><td class=\"l muted\">{}</td>",
            esc(&site.function),
            site.bytes,
            esc(&site.function),
            esc(site.location.as_deref().unwrap_or(&site.object))
        );
        if callers {
            let _ = write!(s, "<td class=\"l\">{}</td>", esc(&site.callers.join(" ← ")));
        }
        let _ = write!(
            s,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&human(site.bytes)),
            site.blocks,
            site.samples
        );
    }
    s.push_str("</table>");
    s
}

/// A flame graph of folded stacks (`root;...;leaf bytes`) as inline SVG: the root at the
/// bottom, each frame as wide as its bytes, its name and bytes in a hover title.
pub fn flamegraph_svg(folded: &[String]) -> String {
    #[derive(Default)]
    struct Node {
        bytes: f64,
        children: std::collections::BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for line in folded {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: f64 = n.parse().unwrap_or(0.0);
        root.bytes += n;
        let mut node = &mut root;
        for f in stack.split(';') {
            node = node.children.entry(f.to_string()).or_default();
            node.bytes += n;
        }
    }
    fn depth(n: &Node) -> usize {
        n.children.values().map(|c| 1 + depth(c)).max().unwrap_or(0)
    }
    const W: f64 = 1000.0;
    const ROW: f64 = 17.0;
    let rows = depth(&root).max(1);
    let h = rows as f64 * ROW + 4.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"flame\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\">"
    );
    fn draw(s: &mut String, n: &Node, x: f64, level: usize, total: f64, h: f64) {
        let mut x = x;
        for (name, c) in &n.children {
            let w = c.bytes / total * W;
            if w >= 0.5 {
                let y = h - (level + 1) as f64 * ROW;
                let hue = 20
                    + (name
                        .bytes()
                        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32))
                        % 40);
                let _ = write!(
                    s,
                    "<g class=\"frame\"><title>{} ({}, {:.1}%)</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"hsl({hue},80%,60%)\" stroke=\"#fff\" stroke-width=\"0.5\"/>",
                    esc(name),
                    esc(&human(c.bytes.round() as u64)),
                    c.bytes / total * 100.0,
                    w,
                    ROW - 1.0
                );
                let chars = ((w - 6.0) / 6.5).floor();
                if chars >= 3.0 {
                    let label: String = if name.chars().count() as f64 > chars {
                        let mut t: String = name.chars().take(chars as usize - 2).collect();
                        t.push_str("..");
                        t
                    } else {
                        name.clone()
                    };
                    let _ = write!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                        x + 3.0,
                        y + ROW - 5.0,
                        esc(&label)
                    );
                }
                s.push_str("</g>");
                draw(s, c, x, level + 1, total, h);
            }
            x += w;
        }
    }
    if root.bytes > 0.0 {
        draw(&mut s, &root, 0.0, 0, root.bytes, h);
    }
    s.push_str("</svg>");
    s
}

/// The profiling sections, from the run's profile.
fn profiling_sections(r: &Report, d: &Summary) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<section id=\"sites\"><h2>Top allocation sites</h2><p>Sampled heap profile: one allocation per {} allocated on average (geometric sampling by bytes; each sample weighted by the inverse of its chance to be sampled, so the figures are unbiased estimates). {} samples taken in {} process{}, {} live at exit{}.</p><h3>Live at exit</h3>{}",
        esc(&human(d.rate)),
        d.samples_taken,
        d.processes,
        if d.processes == 1 { "" } else { "es" },
        d.samples_at_exit,
        if d.samples_dropped > 0 {
            format!(", {} dropped (the table of live samples was full)", d.samples_dropped)
        } else {
            String::new()
        },
        sites_table(&d.sites_at_exit, false)
    );
    if d.sites_at_peak.is_empty() {
        s.push_str(
            "<p class=\"muted\">No profile at a peak: the heap never grew past 8 MiB mapped.</p>",
        );
    } else {
        let _ = write!(
            s,
            "<h3>Live at the peak</h3><p class=\"muted\">As of each process's last heap map at a peak of mapped bytes (within 20% of the peak).</p>{}",
            sites_table(&d.sites_at_peak, false)
        );
    }
    s.push_str("</section><section id=\"flamegraph\"><h2>Flame graph</h2><p>Blocks live at exit by call stack (root at the bottom, callers below callees); a frame's width is its estimated live bytes. Hover a frame for its name and bytes.</p>");
    s.push_str(&flamegraph_svg(&d.folded));
    s.push_str("</section><section id=\"leaks\"><h2>Leaks by call site</h2><p>Blocks still live when the process exited (never freed), grouped by the function that allocated them and its callers. Memory a program keeps until exit on purpose shows here too.</p>");
    if d.leaks.is_empty() {
        s.push_str("<p class=\"note\">No sampled block was live at exit.</p>");
    } else {
        s.push_str(&sites_table(&d.leaks, true));
    }
    s.push_str("</section>");
    let _ = r;
    s
}

fn not_enabled(id: &str, title: &str, r: &Report) -> String {
    format!(
        "<section id=\"{id}\" class=\"not-enabled\"><h2>{}</h2><p class=\"note\">Profiling was not enabled: {}.</p></section>",
        esc(title),
        esc(&r.profiling.note)
    )
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>oxalloc report: {}</title><style>{CSS}</style></head><body>",
        esc(&r.command)
    );
    let _ = write!(
        s,
        "<h1>oxalloc report: <code>{}</code></h1>",
        esc(&r.command)
    );
    let _ = write!(
        s,
        "<section id=\"summary\"><h2>Summary</h2>{}</section>",
        summary_table(r)
    );
    s.push_str("<section id=\"timelines\"><h2>Timelines</h2>");
    if r.timeline.len() > 1 {
        let marks: Vec<(f64, String)> = r
            .heap_maps
            .iter()
            .filter(|m| Some(m.pid) == r.heap_maps.first().map(|f| f.pid))
            .map(|m| (m.t_ms, format!("heap map at {}", m.when)))
            .collect();
        s.push_str("<p class=\"legend\"><span><i class=\"sw\" style=\"background:#d62728\"></i>live bytes</span><span><i class=\"sw\" style=\"background:#1f77b4\"></i>mapped bytes</span><span><i class=\"sw\" style=\"background:#2ca02c\"></i>RSS</span></p>");
        s.push_str(&timeline_svg(&r.timeline, &marks));
        let _ = write!(
            s,
            "<p class=\"muted\">{} samples, one every 5 ms, summed over the program's processes. Live bytes are each thread's as of its last 256 KiB of change; dashed lines mark the heap maps.</p>",
            r.timeline.len()
        );
    } else {
        s.push_str("<p class=\"note\">The program ran too briefly for a timeline (fewer than two samples).</p>");
    }
    s.push_str("</section><section id=\"heapmaps\"><h2>Heap maps</h2>");
    if r.heap_maps.is_empty() {
        s.push_str("<p class=\"note\">No heap map was written.</p>");
    } else {
        s.push_str(&legend());
    }
    for (i, m) in r.heap_maps.iter().take(8).enumerate() {
        let _ = write!(
            s,
            "<details class=\"map\" data-pid=\"{}\" data-when=\"{}\" data-pages=\"{}\"{}><summary>pid {} at {} ({:.2} s): {} mapped, {} live, {} pages{}</summary>{}<h3>Fragmentation at {}</h3>{}</details>",
            m.pid,
            esc(&m.when),
            m.page_count,
            if i < 2 { " open" } else { "" },
            m.pid,
            esc(&m.when),
            m.t_ms / 1000.0,
            esc(&human(m.mapped_bytes)),
            esc(&human(m.live_bytes)),
            m.page_count,
            if m.complete { "" } else { " (cut off)" },
            heap_map_svg(m),
            esc(&m.when),
            fragmentation_table(m)
        );
    }
    if r.heap_maps.len() > 8 {
        let _ = write!(
            s,
            "<p class=\"muted\">{} more heap maps in the JSON report.</p>",
            r.heap_maps.len() - 8
        );
    }
    s.push_str("</section><section id=\"histogram\"><h2>Size classes</h2><p>Allocations per block size, over every process.</p>");
    s.push_str(&histogram_svg(&r.size_classes));
    s.push_str("</section><section id=\"fragmentation\"><h2>Fragmentation</h2>");
    match r.main_heap_map() {
        Some(m) => {
            let _ = write!(
                s,
                "<p>Live bytes over resident bytes per size class, from the heap map of pid {} at {}.</p>{}",
                m.pid,
                esc(&m.when),
                fragmentation_table(m)
            );
        }
        None => s.push_str("<p class=\"note\">No heap map was written.</p>"),
    }
    s.push_str("</section>");
    match &r.profiling.data {
        Some(d) => s.push_str(&profiling_sections(r, d)),
        None => {
            s.push_str(&not_enabled("sites", "Top allocation sites", r));
            s.push_str(&not_enabled("flamegraph", "Flame graph", r));
            s.push_str(&not_enabled("leaks", "Leaks by call site", r));
        }
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heapmap;
    use std::time::Duration;

    fn report() -> Report {
        let mut r = Report::from_lines(
            "",
            "prog <a&b>".into(),
            Some(0),
            Duration::from_millis(300),
            0,
        );
        r.timeline = (0..40)
            .map(|i| Sample {
                t_ms: i as f64 * 5.0,
                live_bytes: i * 1000,
                mapped_bytes: 4 << 20,
                rss_bytes: 1 << 20,
                processes: 1,
            })
            .collect();
        r.heap_maps = vec![
            heapmap::parse(&heapmap::tests::sample_dump(7, "peak"), 0).unwrap(),
            heapmap::parse(&heapmap::tests::sample_dump(7, "exit"), 0).unwrap(),
        ];
        r.size_classes = vec![(16, 10), (1024, 5), (0, 1)];
        r
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn timeline_has_three_series_with_a_point_per_sample() {
        let r = report();
        let svg = timeline_svg(&r.timeline, &[(100.0, "mark".into())]);
        assert_eq!(svg.matches("<polyline").count(), 3);
        let pts = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split(' ').count(), 40);
        assert!(svg.contains("stroke-dasharray"), "the mark");
    }

    #[test]
    fn heap_map_has_a_cell_per_page_and_free_slots_apart() {
        let m = heapmap::parse(&heapmap::tests::sample_dump(7, "exit"), 0).unwrap();
        let svg = heap_map_svg(&m);
        assert_eq!(svg.matches("class=\"pg").count() as u64, m.page_count);
        assert_eq!(svg.matches("class=\"free\"").count(), 1);
        assert_eq!(svg.matches("class=\"purged\"").count(), 61);
        assert!(
            svg.contains("16 B blocks, 2000/4000 used (50%)"),
            "hover title"
        );
    }

    #[test]
    fn page_is_self_contained_with_every_section() {
        let html = render(&report());
        for id in [
            "summary",
            "timelines",
            "heapmaps",
            "histogram",
            "fragmentation",
            "sites",
            "flamegraph",
            "leaks",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(html.contains("prog &lt;a&amp;b&gt;"));
        assert!(html.contains("Profiling was not enabled"));
    }
}
