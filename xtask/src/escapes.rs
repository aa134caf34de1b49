//! `docs/escapes.md`: the escape suite, published. Every integration test that attacks the
//! sandbox, the attack it reproduces in one line (with the peer's public issue where the
//! attack comes from one), and its result per kernel and tier in the `cargo xtask test` run
//! that wrote the file.
//!
//! The catalogue is read from the test sources at run time (`nemoclaw-userspace/tests/`):
//! every `#[test]` of [`ESCAPE_MODULES`] and the daemon tests of [`DAEMON_ATTACKS`]; a test's
//! attack is the first sentence of its doc comment, and a `<peer> #<number>` anywhere in it
//! ([`PEERS`]) becomes a link to that issue. The `router` and `service` suites test the
//! privacy router and the systemd unit, not the sandbox's walls, so they are not part of it.
//! The results are libtest's per-test lines (`test NAME ... ok`) of each suite's output, and
//! the `SKIPPED` line a test prints (shown by `--show-output`) when its environment lacks
//! what it tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::util;

/// The controls, one table each, in the document's order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Control {
    /// Paths, inodes and metadata.
    Filesystem,
    /// Executions and executable mappings.
    Process,
    /// Sockets, addresses, DNS.
    Network,
    /// Root in the sandbox, the host's tasks and kernel interfaces.
    Privilege,
    /// Attacks on the daemon and on the sandbox's BPF state.
    Tamper,
    /// Refusing what cannot be enforced.
    FailClosed,
}

impl Control {
    const ALL: [Self; 6] = [
        Self::Filesystem,
        Self::Process,
        Self::Network,
        Self::Privilege,
        Self::Tamper,
        Self::FailClosed,
    ];

    /// The table's heading.
    fn title(self) -> &'static str {
        match self {
            Self::Filesystem => "Filesystem",
            Self::Process => "Process",
            Self::Network => "Network",
            Self::Privilege => "Privilege",
            Self::Tamper => "Tamper and daemon",
            Self::FailClosed => "Fail-closed",
        }
    }
}

/// The test modules whose every test is an escape (or the allowed twin that proves the
/// control does not simply deny everything), with their table. `lsm_inactive` is the refusal
/// where BPF LSM is built in but not active, so it sits with `fail_closed`.
pub const ESCAPE_MODULES: [(&str, Control); 7] = [
    ("filesystem", Control::Filesystem),
    ("process", Control::Process),
    ("network", Control::Network),
    ("privilege", Control::Privilege),
    ("tamper", Control::Tamper),
    ("fail_closed", Control::FailClosed),
    ("lsm_inactive", Control::FailClosed),
];

/// The `daemon` module's tests that attack the sandbox's manager: its death must not lift
/// enforcement, an unprivileged caller must not drive it, and a sandbox's flood of denials
/// must not stall it. The module's other tests (the audit drain, reloads, slot clearing,
/// slow name resolution) are the daemon's own behaviour, not attacks.
pub const DAEMON_ATTACKS: [&str; 3] = [
    "daemon::sigkill_leaves_sandbox_enforced_and_restart_adopts_and_reloads",
    "daemon::control_socket_refuses_unprivileged_callers",
    "daemon::denial_flood_cannot_stall_other_sandboxes_or_the_daemon",
];

/// A peer whose public issues the tests cite as `<name> #<number>`, and its GitHub repository.
pub const PEERS: [(&str, &str); 5] = [
    ("Falco", "falcosecurity/falco"),
    ("KubeArmor", "kubearmor/KubeArmor"),
    ("Tetragon", "cilium/tetragon"),
    ("OpenShell", "NVIDIA/OpenShell"),
    ("Landlock", "landlock-lsm/linux"),
];

/// The column of the tests run natively on this machine.
pub const HOST: &str = "host";

/// Where the catalogue is read from, relative to the workspace root.
const TESTS_DIR: &str = "nemoclaw-userspace/tests";

/// The document, relative to the workspace root.
const DOC: &str = "docs/escapes.md";

/// One test of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escape {
    /// libtest's name: the module path from the file's path, then the function.
    pub name: String,
    /// Its table.
    pub control: Control,
    /// The doc comment, one line per `///` line (without the marker); empty without one.
    pub doc: String,
    /// The source file, relative to the tests directory.
    pub file: String,
    /// The line of its `#[test]`.
    pub line: usize,
}

impl Escape {
    /// The attack: the first sentence of the doc comment's first paragraph.
    pub fn attack(&self) -> Option<String> {
        let paragraph = self
            .doc
            .split("\n\n")
            .find(|p| !p.trim().is_empty())?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Some(first_sentence(&paragraph).to_owned())
    }
}

/// The escape tests, in source order (files sorted by path).
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Every escape test found.
    pub escapes: Vec<Escape>,
}

impl Catalogue {
    /// Reads every `.rs` file under `dir` (the integration tests' directory).
    pub fn load(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        collect_rs_files(dir, dir, &mut files)?;
        files.sort();
        let mut sources = Vec::new();
        for rel in files {
            let text = std::fs::read_to_string(dir.join(&rel))
                .with_context(|| format!("reading {}", dir.join(&rel).display()))?;
            sources.push((rel, text));
        }
        Ok(Self::from_sources(
            sources.iter().map(|(f, t)| (f.as_str(), t.as_str())),
        ))
    }

    /// The catalogue of `(path relative to the tests directory, text)` sources.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut escapes = Vec::new();
        for (file, text) in sources {
            let Some(module) = module_path(file) else {
                continue;
            };
            for (function, doc, line) in tests_in_source(text) {
                let name = if module.is_empty() {
                    function
                } else {
                    format!("{module}::{function}")
                };
                if let Some(control) = control_of(&name) {
                    escapes.push(Escape {
                        name,
                        control,
                        doc,
                        file: file.to_owned(),
                        line,
                    });
                }
            }
        }
        Self { escapes }
    }

    /// The tests without a doc comment: errors of the generator (their attack is unknown).
    pub fn undocumented(&self) -> Vec<&Escape> {
        self.escapes
            .iter()
            .filter(|e| e.attack().is_none())
            .collect()
    }

    /// Whether the catalogue has a test of this libtest name.
    fn contains(&self, name: &str) -> bool {
        self.escapes.iter().any(|e| e.name == name)
    }
}

/// The table a test belongs to, or `None` when it is not an escape test.
fn control_of(name: &str) -> Option<Control> {
    let top = name.split("::").next()?;
    if let Some((_, control)) = ESCAPE_MODULES.iter().find(|(m, _)| *m == top) {
        return Some(*control);
    }
    DAEMON_ATTACKS.contains(&name).then_some(Control::Tamper)
}

/// `dir`'s `.rs` files, recursively, as paths relative to `root` with `/` separators.
fn collect_rs_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The module path of a test source file: `filesystem/mod.rs` is `filesystem`,
/// `filesystem/renames.rs` is `filesystem::renames`, a crate root (`vm.rs`) the empty path.
/// `None` for a file that is not Rust.
pub fn module_path(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".rs")?;
    if !stem.contains('/') {
        // A crate root of the tests directory (`vm.rs`, `host.rs`): its tests are at the top.
        return Some(String::new());
    }
    let mut parts: Vec<&str> = stem.split('/').filter(|p| !p.is_empty()).collect();
    if parts.last() == Some(&"mod") {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// The `#[test]` functions of one source file: (name, doc comment, line of `#[test]`). The
/// doc comment is the `///` lines around the function's attributes, before or after
/// `#[test]`.
pub fn tests_in_source(text: &str) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    // The doc lines and attributes seen since the last other line.
    let mut doc: Vec<&str> = Vec::new();
    // The line of a `#[test]` waiting for its `fn`.
    let mut test_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("///") {
            doc.push(rest.strip_prefix(' ').unwrap_or(rest));
            continue;
        }
        if line.starts_with("#[") {
            if line == "#[test]" || line.starts_with("#[test]") {
                test_line = Some(i + 1);
            }
            continue;
        }
        if let Some(at) = test_line
            && let Some(name) = fn_name(line)
        {
            found.push((name.to_owned(), doc.join("\n").trim().to_owned(), at));
        }
        test_line = None;
        doc.clear();
    }
    found
}

/// The function a line declares (`fn name(`, `pub fn name(`), if any.
fn fn_name(line: &str) -> Option<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    if !words[..at]
        .iter()
        .all(|w| matches!(*w, "pub" | "pub(crate)" | "async" | "unsafe" | "const"))
    {
        return None;
    }
    let rest = words.get(at + 1)?;
    let name = rest.split(['(', '<']).next()?;
    (!name.is_empty()).then_some(name)
}

/// The first sentence of `text` (whitespace already collapsed): up to the first `.` that is
/// followed by a space or the end, outside code spans and parentheses, and not an
/// abbreviation (`e.g.`); the whole text when there is none.
pub fn first_sentence(text: &str) -> &str {
    let mut in_code = false;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '(' if !in_code => depth += 1,
            ')' if !in_code => depth = depth.saturating_sub(1),
            '.' if !in_code && depth == 0 => {
                let ends = text[i + 1..].chars().next().is_none_or(char::is_whitespace);
                let word = text[..i].rsplit(' ').next().unwrap_or("").to_lowercase();
                if ends && !matches!(word.as_str(), "e.g" | "i.e" | "etc" | "vs" | "cf") {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    text
}

/// A citation of a peer's issue found in a doc comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRef {
    /// The peer's name as [`PEERS`] spells it.
    pub peer: &'static str,
    /// The (or pull request's) number.
    pub number: u32,
}

impl PeerRef {
    /// The address (GitHub sends an issue number that is a pull request there).
    pub fn url(self) -> String {
        let repo = PEERS
            .iter()
            .find(|(name, _)| *name == self.peer)
            .map_or("", |(_, repo)| repo);
        format!("https://github.com/{repo}/issues/{}", self.number)
    }

    /// The citation as a link to the issue.
    fn markdown(self) -> String {
        format!("[{} #{}]({})", self.peer, self.number, self.url())
    }
}

/// Walks `text` outside code spans, calling `on_ref` with the byte range and the citation of
/// each `<peer> #<number>` (the peer's name not inside a longer word).
fn scan_peer_refs(text: &str, mut on_ref: impl FnMut(std::ops::Range<usize>, PeerRef)) {
    let mut in_code = false;
    let mut prev: Option<char> = None;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code
            && !prev.is_some_and(char::is_alphanumeric)
            && let Some((len, citation)) = peer_ref_at(&text[i..])
        {
            on_ref(i..i + len, citation);
            i += len;
            prev = text[..i].chars().next_back();
            continue;
        }
        prev = Some(c);
        i += c.len_utf8();
    }
}

/// The citation `text` starts with, and its length.
fn peer_ref_at(text: &str) -> Option<(usize, PeerRef)> {
    PEERS.iter().find_map(|&(peer, _)| {
        let after = text.strip_prefix(peer)?.strip_prefix(" #")?;
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number = after[..digits].parse().ok()?;
        Some((peer.len() + 2 + digits, PeerRef { peer, number }))
    })
}

/// The peers' issues cited in `text`, each once, in order.
pub fn peer_refs(text: &str) -> Vec<PeerRef> {
    let mut refs = Vec::new();
    scan_peer_refs(text, |_, r| {
        if !refs.contains(&r) {
            refs.push(r);
        }
    });
    refs
}

/// `text` with each `<peer> #<number>` outside code spans turned into a link to the issue.
pub fn link_peer_refs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    scan_peer_refs(text, |range, r| {
        out.push_str(&text[copied..range.start]);
        out.push_str(&r.markdown());
        copied = range.end;
    });
    out.push_str(&text[copied..]);
    out
}

/// `text` safe in a table cell: `|` escaped, and `<` escaped outside code spans (where it
/// would start HTML).
pub fn table_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The attack column of a test: its first sentence with the peers it cites linked, and the
/// peers its doc comment cites further on after it.
fn attack_cell(escape: &Escape) -> String {
    let Some(attack) = escape.attack() else {
        return "**no doc comment** (an error of this file's generator: document the test)"
            .to_owned();
    };
    let mut cell = link_peer_refs(&table_cell(&attack));
    let in_sentence = peer_refs(&attack);
    let further: Vec<String> = peer_refs(&escape.doc)
        .into_iter()
        .filter(|r| !in_sentence.contains(r))
        .map(PeerRef::markdown)
        .collect();
    if !further.is_empty() {
        let _ = write!(cell, " Peer: {}.", further.join(", "));
    }
    cell
}

/// A test's result in one suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`.
    Pass,
    /// `FAILED`.
    Fail,
    /// `#[ignore]`d, or it printed `SKIPPED`: what it tests is missing there.
    Skipped,
}

/// libtest's per-test results in one suite's output.
#[derive(Debug, Default)]
pub struct TestResults {
    /// The verdict of each `test NAME ... VERDICT` line.
    verdicts: BTreeMap<String, Outcome>,
    /// The tests whose captured output has a `SKIPPED` line.
    skipped: BTreeSet<String>,
    /// The test whose captured output is being printed (`---- NAME stdout ----`).
    section: Option<String>,
    /// A `test NAME ... ` whose verdict was pushed to a later line by output of its own.
    pending: Option<String>,
}

impl TestResults {
    /// Takes one line of a suite's output; anything but libtest's own lines is ignored.
    pub fn parse_line(&mut self, line: &str) {
        let line = util::strip_ansi(line);
        let line = line.trim_end();
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            self.section = Some(name.to_owned());
            return;
        }
        if matches!(line, "successes:" | "failures:") || line.starts_with("test result: ") {
            self.section = None;
        }
        if let Some(name) = &self.section {
            if line.starts_with("SKIPPED ") {
                self.skipped.insert(name.clone());
            }
            return;
        }
        if let Some(rest) = line.strip_prefix("test ") {
            self.pending = None;
            if let Some(name) = rest.strip_suffix(" ...") {
                if !name.contains(' ') {
                    self.pending = Some(name.to_owned());
                }
            } else if let Some((name, verdict)) = rest.split_once(" ... ")
                && !name.contains(' ')
            {
                match verdict_of(verdict) {
                    Some(outcome) => {
                        self.verdicts.insert(name.to_owned(), outcome);
                    }
                    // A child process wrote after libtest's `... `: the verdict follows on
                    // a line of its own.
                    None => self.pending = Some(name.to_owned()),
                }
            }
            return;
        }
        if let Some(outcome) = verdict_of(line.trim())
            && let Some(name) = self.pending.take()
        {
            self.verdicts.insert(name, outcome);
        }
    }

    /// The test's result, or `None` when the suite did not run it.
    pub fn outcome(&self, name: &str) -> Option<Outcome> {
        match self.verdicts.get(name)? {
            Outcome::Pass if self.skipped.contains(name) => Some(Outcome::Skipped),
            outcome => Some(*outcome),
        }
    }

    /// The names of the tests the suite ran.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.verdicts.keys().map(String::as_str)
    }
}

/// `ok`, `FAILED`, `ignored` (or `ignored, <reason>`).
fn verdict_of(verdict: &str) -> Option<Outcome> {
    match verdict.split([' ', ',']).next()? {
        "ok" => Some(Outcome::Pass),
        "FAILED" => Some(Outcome::Fail),
        "ignored" => Some(Outcome::Skipped),
        _ => None,
    }
}

/// One suite of the run: a column of the tables.
#[derive(Debug)]
pub struct Column {
    /// The heading: kernel and tier, e.g. `6.12 bpf-lsm (daemon)`.
    pub label: String,
    /// What the suite is, for the legend.
    pub about: String,
    /// What the suite's output said of each test.
    pub results: TestResults,
}

impl Column {
    /// A column with no results yet.
    pub fn new(label: impl Into<String>, about: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            about: about.into(),
            results: TestResults::default(),
        }
    }

    /// The test's cell: `pass`, `FAIL`, `skipped`, or `—` where the suite did not run it.
    fn cell(&self, name: &str) -> &'static str {
        match self.results.outcome(name) {
            Some(Outcome::Pass) => "pass",
            Some(Outcome::Fail) => "FAIL",
            Some(Outcome::Skipped) => "skipped",
            None => "—",
        }
    }
}

/// What the header says about the run.
#[derive(Debug)]
pub struct RunInfo {
    /// When, in UTC.
    pub date: String,
    /// `git rev-parse --short HEAD`.
    pub commit: String,
    /// Whether tracked files had changes (the run tested more than the commit).
    pub dirty: bool,
    /// The VM kernels, with their release where known.
    pub kernels: Vec<String>,
    /// This machine's kernel release.
    pub host_kernel: String,
}

/// The counts behind the totals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Tests in the catalogue.
    pub tests: usize,
    /// Tests that failed in at least one suite.
    pub failed: Vec<String>,
    /// Tests no suite ran (never counted as passed).
    pub not_run: Vec<String>,
    /// Tests that passed in every suite that ran them, or skipped in some.
    pub passed: usize,
    /// Tests that skipped themselves in every suite that ran them.
    pub skipped: usize,
}

impl Totals {
    /// The totals of the catalogue over the run's suites.
    fn of(catalogue: &Catalogue, columns: &[&Column]) -> Self {
        let mut totals = Self {
            tests: catalogue.escapes.len(),
            ..Self::default()
        };
        for e in &catalogue.escapes {
            let outcomes: Vec<Outcome> = columns
                .iter()
                .filter_map(|c| c.results.outcome(&e.name))
                .collect();
            if outcomes.is_empty() {
                totals.not_run.push(e.name.clone());
            } else if outcomes.contains(&Outcome::Fail) {
                totals.failed.push(e.name.clone());
            } else if outcomes.contains(&Outcome::Pass) {
                totals.passed += 1;
            } else {
                totals.skipped += 1;
            }
        }
        totals
    }

    /// One line for the run's output.
    pub fn summary(&self) -> String {
        format!(
            "{} escape tests: {} passed, {} failed in a suite, {} skipped wherever they ran, \
             {} not run",
            self.tests,
            self.passed,
            self.failed.len(),
            self.skipped,
            self.not_run.len()
        )
    }
}

/// The tests a suite ran in an escape module that the catalogue lacks (a test the source
/// scan missed): errors of the generator.
fn unknown_results(catalogue: &Catalogue, columns: &[&Column]) -> BTreeSet<String> {
    columns
        .iter()
        .flat_map(|c| c.results.names())
        .filter(|name| control_of(name).is_some() && !catalogue.contains(name))
        .map(str::to_owned)
        .collect()
}

/// The document.
pub fn render(catalogue: &Catalogue, columns: &[&Column], run: &RunInfo) -> String {
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# The escape suite\n\n\
         <!-- Written by `cargo xtask test` (xtask/src/escapes.rs) from the test sources and the \
         run's output; do not edit. -->\n\n\
         Every integration test that attacks the sandbox, the attack it reproduces (the first \
         sentence of its doc comment, with the peer's public issue where the attack comes from \
         one), and its result on each kernel and tier in the full `cargo xtask test` run that \
         wrote this file. Most tests pair the attack with an allowed twin in the same sandbox, \
         so a control that denied everything would fail them too. The sources are in \
         [`nemoclaw-userspace/tests/`](../{TESTS_DIR}/).\n\n\
         - Run: {} at commit `{}`{}\n\
         - Kernels: {}; host: `{}`\n",
        run.date,
        run.commit,
        if run.dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        run.kernels.join(", "),
        run.host_kernel
    );
    doc.push_str("## Columns\n\n| column | suite |\n|---|---|\n");
    for c in columns {
        let _ = writeln!(doc, "| {} | {} |", c.label, table_cell(&c.about));
    }
    doc.push_str(
        "\nA cell is `pass`, `FAIL`, `skipped` (the test skipped itself: what it tests is \
         missing there, such as BPF LSM on a kernel where it checks the refusal) or `—` (the \
         suite does not run it).\n",
    );
    for control in Control::ALL {
        let tests: Vec<&Escape> = catalogue
            .escapes
            .iter()
            .filter(|e| e.control == control)
            .collect();
        if tests.is_empty() {
            continue;
        }
        let _ = write!(doc, "\n## {}\n\n| test | attack |", control.title());
        for c in columns {
            let _ = write!(doc, " {} |", c.label);
        }
        doc.push_str("\n|---|---|");
        for _ in columns {
            doc.push_str("---|");
        }
        doc.push('\n');
        for e in tests {
            let _ = write!(
                doc,
                "| [`{}`](../{TESTS_DIR}/{}#L{}) | {} |",
                e.name,
                e.file,
                e.line,
                attack_cell(e)
            );
            for c in columns {
                let _ = write!(doc, " {} |", c.cell(&e.name));
            }
            doc.push('\n');
        }
    }
    render_totals(&mut doc, catalogue, columns);
    doc
}

/// The totals section, and the generator's errors if any.
fn render_totals(doc: &mut String, catalogue: &Catalogue, columns: &[&Column]) {
    let totals = Totals::of(catalogue, columns);
    let _ = writeln!(
        doc,
        "\n## Totals\n\n{} escape tests: {} passed (wherever they ran, skipped in some suites \
         at most), {} failed in at least one suite, {} skipped themselves wherever they ran, \
         {} ran in no suite.\n\n\
         | suite | pass | FAIL | skipped | not run |\n|---|---|---|---|---|",
        totals.tests,
        totals.passed,
        totals.failed.len(),
        totals.skipped,
        totals.not_run.len()
    );
    for c in columns {
        let mut counts = [0usize; 4];
        for e in &catalogue.escapes {
            let slot = match c.results.outcome(&e.name) {
                Some(Outcome::Pass) => 0,
                Some(Outcome::Fail) => 1,
                Some(Outcome::Skipped) => 2,
                None => 3,
            };
            counts[slot] += 1;
        }
        let [pass, fail, skipped, not_run] = counts;
        let _ = writeln!(
            doc,
            "| {} | {pass} | {fail} | {skipped} | {not_run} |",
            c.label
        );
    }
    let list = |doc: &mut String, title: &str, names: &[String]| {
        if !names.is_empty() {
            let _ = writeln!(doc, "\n{title}:\n");
            for name in names {
                let _ = writeln!(doc, "- `{name}`");
            }
        }
    };
    list(doc, "Failed in at least one suite", &totals.failed);
    list(
        doc,
        "Ran in no suite (not counted as passed)",
        &totals.not_run,
    );
    let undocumented: Vec<String> = catalogue
        .undocumented()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let unknown: Vec<String> = unknown_results(catalogue, columns).into_iter().collect();
    if !undocumented.is_empty() || !unknown.is_empty() {
        doc.push_str("\n## Errors of the generator\n");
        list(doc, "Tests without a doc comment", &undocumented);
        list(doc, "Results of tests the catalogue lacks", &unknown);
    }
}

/// Writes `docs/escapes.md` from the catalogue and the run's suites; prints the generator's
/// errors and returns the one-line totals.
pub fn publish(columns: &[&Column], kernels: Vec<String>) -> Result<String> {
    let root = util::workspace_root();
    let catalogue = Catalogue::load(&root.join(TESTS_DIR))?;
    for e in catalogue.undocumented() {
        eprintln!(
            "xtask test: {DOC}: {} ({}/{}:{}) has no doc comment: its attack is unknown",
            e.name, TESTS_DIR, e.file, e.line
        );
    }
    for name in unknown_results(&catalogue, columns) {
        eprintln!("xtask test: {DOC}: {name} ran but is not in the catalogue");
    }
    let (commit, dirty) = commit(&root);
    let run = RunInfo {
        date: util::utc_timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        commit,
        dirty,
        kernels,
        host_kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |r| r.trim().to_owned()),
    };
    let path: PathBuf = root.join(DOC);
    std::fs::write(&path, render(&catalogue, columns, &run))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Totals::of(&catalogue, columns).summary())
}

/// The short commit, and whether tracked files other than the document have changes.
fn commit(root: &Path) -> (String, bool) {
    let git = |args: &[&str]| {
        util::output(Command::new("git").arg("-C").arg(root).args(args)).unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).trim().to_owned();
    // The document itself, written by the last run, does not count.
    let dirty = !git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        &format!(":!{DOC}"),
    ])
    .trim()
    .is_empty();
    (
        if head.is_empty() {
            "unknown".to_owned()
        } else {
            head
        },
        dirty,
    )
}

#[cfg(test)]
mod tests;
