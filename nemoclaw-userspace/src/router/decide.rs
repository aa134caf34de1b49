//! From findings to a decision: each category found takes its action from the sandbox's
//! `inference:` rules, and the request takes the strongest (block > local > allow). Pure:
//! no I/O, unit-tested on plain data.

use std::collections::BTreeMap;

use nemoclaw_detect::{Category, Finding};
use serde::Serialize;

use crate::policy::inference::{Action, InferenceRules};

/// Where a finding is: the text field and the byte range inside it. Never the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Place {
    pub field: String,
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// One category found in a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub category: String,
    pub action: Action,
    /// `file:line` of the policy entry that set the action.
    pub rule: String,
    pub count: usize,
    /// The first places (at most [`MAX_PLACES`]); `count` has them all.
    pub places: Vec<Place>,
}

/// Places kept per category in a decision (and so in an audit record).
pub const MAX_PLACES: usize = 16;

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The categories found, by name.
    pub found: Vec<Found>,
}

impl Decision {
    /// The decision for `findings` (each with the text field it was found in).
    #[must_use]
    pub fn of(rules: &InferenceRules, findings: &[(String, Finding)]) -> Decision {
        let mut by_category: BTreeMap<&Category, Found> = BTreeMap::new();
        for (field, finding) in findings {
            let found = by_category.entry(&finding.category).or_insert_with(|| {
                let set_by = rules.action_for(&finding.category);
                Found {
                    category: finding.category.name().to_owned(),
                    action: set_by.action,
                    rule: set_by.rule.clone(),
                    count: 0,
                    places: Vec::new(),
                }
            });
            found.count += 1;
            if found.places.len() < MAX_PLACES {
                found.places.push(Place {
                    field: field.clone(),
                    kind: finding.kind.clone(),
                    start: finding.start,
                    end: finding.end,
                });
            }
        }
        let found: Vec<Found> = by_category.into_values().collect();
        let action = found
            .iter()
            .map(|f| f.action)
            .max_by_key(|a| a.strength())
            .unwrap_or(Action::Allow);
        Decision { action, found }
    }

    /// The categories that decided (those whose action is the decision's), for messages:
    /// "category `secret` (`aws_access_key_id`) at `/messages/0/content` bytes 9..29, rule
    /// policy.yaml:14".
    #[must_use]
    pub fn reason(&self) -> String {
        let parts: Vec<String> = self
            .found
            .iter()
            .filter(|f| f.action == self.action)
            .map(|f| {
                let first = &f.places[0];
                let more = if f.count > 1 {
                    format!(" and {} more", f.count - 1)
                } else {
                    String::new()
                };
                format!(
                    "category `{}` ({}) at {} bytes {}..{}{more} (rule {})",
                    f.category, first.kind, first.field, first.start, first.end, f.rule
                )
            })
            .collect();
        if parts.is_empty() {
            "no sensitive content found".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> InferenceRules {
        InferenceRules::for_tests(
            Action::Block,
            &[
                (Category::Secret, Action::Block),
                (Category::Email, Action::Local),
                (Category::IpAddress, Action::Allow),
            ],
        )
    }

    fn at(category: Category, kind: &str, start: usize) -> (String, Finding) {
        (
            "/messages/0/content".to_owned(),
            Finding {
                category,
                kind: kind.into(),
                start,
                end: start + 10,
            },
        )
    }

    #[test]
    fn nothing_found_is_allowed() {
        let d = Decision::of(&rules(), &[]);
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.reason(), "no sensitive content found");
    }

    #[test]
    fn the_strongest_action_wins_and_the_reason_names_where() {
        let d = Decision::of(
            &rules(),
            &[
                at(Category::Email, "email", 0),
                at(Category::IpAddress, "ipv4", 20),
                at(Category::Email, "email", 40),
            ],
        );
        assert_eq!(d.action, Action::Local);
        assert_eq!(d.found.len(), 2);
        assert_eq!(
            d.reason(),
            "category `email` (email) at /messages/0/content bytes 0..10 and 1 more (rule p.yaml:3)"
        );
        let d = Decision::of(
            &rules(),
            &[
                at(Category::Email, "email", 0),
                at(Category::Secret, "jwt", 3),
            ],
        );
        assert_eq!(d.action, Action::Block);
        assert!(
            d.reason().starts_with("category `secret` (jwt)"),
            "{}",
            d.reason()
        );
    }

    #[test]
    fn unlisted_categories_take_the_default() {
        let d = Decision::of(&rules(), &[at(Category::Phone, "e164", 0)]);
        assert_eq!(d.action, Action::Block);
        assert_eq!(d.found[0].rule, "p.yaml:1");
    }

    #[test]
    fn places_are_capped_but_counted() {
        let many: Vec<_> = (0..100)
            .map(|i| at(Category::Email, "email", i * 20))
            .collect();
        let d = Decision::of(&rules(), &many);
        assert_eq!(d.found[0].count, 100);
        assert_eq!(d.found[0].places.len(), MAX_PLACES);
    }
}
