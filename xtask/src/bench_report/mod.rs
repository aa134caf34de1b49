//! `BENCHMARKS.md` and `docs/bench/*.svg` from the bench's results file
//! (`target/nemoclaw-bench/results.jsonl`): [`render`] is pure (rows and the run's facts
//! in, text out, byte-identical for the same input); [`write`] puts it in the tree.

mod markdown;
mod plot;
mod rows;
mod targets;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

pub use rows::Row;

use crate::util;

/// What the rows do not say about the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFacts {
    /// When the results were written (UTC, `YYYY-MM-DD HH:MM UTC`).
    pub date: String,
    /// The commit measured: the rows' `commit` where they record it, else `git rev-parse
    /// HEAD` when the report is written (the same commit when the bench writes it).
    pub commit: String,
    /// The results file, as the reader should name it.
    pub source: String,
}

/// The report: `BENCHMARKS.md`'s text and the plots (path from the repository root, SVG).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub markdown: String,
    pub plots: Vec<(String, String)>,
}

/// The whole report from the rows; no I/O.
pub fn render(rows: &[Row], facts: &RunFacts) -> Result<Report> {
    let mut plots = Vec::new();
    let mut plotted = BTreeSet::new();
    for (scenario, _, _) in rows::SCENARIOS {
        if plot::plotted(rows, scenario) {
            plots.push((
                format!("docs/bench/{scenario}.svg"),
                plot::scenario_plot(rows, scenario)?,
            ));
            plotted.insert((*scenario).to_string());
        }
    }
    if !plotted.is_empty() {
        plots.push(("docs/bench/overview.svg".into(), plot::overview_plot(rows)?));
    }
    let markdown = markdown::render(rows, facts, &plotted);
    Ok(Report { markdown, plots })
}

/// The results file's rows, its date (modification time) and the commit: reads and
/// renders, then writes `BENCHMARKS.md` and the plots under `root`. Returns the paths.
pub fn write_from(results: &Path, root: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    let (rows, skipped) = rows::parse(&text);
    if rows.is_empty() {
        bail!(
            "{}: no result rows of the report's scenarios ({skipped} lines skipped)",
            results.display()
        );
    }
    let modified = std::fs::metadata(results)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the date of {}", results.display()))?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let source = results
        .strip_prefix(root)
        .unwrap_or(results)
        .display()
        .to_string();
    // The commit the results record (a row's `commit`), else the tree's HEAD now.
    let recorded = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["commit"].as_str().map(str::to_string));
    let facts = RunFacts {
        date: util::utc_timestamp(secs),
        commit: recorded.unwrap_or_else(|| head_commit(root)),
        source,
    };
    let report = render(&rows, &facts)?;
    let mut written = Vec::new();
    let md = root.join("BENCHMARKS.md");
    std::fs::write(&md, &report.markdown).with_context(|| format!("writing {}", md.display()))?;
    written.push(md);
    for (rel, svg) in &report.plots {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    // Plots of scenarios this run did not measure would be stale: removed.
    let dir = root.join("docs/bench");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "svg") && !written.contains(&path) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            eprintln!("xtask bench: removed the stale {}", path.display());
        }
    }
    Ok(written)
}

/// `write_from` on the workspace, with what it wrote on stderr.
pub fn main(results: &Path) -> Result<()> {
    let written = write_from(results, &util::workspace_root())?;
    for path in written {
        eprintln!("xtask bench: wrote {}", path.display());
    }
    Ok(())
}

/// `git rev-parse HEAD` in `root` (`unknown` outside a repository).
pub fn head_commit(root: &Path) -> String {
    util::output(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "HEAD"]),
    )
    .map_or_else(|_| "unknown".to_string(), |out| out.trim().to_string())
}
