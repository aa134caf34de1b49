//! Detection rate of quotes of indexed source files (5, 10 and 20 lines, re-indented) and
//! false-positive rate on unrelated code. Run with
//! `cargo test -p nemoclaw-detect --test code_quotes -- --nocapture` to see the table.
//!
//! The sources are generated (Rust, Python and C functions built from statement templates
//! over a shared vocabulary of identifiers), so indexed and unrelated files share
//! language keywords, idioms and many identifiers, as files of one organisation do.

#![allow(
    clippy::cast_precision_loss,
    clippy::many_single_char_names,
    clippy::too_many_lines,
    reason = "test data generators"
)]

use std::cell::Cell;

use nemoclaw_detect::code::CodeIndex;

struct Rng(Cell<u64>);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(Cell::new(seed | 1))
    }
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const NOUNS: &[&str] = &[
    "buffer", "cache", "client", "config", "cursor", "entry", "event", "frame", "handle", "header",
    "index", "item", "key", "layer", "limit", "node", "offset", "packet", "page", "path", "peer",
    "queue", "record", "request", "result", "route", "row", "schema", "session", "slot", "state",
    "stream", "table", "task", "token", "value",
];
const VERBS: &[&str] = &[
    "load", "parse", "read", "write", "flush", "merge", "split", "apply", "check", "build",
    "encode", "decode", "fetch", "store", "update", "remove", "insert", "resolve", "compute",
    "render", "scan", "sync", "validate",
];
const TYPES: &[&str] = &[
    "Buffer", "Config", "Entry", "Frame", "Header", "Node", "Packet", "Record", "Session", "State",
    "Table", "Token",
];

fn ident(r: &Rng) -> String {
    match r.below(3) {
        0 => r.pick(NOUNS).to_owned(),
        1 => format!("{}_{}", r.pick(NOUNS), r.pick(NOUNS)),
        _ => format!("{}_{}", r.pick(VERBS), r.pick(NOUNS)),
    }
}

fn num(r: &Rng) -> String {
    r.pick(&["0", "1", "2", "4", "8", "16", "64", "255", "1024", "4096"])
        .to_owned()
}

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    Rust,
    Python,
    C,
}

/// Lines of a block at `depth` (indentation applied later by depth).
fn block(r: &Rng, lang: Lang, depth: usize, n: usize, out: &mut Vec<(usize, String)>) {
    for _ in 0..n {
        let (a, b, c) = (ident(r), ident(r), ident(r));
        let (v, f, t, k) = (r.pick(VERBS), r.pick(NOUNS), r.pick(TYPES), num(r));
        let nest = depth < 3 && r.below(4) == 0;
        match (lang, nest, r.below(8)) {
            (Lang::Rust, true, x) => {
                let head = match x % 3 {
                    0 => format!("if {a}.{v}_{f}() > {k} {{"),
                    1 => format!("for {a} in {b}.iter().take({k}) {{"),
                    _ => format!("while let Some({a}) = {b}.{v}() {{"),
                };
                out.push((depth, head));
                block(r, lang, depth + 1, 1 + r.below(3), out);
                out.push((depth, "}".to_owned()));
            }
            (Lang::Rust, false, x) => out.push((
                depth,
                match x {
                    0 => format!("let {a} = {b}.{v}_{f}({c})?;"),
                    1 => format!("let mut {a}: Vec<{t}> = Vec::with_capacity({k});"),
                    2 => format!("{a}.{v}(&{b}[{k}..], {c}.len());"),
                    3 => format!("let {a} = {t}::{v}({b}, {k}).map_err(|e| Error::{t}(e))?;"),
                    4 => format!("{a} += {b}.{f}_{v}() as u64 * {k};"),
                    5 => format!("debug!(\"{v} {f}: {{}}\", {a});"),
                    6 => format!("self.{a}.insert({b}.clone(), {c});"),
                    _ => format!("return Ok({t} {{ {a}, {b}: {k} }});"),
                },
            )),
            (Lang::Python, true, x) => {
                let head = match x % 3 {
                    0 => format!("if {a}.{v}_{f}() > {k}:"),
                    1 => format!("for {a} in {b}[:{k}]:"),
                    _ => format!("with open({a}, \"rb\") as {b}:"),
                };
                out.push((depth, head));
                block(r, lang, depth + 1, 1 + r.below(3), out);
            }
            (Lang::Python, false, x) => out.push((
                depth,
                match x {
                    0 => format!("{a} = {b}.{v}_{f}({c})"),
                    1 => format!("{a} = [{b}.{v}() for {b} in {c} if {b}]"),
                    2 => format!("{a}.{v}({b}[{k}:], len({c}))"),
                    3 => format!("{a} = {t}.{v}({b}, {k})"),
                    4 => format!("{a} += int({b}.{f}_{v}()) * {k}"),
                    5 => format!("log.debug(\"{v} {f}: %s\", {a})"),
                    6 => format!("self.{a}[{b}] = {c}"),
                    _ => format!("return {t}({a}={b}, {c}={k})"),
                },
            )),
            (Lang::C, true, x) => {
                let head = match x % 3 {
                    0 => format!("if ({v}_{f}({a}) > {k}) {{"),
                    1 => format!("for (size_t {a} = 0; {a} < {k}; {a}++) {{"),
                    _ => format!("while ({a} != NULL) {{"),
                };
                out.push((depth, head));
                block(r, lang, depth + 1, 1 + r.below(3), out);
                out.push((depth, "}".to_owned()));
            }
            (Lang::C, false, x) => out.push((
                depth,
                match x {
                    0 => format!("{a} = {v}_{f}({b}, {c});"),
                    1 => format!("struct {f} *{a} = calloc({k}, sizeof(*{a}));"),
                    2 => format!("memcpy({a} + {k}, {b}, {c}->len);"),
                    3 => format!("if ({a} < 0) return -E{};", t.to_uppercase()),
                    4 => format!("{a} += (uint64_t){b}->{f} * {k};"),
                    5 => format!("log_debug(\"{v} {f}: %d\", {a});"),
                    6 => format!("{a}->{b} = {c};"),
                    _ => format!("return {v}_{f}({a}, {k});"),
                },
            )),
        }
    }
}

/// One source file: several functions with a header comment each.
fn source_file(r: &Rng, lang: Lang) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for _ in 0..4 + r.below(4) {
        let (name, a, b) = (
            format!("{}_{}", r.pick(VERBS), r.pick(NOUNS)),
            ident(r),
            ident(r),
        );
        let t = r.pick(TYPES);
        match lang {
            Lang::Rust => {
                out.push((
                    0,
                    format!(
                        "/// {} the {} of a {}.",
                        r.pick(VERBS),
                        r.pick(NOUNS),
                        r.pick(NOUNS)
                    ),
                ));
                out.push((
                    0,
                    format!("pub fn {name}({a}: &{t}, {b}: usize) -> Result<{t}, Error> {{"),
                ));
                block(r, lang, 1, 4 + r.below(8), &mut out);
                out.push((0, "}".to_owned()));
            }
            Lang::Python => {
                out.push((0, format!("def {name}({a}, {b}={}):", num(r))));
                out.push((
                    1,
                    format!(
                        "\"\"\"{} the {} of a {}.\"\"\"",
                        r.pick(VERBS),
                        r.pick(NOUNS),
                        r.pick(NOUNS)
                    ),
                ));
                block(r, lang, 1, 4 + r.below(8), &mut out);
            }
            Lang::C => {
                out.push((
                    0,
                    format!(
                        "/* {} the {} of a {}. */",
                        r.pick(VERBS),
                        r.pick(NOUNS),
                        r.pick(NOUNS)
                    ),
                ));
                out.push((
                    0,
                    format!(
                        "static int {name}(struct {} *{a}, size_t {b})",
                        r.pick(NOUNS)
                    ),
                ));
                out.push((0, "{".to_owned()));
                block(r, lang, 1, 4 + r.below(8), &mut out);
                out.push((0, "}".to_owned()));
            }
        }
        out.push((0, String::new()));
    }
    out
}

fn render(lines: &[(usize, String)], unit: &str) -> String {
    lines
        .iter()
        .map(|(d, l)| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("{}{l}\n", unit.repeat(*d))
            }
        })
        .collect()
}

/// A re-indented quote of `n` lines from `lines`: another indentation unit, trailing
/// spaces, blank lines added and removed. `None` when the window is mostly trivial lines.
fn quote(r: &Rng, lines: &[(usize, String)], n: usize) -> Option<String> {
    let start = r.below(lines.len().saturating_sub(n).max(1));
    let window = &lines[start..(start + n).min(lines.len())];
    let meaningful = window
        .iter()
        .filter(|(_, l)| l.chars().filter(|c| c.is_alphanumeric()).count() >= 3)
        .count();
    if meaningful < n.min(3) {
        return None;
    }
    let unit = r.pick(&["\t", "  ", "   ", "        "]);
    let mut out = String::new();
    for (d, l) in window {
        if l.is_empty() && r.below(2) == 0 {
            continue;
        }
        out.push_str(&unit.repeat(*d));
        out.push_str(l);
        if r.below(3) == 0 {
            out.push_str(r.pick(&[" ", "  ", "\t"]));
        }
        out.push('\n');
        if r.below(6) == 0 {
            out.push('\n');
        }
    }
    Some(out)
}

fn prompt(r: &Rng, code: &str) -> (String, usize, usize) {
    let head = r.pick(&[
        "Why does this panic on empty input?\n```\n",
        "Can you refactor the following for readability:\n\n",
        "Here's our function, add error handling please\n```rust\n",
        "User: review this\n",
    ]);
    let text = format!("{head}{code}```\nThanks, and keep the behaviour the same.");
    (text, head.len(), head.len() + code.len())
}

#[test]
fn quote_detection_and_false_positives() {
    let r = Rng::new(0xc0de_2026);
    let langs = [Lang::Rust, Lang::Python, Lang::C];
    let units = ["    ", "  ", "\t"];
    let mut index = CodeIndex::new();
    let mut indexed = Vec::new();
    for i in 0..36 {
        let lang = langs[i % 3];
        let lines = source_file(&r, lang);
        let key = format!("src/module_{i}.{}", ["rs", "py", "c"][i % 3]);
        index.insert(&key, &render(&lines, units[i % 3]));
        indexed.push((key, lines));
    }
    let total_lines: usize = indexed.iter().map(|(_, l)| l.len()).sum();
    let unrelated: Vec<Vec<(usize, String)>> =
        (0..36).map(|i| source_file(&r, langs[i % 3])).collect();

    println!(
        "indexed {} files, {total_lines} lines; {} unrelated files",
        index.len(),
        unrelated.len()
    );
    println!(
        "{:<12} {:>8} {:>9} {:>6}",
        "quote lines", "quotes", "detected", "rate"
    );
    let mut rates = Vec::new();
    for (n, renamed) in [(5, false), (10, false), (20, false), (10, true), (20, true)] {
        let (mut tried, mut hit) = (0, 0);
        while tried < 300 {
            let (key, lines) = &indexed[r.below(indexed.len())];
            let Some(mut q) = quote(&r, lines, n) else {
                continue;
            };
            if renamed {
                // One identifier renamed everywhere in the quote.
                let Some(word) = NOUNS.iter().find(|w| q.contains(*w)) else {
                    continue;
                };
                q = q.replace(word, "renamed_thing");
            }
            tried += 1;
            let (text, s, e) = prompt(&r, &q);
            if index
                .scan(&text)
                .iter()
                .any(|m| &m.file == key && m.finding.start < e && s < m.finding.end)
            {
                hit += 1;
            }
        }
        let rate = f64::from(hit) / f64::from(tried);
        let label = if renamed {
            format!("{n} renamed")
        } else {
            n.to_string()
        };
        println!("{label:<12} {tried:>8} {hit:>9} {rate:>6.3}");
        rates.push(rate);
    }
    let (mut tried, mut fp) = (0, 0);
    for lines in &unrelated {
        for n in [5, 10, 20] {
            for _ in 0..10 {
                let Some(q) = quote(&r, lines, n) else {
                    continue;
                };
                tried += 1;
                let (text, _, _) = prompt(&r, &q);
                if !index.scan(&text).is_empty() {
                    fp += 1;
                }
            }
        }
        tried += 1;
        if !index.scan(&render(lines, "    ")).is_empty() {
            fp += 1;
        }
    }
    let fp_rate = f64::from(fp) / f64::from(tried);
    println!(
        "{:<12} {tried:>8} {fp:>9} {fp_rate:>6.3}  (false positives: unrelated windows and whole files)",
        "unrelated"
    );

    // Floors at what the index reaches on this corpus (measured: 0.967, 1.000, 1.000, 0.000).
    assert!(rates[0] >= 0.93, "5-line quotes: {}", rates[0]);
    assert!(rates[1] >= 0.99, "10-line quotes: {}", rates[1]);
    assert!(rates[2] >= 0.99, "20-line quotes: {}", rates[2]);
    assert!(fp_rate <= 0.01, "false positives: {fp_rate}");
}
