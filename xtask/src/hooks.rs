//! `cargo xtask hooks`: `docs/hooks.md`, every LSM hook and cgroup BPF attach type of the
//! supported kernels with what `NemoClaw` does with it.
//!
//! The hook lists are extracted from the kernels' own headers (`--refresh`, from Debian's
//! `linux-source-*` packages) into small committed files under `xtask/data/hooks/`; the
//! hand-written `classification.txt` there says what each hook is to the sandbox. A hook
//! without a classification (say, one a new kernel adds) fails the command and the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;

use crate::util;

#[derive(Args)]
pub struct HooksArgs {
    /// First download `linux-source-*` (apt-get download, cached in
    /// ~/.cache/nemoclaw/kernel-source/) and extract the hook lists in xtask/data/hooks/ again.
    #[arg(long)]
    refresh: bool,
}

/// The kernels `NemoClaw` supports (Debian's `linux-source-<version>` packages).
const KERNELS: [&str; 2] = ["6.1", "6.12"];
const STATUSES: [&str; 3] = ["judged", "not-needed", "gap"];
const CONTROLS: &str = "process, filesystem, network, network (socket kinds), privilege_escalation";
const LSM_HEADER: &str = "include/linux/lsm_hook_defs.h";
const BPF_HEADER: &str = "include/uapi/linux/bpf.h";
const INTRO: &str = include_str!("../data/hooks/intro.md");

fn data_dir() -> PathBuf {
    util::workspace_root().join("xtask/data/hooks")
}

fn doc_path() -> PathBuf {
    util::workspace_root().join("docs/hooks.md")
}

pub fn main(args: &HooksArgs) -> Result<ExitCode> {
    if args.refresh {
        refresh()?;
    }
    let (inventory, classes) = (Inventory::load()?, load_classification()?);
    let doc = doc_path();
    let text = render(&inventory, &classes);
    std::fs::write(&doc, text).with_context(|| format!("writing {}", doc.display()))?;
    println!("xtask hooks: wrote {}", doc.display());
    let missing = inventory.unclassified(&classes);
    for name in &missing {
        eprintln!(
            "xtask hooks: unclassified: {name} (add it to xtask/data/hooks/classification.txt)"
        );
    }
    let stale = inventory.stale(&classes);
    for name in &stale {
        eprintln!("xtask hooks: classified but in no kernel's list: {name}");
    }
    Ok(ExitCode::from(u8::from(
        !missing.is_empty() || !stale.is_empty(),
    )))
}

// ---- Extraction from the kernel source -------------------------------------------------

/// Downloads (or reuses) each kernel's source package and rewrites the hook lists.
fn refresh() -> Result<()> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let cache = PathBuf::from(home).join(".cache/nemoclaw/kernel-source");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    for kernel in KERNELS {
        let package = format!("linux-source-{kernel}");
        let deb = match find_deb(&cache, &package)? {
            Some(deb) => deb,
            None => download(&cache, &package)?,
        };
        let version = util::output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?;
        println!("xtask hooks: extracting from {}", deb.display());
        let dir = cache.join(format!("extract-{kernel}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // The package holds the source tarball; take the two headers from that (one level
        // down only: tools/include/ has its own copy of bpf.h).
        let (deb_q, dir_q) = (quote(&deb), quote(&dir));
        let script = format!(
            "dpkg-deb --fsys-tarfile {deb_q} | tar -xf - -C {dir_q} --wildcards './usr/src/*.tar.xz' \
             && tar -xJf {dir_q}/usr/src/{package}.tar.xz -C {dir_q} --no-wildcards-match-slash \
             --wildcards '*/{LSM_HEADER}' '*/{BPF_HEADER}'"
        );
        util::run(Command::new("bash").args(["-o", "pipefail", "-c", &script]))?;
        let read = |header: &str| std::fs::read_to_string(dir.join(&package).join(header));
        let version = version.trim();
        let hooks = parse_lsm_hooks(&read(LSM_HEADER)?)?;
        let rows = hooks.iter().map(|(name, guard)| format!("{name}\t{guard}"));
        let text = format!("# {package} {version}: {LSM_HEADER}\n");
        write_list(&format!("lsm-{kernel}.txt"), text, rows)?;
        let types = parse_cgroup_attach_types(&read(BPF_HEADER)?)?;
        let text = format!("# {package} {version}: {BPF_HEADER}\n");
        write_list(
            &format!("cgroup-attach-{kernel}.txt"),
            text,
            types.into_iter(),
        )?;
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn quote(path: &Path) -> String {
    util::shell_quote(&path.to_string_lossy())
}

fn write_list(file: &str, mut text: String, rows: impl Iterator<Item = String>) -> Result<()> {
    text.push_str("# (extracted by `cargo xtask hooks --refresh`: do not edit)\n");
    rows.for_each(|row| text.extend([row.as_str(), "\n"]));
    let path = data_dir().join(file);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The newest cached `.deb` of `package`, if any.
fn find_deb(cache: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(cache)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            debs.push(path);
        }
    }
    debs.sort();
    Ok(debs.pop())
}

/// `apt-get download` into `cache`, after an `apt-get update` if the first try fails.
fn download(cache: &Path, package: &str) -> Result<PathBuf> {
    let mut apt = Command::new("apt-get");
    apt.args(["download", package]).current_dir(cache);
    let mut fetch = || util::run(&mut apt);
    if fetch().is_err() {
        util::run(Command::new("apt-get").arg("update"))?;
        fetch()?;
    }
    let deb = find_deb(cache, package)?;
    deb.with_context(|| format!("apt-get download left no {package} .deb"))
}

/// `src` without `/* */` and `//` comments (newlines kept, so line structure survives).
fn strip_comments(src: &str) -> String {
    let (mut out, mut rest) = (String::with_capacity(src.len()), src);
    while let Some(i) = rest.find('/') {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        if let Some(body) = after.strip_prefix("/*") {
            let end = body.find("*/").map_or(body.len(), |e| e + 2);
            out.extend(body[..end].chars().filter(|&c| c == '\n'));
            rest = &body[end..];
        } else if after.starts_with("//") {
            rest = &after[after.find('\n').unwrap_or(after.len())..];
        } else {
            out.push('/');
            rest = &after[1..];
        }
    }
    out + rest
}

/// `defined(CONFIG_A) && defined CONFIG_B` -> `CONFIG_A && CONFIG_B`.
fn guard_expr(expr: &str) -> String {
    let words = expr.replace("defined", " ");
    let bare = |w| unwrap_parens(w).unwrap_or(w);
    let words: Vec<&str> = words.split_whitespace().map(bare).collect();
    words.join(" ")
}

/// `(NAME)` -> `NAME`.
fn unwrap_parens(word: &str) -> Option<&str> {
    let inner = word.strip_prefix('(')?.strip_suffix(')')?;
    (!inner.contains('(')).then_some(inner)
}

/// `(hook name, config guard)` of every `LSM_HOOK(ret, default, NAME, args...)` in
/// `lsm_hook_defs.h`, in order. The guard is the `#if`/`#ifdef` nest around it (`-` if none).
pub fn parse_lsm_hooks(src: &str) -> Result<Vec<(String, String)>> {
    let src = strip_comments(src);
    let (mut guards, mut hooks) = (Vec::<String>::new(), Vec::new());
    let mut lines = src.lines().zip(1..);
    while let Some((line, n)) = lines.next() {
        let line = line.trim();
        if let Some(directive) = line.strip_prefix('#').map(str::trim_start) {
            let (word, arg) = directive
                .split_once(char::is_whitespace)
                .unwrap_or((directive, ""));
            let unbalanced = || format!("line {n}: #{word} without #if");
            match word {
                "ifdef" => guards.push(arg.trim().to_string()),
                "ifndef" => guards.push(format!("!{}", arg.trim())),
                "if" => guards.push(guard_expr(arg)),
                "else" => {
                    let top = guards.pop().with_context(unbalanced)?;
                    guards.push(format!("!({top})"));
                }
                "endif" => drop(guards.pop().with_context(unbalanced)?),
                "elif" => bail!("line {n}: #elif is not supported"),
                _ => {}
            }
        } else if line.starts_with("LSM_HOOK(") {
            let mut text = line.to_string();
            while text.matches('(').count() > text.matches(')').count() {
                let next = lines
                    .next()
                    .with_context(|| format!("line {n}: unterminated"));
                text.extend([" ", next?.0.trim()]);
            }
            let name = text.split(',').nth(2).map(str::trim).unwrap_or_default();
            let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
            ensure!(
                !name.is_empty() && name.chars().all(word),
                "line {n}: no hook name in `{text}`"
            );
            let guard = if guards.is_empty() {
                "-".into()
            } else {
                guards.join(" && ")
            };
            hooks.push((name.to_string(), guard));
        }
    }
    ensure!(guards.is_empty(), "unterminated #if: {}", guards.join(", "));
    ensure!(!hooks.is_empty(), "no LSM_HOOK found");
    Ok(hooks)
}

/// The `BPF_CGROUP_*` entries of `enum bpf_attach_type` in `uapi/linux/bpf.h`, in order.
pub fn parse_cgroup_attach_types(src: &str) -> Result<Vec<String>> {
    let src = strip_comments(src);
    let (_, body) = src
        .split_once("enum bpf_attach_type {")
        .context("no enum bpf_attach_type")?;
    let (body, _) = body
        .split_once('}')
        .context("unterminated enum bpf_attach_type")?;
    let mut names = Vec::new();
    for entry in body.split(',') {
        let name = entry.split('=').next().unwrap_or_default().trim();
        if name.starts_with("BPF_CGROUP_") {
            names.push(name.to_string());
        }
    }
    ensure!(!names.is_empty(), "no BPF_CGROUP_* attach type found");
    Ok(names)
}

// ---- The committed lists and the classification ----------------------------------------

/// One kernel's lists: LSM hook -> guard, cgroup attach types, and where they came from.
struct Lists {
    kernel: &'static str,
    sources: Vec<String>,
    lsm: BTreeMap<String, String>,
    cgroup: BTreeSet<String>,
}

/// `name<TAB>guard` -> `(name, guard)`.
fn split_row(row: &str) -> (String, String) {
    let (name, guard) = row.split_once('\t').unwrap_or((row, "-"));
    (name.to_string(), guard.to_string())
}

/// Every kernel's lists, in [`KERNELS`] order.
pub struct Inventory(Vec<Lists>);

/// The first line (`# source`) of a list file, and its entries.
fn read_list(file: &str) -> Result<(String, Vec<String>)> {
    let path = data_dir().join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let source = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .to_string();
    let rows = lines.filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    Ok((source, rows.map(String::from).collect()))
}

impl Inventory {
    pub fn load() -> Result<Self> {
        let mut kernels = Vec::new();
        for kernel in KERNELS {
            let (lsm_source, hooks) = read_list(&format!("lsm-{kernel}.txt"))?;
            let (cgroup_source, types) = read_list(&format!("cgroup-attach-{kernel}.txt"))?;
            let lsm = hooks.iter().map(|row| split_row(row)).collect();
            let (sources, cgroup) = (vec![lsm_source, cgroup_source], types.into_iter().collect());
            kernels.push(Lists {
                kernel,
                sources,
                lsm,
                cgroup,
            });
        }
        Ok(Self(kernels))
    }

    /// Every name in any kernel's lists.
    fn names(&self) -> BTreeSet<&str> {
        let all = self.0.iter().flat_map(|l| l.lsm.keys().chain(&l.cgroup));
        all.map(String::as_str).collect()
    }

    /// Hooks and attach types that `classes` does not classify.
    pub fn unclassified(&self, classes: &[Entry]) -> Vec<String> {
        let known: BTreeSet<&str> = classes.iter().map(|e| e.name.as_str()).collect();
        let names = self.names().into_iter().filter(|n| !known.contains(n));
        names.map(String::from).collect()
    }

    /// Classification entries for names no kernel has.
    pub fn stale(&self, classes: &[Entry]) -> Vec<String> {
        let names = self.names();
        let stale = classes.iter().filter(|e| !names.contains(e.name.as_str()));
        stale.map(|e| e.name.clone()).collect()
    }

    /// `6.1, 6.12` or `6.12 only`.
    fn kernels_cell(&self, name: &str) -> String {
        let has = |l: &&Lists| l.lsm.contains_key(name) || l.cgroup.contains(name);
        let kernels: Vec<&str> = self.0.iter().filter(has).map(|l| l.kernel).collect();
        match kernels[..] {
            [one] => format!("{one} only"),
            _ => kernels.join(", "),
        }
    }

    /// The hook's guard, per kernel where they differ (`-` for cgroup attach types).
    fn guard_cell(&self, name: &str) -> String {
        let guard = |l: &Lists| Some(format!("{}: {}", l.kernel, l.lsm.get(name)?));
        let guards: Vec<String> = self.0.iter().filter_map(guard).collect();
        let bare: BTreeSet<&str> = guards
            .iter()
            .filter_map(|g| Some(g.split_once(": ")?.1))
            .collect();
        match bare.len() {
            0 => "-".to_string(),
            1 => bare.into_iter().collect(),
            _ => guards.join("; "),
        }
    }
}

/// One classified hook: a line `name | status | control | programs | note` under a
/// `[section]` line.
pub struct Entry {
    section: String,
    name: String,
    status: String,
    control: String,
    programs: Vec<String>,
    note: String,
}

fn load_classification() -> Result<Vec<Entry>> {
    let path = data_dir().join("classification.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_classification(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_classification(text: &str) -> Result<Vec<Entry>> {
    let (mut entries, mut seen, mut section) = (Vec::new(), BTreeSet::new(), None);
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(title) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(title.trim().to_string());
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, status, control, programs, note] = fields[..] else {
            bail!("line {n}: not `name | status | control | programs | note`: {line}");
        };
        let what = format!("line {n}: {name}");
        ensure!(
            STATUSES.contains(&status),
            "{what}: status is not one of {STATUSES:?}"
        );
        let known = |c: &str| CONTROLS.split(", ").any(|k| k == c);
        let controls_ok = control == "-" || control.split(", ").all(known);
        ensure!(
            controls_ok,
            "{what}: control is not `-` or some of: {CONTROLS}"
        );
        let programs = programs.split(", ").filter(|p| *p != "-").map(String::from);
        let programs: Vec<String> = programs.collect();
        if status == "judged" {
            ensure!(
                control != "-" && !programs.is_empty(),
                "{what}: judged needs a control and programs"
            );
        } else {
            ensure!(
                !note.is_empty() && note != "-",
                "{what}: {status} needs a note"
            );
        }
        ensure!(seen.insert(name.to_string()), "{what}: classified twice");
        let section = section
            .clone()
            .with_context(|| format!("{what}: before any [section]"))?;
        let (name, status, control, note) =
            (name.into(), status.into(), control.into(), note.into());
        entries.push(Entry {
            section,
            name,
            status,
            control,
            programs,
            note,
        });
    }
    Ok(entries)
}

// ---- docs/hooks.md -----------------------------------------------------------------------

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// `docs/hooks.md` for `inventory` and `classes`: the intro, a count per status, the tables.
pub fn render(inventory: &Inventory, classes: &[Entry]) -> String {
    let mut doc = format!("{INTRO}\nSources:\n\n");
    for source in inventory.0.iter().flat_map(|l| &l.sources) {
        let _ = writeln!(doc, "- {source}");
    }
    let status = |name: &str| {
        classes
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.status.as_str())
    };
    let mut columns: Vec<(String, Vec<&String>)> = Vec::new();
    for l in &inventory.0 {
        columns.push((format!("LSM hooks, {}", l.kernel), l.lsm.keys().collect()));
    }
    for l in &inventory.0 {
        columns.push((
            format!("cgroup attach types, {}", l.kernel),
            l.cgroup.iter().collect(),
        ));
    }
    let titles = columns.iter().map(|(title, _)| title.clone());
    doc.push_str("\n## Summary\n\n");
    doc.push_str(&row(&std::iter::once("status".into())
        .chain(titles)
        .collect::<Vec<_>>()));
    let _ = writeln!(doc, "|---{}|", "|---:".repeat(columns.len()));
    for wanted in ["judged", "not-needed", "gap", "unclassified", "total"] {
        let mut cells = vec![wanted.replace('-', " ")];
        for (_, names) in &columns {
            let counted =
                |n: &&&String| wanted == "total" || status(n).unwrap_or("unclassified") == wanted;
            cells.push(names.iter().filter(counted).count().to_string());
        }
        doc.push_str(&row(&cells));
    }
    let unclassified = inventory
        .unclassified(classes)
        .into_iter()
        .map(|name| Entry {
            section: "Unclassified".into(),
            name,
            status: "unclassified".into(),
            control: "-".into(),
            programs: Vec::new(),
            note: "add it to `xtask/data/hooks/classification.txt`".into(),
        });
    let (unclassified, mut section): (Vec<Entry>, Option<&str>) = (unclassified.collect(), None);
    for e in unclassified.iter().chain(classes) {
        if section != Some(&e.section) {
            section = Some(&e.section);
            let titles = [
                "hook", "kernels", "config", "status", "control", "programs", "note",
            ];
            let _ = write!(doc, "\n## {}\n\n", e.section);
            doc.push_str(&row(&titles.map(String::from)));
            let _ = writeln!(doc, "|{}", "---|".repeat(titles.len()));
        }
        let programs: Vec<String> = e.programs.iter().map(|p| format!("`{p}`")).collect();
        let programs = Some(programs.join(", ")).filter(|p| !p.is_empty());
        doc.push_str(&row(&[
            format!("`{}`", e.name),
            inventory.kernels_cell(&e.name),
            inventory.guard_cell(&e.name),
            e.status.replace('-', " "),
            e.control.clone(),
            programs.unwrap_or_else(|| "-".into()),
            e.note.clone(),
        ]));
    }
    doc
}

#[cfg(test)]
mod tests;
