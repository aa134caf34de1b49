//! A YAML document as a tree whose every node knows its line and column.
//!
//! `serde_yaml` 0.9 loses locations once a value is built, and `deny_unknown_fields` errors
//! carry no field path; policy errors must name both. So the policy is read through
//! `yaml-rust2`'s event parser into this small tree, and `parse.rs` walks it by hand.
//! Aliases are rejected (a policy has no use for them, and they allow exponential
//! documents); so is more than one document.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the source: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Mark {
    fn from(marker: Marker) -> Self {
        Self {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// A YAML node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub mark: Mark,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// The text, and whether it was quoted (a quoted `"1"` is a string, never a number).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A plain (unquoted) scalar that YAML reads as null: empty, `~` or `null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, quoted: false }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// What kind of node this is, for "expected X, got Y" messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null".to_owned(),
            NodeKind::Scalar { text, .. } => format!("{text:?}"),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// A YAML syntax error, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// Deepest nesting accepted; a policy needs about five levels. Guards the recursion.
const MAX_DEPTH: usize = 64;

/// Parses one YAML document. `Ok(None)` for an empty stream.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(source);
    let mut reader = Reader {
        parser: &mut parser,
    };
    reader.document()
}

struct Reader<'p, 'a> {
    parser: &'p mut Parser<std::str::Chars<'a>>,
}

impl Reader<'_, '_> {
    fn next(&mut self) -> Result<(Event, Mark), SyntaxError> {
        match self.parser.next_token() {
            Ok((event, marker)) => Ok((event, marker.into())),
            Err(error) => Err(SyntaxError {
                mark: (*error.marker()).into(),
                message: error.info().to_owned(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, SyntaxError> {
        let mut root = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart => {
                    if root.is_some() {
                        return Err(SyntaxError {
                            mark,
                            message: "a policy file holds one YAML document, found another"
                                .to_owned(),
                        });
                    }
                    let (event, mark) = self.next()?;
                    root = Some(self.node(event, mark, 0)?);
                }
                other => {
                    // Streams without an explicit document start still emit DocumentStart;
                    // anything else here is a parser surprise, reported rather than trusted.
                    return Err(SyntaxError {
                        mark,
                        message: format!("unexpected {other:?}"),
                    });
                }
            }
        }
    }

    fn node(&mut self, event: Event, mark: Mark, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                mark,
                message: "nesting too deep".to_owned(),
            });
        }
        match event {
            Event::Scalar(text, style, _anchor, _tag) => Ok(Node {
                mark,
                kind: NodeKind::Scalar {
                    text,
                    quoted: style != TScalarStyle::Plain,
                },
            }),
            Event::SequenceStart(_, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, item_mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        return Ok(Node {
                            mark,
                            kind: NodeKind::Seq(items),
                        });
                    }
                    items.push(self.node(event, item_mark, depth + 1)?);
                }
            }
            Event::MappingStart(_, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, key_mark) = self.next()?;
                    if event == Event::MappingEnd {
                        return Ok(Node {
                            mark,
                            kind: NodeKind::Map(entries),
                        });
                    }
                    let key = self.node(event, key_mark, depth + 1)?;
                    let (event, value_mark) = self.next()?;
                    let value = self.node(event, value_mark, depth + 1)?;
                    entries.push((key, value));
                }
            }
            Event::Alias(_) => Err(SyntaxError {
                mark,
                message: "YAML aliases are not supported in policies".to_owned(),
            }),
            other => Err(SyntaxError {
                mark,
                message: format!("unexpected {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_one_based() {
        let Some(root) = parse("a:\n  - x\n  - \"y\"\n").ok().flatten() else {
            panic!("no document");
        };
        let NodeKind::Map(entries) = &root.kind else {
            panic!("not a map")
        };
        let (key, value) = &entries[0];
        assert_eq!(key.mark, Mark { line: 1, column: 1 });
        let NodeKind::Seq(items) = &value.kind else {
            panic!("not a seq")
        };
        assert_eq!(items[0].mark, Mark { line: 2, column: 5 });
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn rejects_aliases_and_second_documents() {
        assert!(parse("a: &x 1\nb: *x\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn syntax_errors_are_located() {
        let Err(error) = parse("a: [1, 2\n") else {
            panic!("accepted")
        };
        assert!(error.mark.line >= 1);
    }
}
