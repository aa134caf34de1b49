//! Path patterns: which glob shapes the kernel side can match exactly, and a general glob
//! matcher that defines what a pattern means (used by `explain` and the property tests).
//!
//! The kernel has three lookups for a path (DESIGN.md, "Files: paths and inodes"): an
//! exact hash, an LPM trie over `/dir/` prefixes, and an LPM trie over the reversed path
//! for suffixes. So the supported shapes are:
//!
//! | pattern          | shape                    | matches                                   |
//! |------------------|--------------------------|-------------------------------------------|
//! | `/a/b`           | [`Shape::Exact`]         | exactly `/a/b`                            |
//! | `/a/b/**`        | [`Shape::Tree`]          | `/a/b` and everything beneath it          |
//! | `/a/b*/**`       | [`Shape::Prefix`]        | every `/a/b…` entry and everything beneath|
//! | `/**`            | [`Shape::Tree`] of `/`   | every path                                |
//! | `**/a/b`         | [`Shape::Suffix`]        | a path ending in the components `a/b`     |
//! | `**/*.ext`       | [`Shape::Suffix`]        | a path whose last component ends in `.ext`|
//!
//! `*` matches any run of characters within one component (including none, including a
//! leading dot); `**` as a whole component matches zero or more components. `/a/b*/**`
//! matches exactly the paths that start with the bytes `/a/b` (a `*` ends the component,
//! so whatever follows `/a/b` in the path is the rest of that component and, after a `/`,
//! what lies beneath it): the prefix trie holds it as a byte prefix. Any other
//! placement of `*` or `**` (`/a/*/b`, `/a/**/b`, `/a/*`, `/a/b*`, `**/a/**`) cannot be matched
//! exactly by those lookups and is rejected; `?`, `[` and `{` are not glob syntax we
//! support and are rejected too, rather than being taken literally by surprise.

use std::fmt;

/// What the supported shapes are, for error messages.
pub const SUPPORTED_SHAPES: &str = "supported shapes: /exact/path, /dir/** (the directory and \
     everything beneath it), /dir/name*/** (every entry of /dir whose name starts with `name`, and \
     everything beneath them), /** (everything), **/name or **/dir/name (that name at any depth), \
     **/*.ext (last component ending in .ext)";

/// Where a pattern is rooted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Base {
    /// An absolute path, or a `**/` suffix pattern (rooted nowhere).
    Root,
    /// `$HOME`, `${HOME}` or `~`: the sandbox user's home directory, expanded at compile time.
    Home,
}

/// A validated path pattern, before `$HOME` expansion.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathPattern {
    pub base: Base,
    /// For [`Base::Root`]: the whole pattern. For [`Base::Home`]: what follows the home
    /// directory, empty or starting with `/`.
    pub rest: String,
}

/// How the kernel matches a pattern, after expansion.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// One path.
    Exact(String),
    /// A directory (without trailing `/`; empty for the root) and everything beneath it.
    Tree(String),
    /// A byte suffix of the path: `/a/b` for `**/a/b`, `.ext` for `**/*.ext`.
    Suffix(String),
    /// A byte prefix of the path: `/a/b` for `/a/b*/**`, `/a/` for `/a/*/**`.
    Prefix(String),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(path) => write!(f, "{path}"),
            Self::Tree(dir) => write!(f, "{dir}/**"),
            Self::Suffix(suffix) if suffix.starts_with('/') => write!(f, "**{suffix}"),
            Self::Suffix(suffix) => write!(f, "**/*{suffix}"),
            Self::Prefix(prefix) => write!(f, "{prefix}*/**"),
        }
    }
}

/// Why a pattern was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty path")]
    Empty,
    #[error("relative path {0:?}: paths must be absolute, or start with $HOME, ~ or **/")]
    Relative(String),
    #[error("{0:?}: `.` and `..` components are not allowed")]
    DotComponent(String),
    #[error("{0:?}: empty path component (`//`)")]
    EmptyComponent(String),
    #[error("{pattern:?}: unsupported variable {var}; only $HOME, ${{HOME}} and ~ are expanded")]
    Variable { pattern: String, var: String },
    #[error("{0:?}: `~user` is not supported; use ~ or $HOME for the sandbox user")]
    TildeUser(String),
    #[error("{0:?}: contains a NUL byte")]
    Nul(String),
    #[error("{pattern:?}: `{ch}` is not supported glob syntax; {SUPPORTED_SHAPES}")]
    Syntax { pattern: String, ch: char },
    #[error("{0:?}: the kernel cannot match this glob exactly; {SUPPORTED_SHAPES}")]
    Shape(String),
}

impl PathPattern {
    /// Parses and validates a filesystem pattern as written in a policy.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.contains('\0') {
            return Err(PatternError::Nul(text.to_owned()));
        }
        let (base, rest) = if let Some(rest) = strip_home(text)? {
            (Base::Home, rest)
        } else if text.starts_with('/') || text == "**" || text.starts_with("**/") {
            (Base::Root, text)
        } else {
            return Err(PatternError::Relative(text.to_owned()));
        };
        if let Some(at) = rest.find('$') {
            let var: String = rest[at..]
                .chars()
                .take_while(|c| {
                    *c == '$' || *c == '{' || *c == '}' || c.is_alphanumeric() || *c == '_'
                })
                .collect();
            return Err(PatternError::Variable {
                pattern: text.to_owned(),
                var,
            });
        }
        if let Some(ch) = rest
            .chars()
            .find(|c| matches!(c, '?' | '[' | ']' | '{' | '}'))
        {
            return Err(PatternError::Syntax {
                pattern: text.to_owned(),
                ch,
            });
        }
        // A trailing slash names the same directory.
        let rest = if rest.len() > 1 {
            rest.strip_suffix('/').unwrap_or(rest)
        } else {
            rest
        };
        let pattern = Self {
            base,
            rest: rest.to_owned(),
        };
        // Check components and shape now, with a stand-in home, so errors carry a location.
        let probe = pattern.expand("/home");
        check_components(text, &probe)?;
        shape_of(text, &probe)?;
        Ok(pattern)
    }

    /// The pattern with `$HOME` replaced by `home`.
    #[must_use]
    pub fn expand(&self, home: &str) -> String {
        match self.base {
            Base::Root => self.rest.clone(),
            Base::Home => {
                let joined = format!("{}{}", home.trim_end_matches('/'), self.rest);
                if joined.is_empty() {
                    "/".to_owned()
                } else {
                    joined
                }
            }
        }
    }

    /// The kernel shape of the expanded pattern. `home` must be an absolute path without
    /// glob characters (checked by the compiler).
    pub fn shape(&self, home: &str) -> Result<Shape, PatternError> {
        let expanded = self.expand(home);
        check_components(&expanded, &expanded)?;
        shape_of(&expanded, &expanded)
    }
}

/// `Some(rest)` when `text` starts with a home reference.
fn strip_home(text: &str) -> Result<Option<&str>, PatternError> {
    for prefix in ["${HOME}", "$HOME", "~"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return Ok(Some(rest));
            }
            if prefix == "~" {
                return Err(PatternError::TildeUser(text.to_owned()));
            }
        }
    }
    Ok(None)
}

fn check_components(original: &str, expanded: &str) -> Result<(), PatternError> {
    let body = expanded.strip_prefix('/').unwrap_or(expanded);
    if body.is_empty() {
        return Ok(());
    }
    for component in body.split('/') {
        match component {
            "." | ".." => return Err(PatternError::DotComponent(original.to_owned())),
            "" => return Err(PatternError::EmptyComponent(original.to_owned())),
            _ => {}
        }
    }
    Ok(())
}

fn shape_of(original: &str, expanded: &str) -> Result<Shape, PatternError> {
    let shape_error = || PatternError::Shape(original.to_owned());
    if expanded == "**" || expanded == "/**" {
        return Ok(Shape::Tree(String::new()));
    }
    if let Some(suffix) = expanded.strip_prefix("**/") {
        if let Some(ext) = suffix.strip_prefix('*') {
            // `**/*.ext`: one component, `*` only at its start.
            if ext.is_empty() || ext.contains('*') || ext.contains('/') {
                return Err(shape_error());
            }
            return Ok(Shape::Suffix(ext.to_owned()));
        }
        if suffix.contains('*') {
            return Err(shape_error());
        }
        return Ok(Shape::Suffix(format!("/{suffix}")));
    }
    if let Some(dir) = expanded.strip_suffix("/**") {
        if let Some(prefix) = dir.strip_suffix('*') {
            // `/a/b*/**`: one `*`, ending the last component before `/**`.
            if prefix.contains('*') || !prefix.starts_with('/') {
                return Err(shape_error());
            }
            return Ok(Shape::Prefix(prefix.to_owned()));
        }
        if dir.contains('*') {
            return Err(shape_error());
        }
        return Ok(Shape::Tree(dir.to_owned()));
    }
    if expanded.contains('*') {
        return Err(shape_error());
    }
    Ok(Shape::Exact(expanded.to_owned()))
}

impl Shape {
    /// Whether the shape matches `path` (absolute, normalised). The kernel-side semantics.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Tree(dir) => {
                path == dir
                    || (path.starts_with(dir.as_str()) && path[dir.len()..].starts_with('/'))
            }
            Self::Suffix(suffix) => path.ends_with(suffix.as_str()),
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

/// General glob matching on components: `**` matches zero or more components, `*` any run
/// of characters within one. This is the definition a pattern means; `Shape::matches` must
/// agree with it for every pattern that `PathPattern::parse` accepts (property-tested).
#[must_use]
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    match_components(&components(pattern), &components(path))
}

fn components(text: &str) -> Vec<&str> {
    text.split('/').filter(|c| !c.is_empty()).collect()
}

fn match_components(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_components(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((component, path_rest)) => {
                match_component(first.as_bytes(), component.as_bytes())
                    && match_components(rest, path_rest)
            }
            None => false,
        },
    }
}

fn match_component(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_component(rest, &text[skip..])),
        Some((ch, rest)) => text
            .split_first()
            .is_some_and(|(t, text_rest)| t == ch && match_component(rest, text_rest)),
    }
}

/// Normalises a path lexically for lookups: absolute, no `.`, no `//`, no trailing `/`.
/// `..` pops a component, as the kernel's resolved path would (symlinks aside).
#[must_use]
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Result<Shape, PatternError> {
        PathPattern::parse(text)?.shape("/home/agent")
    }

    #[test]
    fn seed_patterns_have_exact_shapes() {
        assert_eq!(shape("/workspace/**"), Ok(Shape::Tree("/workspace".into())));
        assert_eq!(shape("/etc/**"), Ok(Shape::Tree("/etc".into())));
        assert_eq!(
            shape("$HOME/.ssh/**"),
            Ok(Shape::Tree("/home/agent/.ssh".into()))
        );
        assert_eq!(
            shape("$HOME/.env"),
            Ok(Shape::Exact("/home/agent/.env".into()))
        );
        assert_eq!(shape("~/.env"), Ok(Shape::Exact("/home/agent/.env".into())));
        assert_eq!(shape("${HOME}"), Ok(Shape::Exact("/home/agent".into())));
        assert_eq!(
            shape("**/.git/config"),
            Ok(Shape::Suffix("/.git/config".into()))
        );
        assert_eq!(shape("**/*.pem"), Ok(Shape::Suffix(".pem".into())));
        assert_eq!(shape("/**"), Ok(Shape::Tree(String::new())));
        assert_eq!(shape("/tmp/"), Ok(Shape::Exact("/tmp".into())));
        assert_eq!(
            shape("/tmp/openclaw-*/**"),
            Ok(Shape::Prefix("/tmp/openclaw-".into()))
        );
        assert_eq!(shape("/tmp/*/**"), Ok(Shape::Prefix("/tmp/".into())));
        assert_eq!(
            shape("$HOME/.cache-*/**"),
            Ok(Shape::Prefix("/home/agent/.cache-".into()))
        );
        assert_eq!(
            shape("/tmp/openclaw-*/**")
                .map(|s| s.to_string())
                .unwrap_or_default(),
            "/tmp/openclaw-*/**"
        );
    }

    #[test]
    fn rejects_inexact_and_invalid_patterns() {
        for bad in [
            "/a/*/b/**",
            "/a/**/b",
            "/a/*",
            "**/a/**",
            "**/*",
            "**/a/*.c",
            "/a/b*",
            "/a/*b/**",
            "/a/b*c*/**",
            "/a*/b*/**",
            "**/a*/**",
            "/a/b*/c/**",
        ] {
            assert!(matches!(shape(bad), Err(PatternError::Shape(_))), "{bad}");
        }
        assert!(matches!(shape("a/b"), Err(PatternError::Relative(_))));
        assert!(matches!(
            shape("/a/../b"),
            Err(PatternError::DotComponent(_))
        ));
        assert!(matches!(
            shape("/a//b"),
            Err(PatternError::EmptyComponent(_))
        ));
        assert!(matches!(shape("$USER/x"), Err(PatternError::Relative(_))));
        assert!(matches!(
            shape("/x/$USER"),
            Err(PatternError::Variable { .. })
        ));
        assert!(matches!(shape("~root/x"), Err(PatternError::TildeUser(_))));
        assert!(matches!(shape("/a/?"), Err(PatternError::Syntax { .. })));
        assert!(matches!(shape(""), Err(PatternError::Empty)));
        let message = shape("/a/**/b")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("/a/**/b") && message.contains("supported shapes"),
            "{message}"
        );
    }

    #[test]
    fn shapes_match_like_globs() {
        let cases = [
            ("/workspace/**", "/workspace", true),
            ("/workspace/**", "/workspace/a/b", true),
            ("/workspace/**", "/workspace2", false),
            ("**/.git/config", "/workspace/repo/.git/config", true),
            ("**/.git/config", "/.git/config", true),
            ("**/.git/config", "/x.git/config", false),
            ("**/*.pem", "/etc/ssl/a.pem", true),
            ("**/*.pem", "/etc/ssl/a.pem/b", false),
            ("/**", "/", true),
            ("/etc/passwd", "/etc/passwd", true),
            ("/tmp/openclaw-*/**", "/tmp/openclaw-0", true),
            ("/tmp/openclaw-*/**", "/tmp/openclaw-", true),
            (
                "/tmp/openclaw-*/**",
                "/tmp/openclaw-state-locks-0/a/b",
                true,
            ),
            ("/tmp/openclaw-*/**", "/tmp/openclaw", false),
            ("/tmp/openclaw-*/**", "/tmp/openclaw/x", false),
            ("/tmp/openclaw-*/**", "/tmp/x/openclaw-0", false),
            ("/tmp/*/**", "/tmp", false),
            ("/tmp/*/**", "/tmp/a", true),
            ("/tmp/*/**", "/tmp/a/b", true),
        ];
        for (pattern, path, expected) in cases {
            let Ok(parsed) = shape(pattern) else {
                panic!("{pattern}")
            };
            assert_eq!(parsed.matches(path), expected, "{pattern} vs {path}");
            assert_eq!(
                glob_matches(pattern, path),
                expected,
                "glob {pattern} vs {path}"
            );
        }
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/.."), "/");
    }
}
