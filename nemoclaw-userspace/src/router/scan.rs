//! One sandbox's scanner: the detectors its `inference:` rules define (built-ins plus its
//! keyword lists and patterns) and the fingerprints of its proprietary source trees, kept
//! current as the files change.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use nemoclaw_detect::code::CodeIndex;
use nemoclaw_detect::{Detector, DetectorConfig, Finding};

use super::error::RouterError;
use super::request::TextField;
use crate::policy::inference::InferenceRules;
use crate::policy::pattern::glob_matches;

/// Files larger than this in a proprietary tree are not fingerprinted (generated or data
/// files, not code anyone quotes).
const MAX_CODE_FILE: u64 = 1 << 20;
/// A tree with more files than this is fingerprinted up to the limit (and says so).
const MAX_CODE_FILES: usize = 50_000;

/// What one file looked like when it was fingerprinted.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct CodeTrees {
    patterns: Vec<String>,
    index: CodeIndex,
    seen: BTreeMap<PathBuf, Stamp>,
}

/// Detectors and code fingerprints for one policy.
pub struct Scanner {
    detector: Detector,
    code: Option<RwLock<CodeTrees>>,
}

impl Scanner {
    /// Builds the detectors of `rules` and fingerprints its code trees.
    pub fn new(rules: &InferenceRules) -> Result<Arc<Scanner>, String> {
        let detector = Detector::new(&DetectorConfig {
            keywords: rules.keywords.clone(),
            patterns: rules.patterns.clone(),
        })
        .map_err(|e| e.to_string())?;
        let code = (!rules.code.is_empty()).then(|| {
            let mut trees = CodeTrees {
                patterns: rules.code.clone(),
                index: CodeIndex::new(),
                seen: BTreeMap::new(),
            };
            trees.refresh();
            RwLock::new(trees)
        });
        Ok(Arc::new(Scanner { detector, code }))
    }

    /// Every finding in every text field, with the field's pointer.
    pub fn scan(&self, texts: &[TextField]) -> Result<Vec<(String, Finding)>, RouterError> {
        let code = match &self.code {
            Some(lock) => Some(
                lock.read()
                    .map_err(|_| RouterError::Internal("code fingerprints poisoned".into()))?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        for field in texts {
            for finding in self.detector.scan(&field.text) {
                out.push((field.pointer.clone(), finding));
            }
            if let Some(code) = &code {
                for quote in code.index.scan(&field.text) {
                    out.push((field.pointer.clone(), quote.finding));
                }
            }
        }
        Ok(out)
    }

    /// The detectors' findings in one text (no code quotes): what the reply guard looks
    /// for.
    #[must_use]
    pub fn detect(&self, text: &str) -> Vec<Finding> {
        self.detector.scan(text)
    }

    /// Re-fingerprints files that changed, appeared or went since the last look.
    pub fn refresh_code(&self) {
        if let Some(lock) = &self.code
            && let Ok(mut trees) = lock.write()
        {
            trees.refresh();
        }
    }

    /// How many files are fingerprinted.
    #[must_use]
    pub fn code_files(&self) -> usize {
        self.code
            .as_ref()
            .and_then(|l| l.read().ok().map(|t| t.seen.len()))
            .unwrap_or(0)
    }
}

impl CodeTrees {
    fn refresh(&mut self) {
        let mut now = BTreeMap::new();
        for pattern in &self.patterns {
            let root = walk_root(pattern);
            walk(&root, &mut |path, stamp| {
                let text = path.to_string_lossy();
                if now.len() < MAX_CODE_FILES && glob_matches(pattern, &text) {
                    now.insert(path.to_owned(), stamp);
                }
            });
        }
        for gone in self.seen.keys().filter(|p| !now.contains_key(*p)) {
            self.index.remove(&gone.to_string_lossy());
        }
        for (path, stamp) in &now {
            if self.seen.get(path) != Some(stamp) {
                match fs::read_to_string(path) {
                    Ok(source) => self.index.insert(&path.to_string_lossy(), &source),
                    // Not text (or unreadable by the router): nothing to fingerprint.
                    Err(_) => self.index.remove(&path.to_string_lossy()),
                }
            }
        }
        self.seen = now;
    }
}

/// The directory to walk for a pattern: its components before the first wildcard.
fn walk_root(pattern: &str) -> PathBuf {
    let mut root = PathBuf::from("/");
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        if component.contains('*') {
            break;
        }
        root.push(component);
    }
    root
}

/// Calls `each` for every regular file under `dir` (or `dir` itself if it is one), not
/// following symbolic links.
fn walk(dir: &Path, each: &mut dyn FnMut(&Path, Stamp)) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if meta.is_file() {
        if meta.len() <= MAX_CODE_FILE {
            each(
                dir,
                Stamp {
                    modified: meta.modified().ok(),
                    len: meta.len(),
                },
            );
        }
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        walk(&path, each);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::inference::Action;

    fn rules(code: Vec<String>) -> InferenceRules {
        let mut rules = InferenceRules::for_tests(Action::Block, &[]);
        rules.keywords = [("customers".to_owned(), vec!["Globex".to_owned()])].into();
        rules.code = code;
        rules
    }

    const SOURCE: &str = "fn reconcile_ledger(entries: &[Entry], limit: usize) -> Result<Totals, Error> {\n    let mut totals = Totals::default();\n    for entry in entries.iter().take(limit) {\n        if entry.amount < 0 {\n            totals.debits += entry.amount.abs();\n        } else {\n            totals.credits += entry.amount;\n        }\n        totals.count += 1;\n    }\n    if totals.count == 0 {\n        return Err(Error::Empty);\n    }\n    Ok(totals)\n}\n";

    #[test]
    fn keywords_and_code_quotes_are_found_and_code_follows_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("core");
        fs::create_dir_all(core.join("src")).unwrap();
        fs::write(core.join("src/ledger.rs"), "// nothing yet\n").unwrap();
        let pattern = format!("{}/**", core.display());
        let scanner = Scanner::new(&rules(vec![pattern])).unwrap();
        assert_eq!(scanner.code_files(), 1);
        let quote: String = SOURCE.lines().take(10).fold(String::new(), |mut q, l| {
            q.push_str("  ");
            q.push_str(l);
            q.push('\n');
            q
        });
        let texts = |t: &str| {
            vec![TextField {
                pointer: "/input".into(),
                text: t.into(),
            }]
        };
        assert!(scanner.scan(&texts(&quote)).unwrap().is_empty());
        fs::write(core.join("src/ledger.rs"), SOURCE).unwrap();
        scanner.refresh_code();
        let found = scanner.scan(&texts(&quote)).unwrap();
        assert!(
            found
                .iter()
                .any(|(_, f)| f.category == nemoclaw_detect::Category::Code),
            "{found:?}"
        );
        let found = scanner.scan(&texts("a note about Globex")).unwrap();
        assert_eq!(found[0].1.category.name(), "customers");
        fs::remove_file(core.join("src/ledger.rs")).unwrap();
        scanner.refresh_code();
        assert_eq!(scanner.code_files(), 0);
        assert!(scanner.scan(&texts(&quote)).unwrap().is_empty());
    }

    #[test]
    fn walk_roots_stop_at_the_first_wildcard() {
        assert_eq!(
            walk_root("/workspace/core/**"),
            PathBuf::from("/workspace/core")
        );
        assert_eq!(walk_root("**/*.rs"), PathBuf::from("/"));
    }
}
