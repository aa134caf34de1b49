//! The compiled `inference:` section: what the privacy router (`router/`) needs to route one
//! sandbox's model calls. Plain data, deterministic (sorted maps), sent by the daemon over
//! the control socket; no kernel involved (the router is a userspace proxy).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use nemoclaw_detect::Category;
use serde::{Deserialize, Serialize};

/// Where a sandbox reaches the router when its policy does not say (`inference.router`).
pub const DEFAULT_ROUTER_ADDR: &str = "127.0.0.1:8089";

/// What the router does with a request in which a category was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Forward to the cloud backend as it is.
    Allow,
    /// Forward to the cloud backend with each value of the category replaced by a
    /// placeholder of the session, restored in the reply (unless `restore` is off).
    Mask,
    /// Send the whole request to the local backend instead.
    Local,
    /// Refuse the request; the caller learns the category and where, never the value.
    Block,
}

impl Action {
    /// The name policies use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Mask => "mask",
            Action::Local => "local",
            Action::Block => "block",
        }
    }

    /// How strongly the action keeps data home: a request with several categories takes the
    /// strongest of their actions (block > local > mask > allow).
    #[must_use]
    pub fn strength(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Mask => 1,
            Action::Local => 2,
            Action::Block => 3,
        }
    }
}

/// What the router does with a value of a category that a reply carries and the request
/// did not (a model echoing a secret from its training data, an injected tool result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReply {
    /// The caller gets it as the backend sent it.
    Pass,
    /// The caller gets a placeholder instead (never restored).
    Mask,
}

/// An action and the policy rule that set it (`file:line`, cited in errors and audit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuledAction {
    pub action: Action,
    /// `file:line` of the entry, or of `inference.default` for categories not listed.
    pub rule: String,
    /// `restore:` as written (only with `mask`); absent: see [`RuledAction::restores`].
    #[serde(default)]
    pub restore: Option<bool>,
    /// `injected:` as written; absent: see [`RuledAction::on_reply`].
    #[serde(default)]
    pub injected: Option<OnReply>,
}

impl RuledAction {
    /// A rule with the defaults for `restore` and `injected`.
    #[must_use]
    pub fn new(action: Action, rule: String) -> RuledAction {
        RuledAction {
            action,
            rule,
            restore: None,
            injected: None,
        }
    }

    /// Whether masked values of `category` are put back in replies: as written, else yes
    /// for every category but `secret` (a secret is masked one way: the agent has it
    /// already, and a reply carrying it back is a way to leak it into logs and files).
    #[must_use]
    pub fn restores(&self, category: &Category) -> bool {
        self.action == Action::Mask && self.restore.unwrap_or(*category != Category::Secret)
    }

    /// What a reply's value of this category that the request did not carry gets: as
    /// written, else masked for every category the policy keeps from the cloud (`mask`,
    /// `local`, `block`) and passed for `allow`.
    #[must_use]
    pub fn on_reply(&self) -> OnReply {
        self.injected.unwrap_or(if self.action == Action::Allow {
            OnReply::Pass
        } else {
            OnReply::Mask
        })
    }
}

/// A backend the router's host configuration defines, and the model to ask it for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    /// A backend name in the router's configuration (`router.yaml`: URL, API flavour, key).
    pub backend: String,
    /// The model to request; absent: the caller's `model` is passed through.
    pub model: Option<String>,
}

/// The compiled `inference:` section of one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceRules {
    /// Where the sandbox reaches the router (the compiler allows it in `network`).
    pub router: SocketAddr,
    /// Serves requests in which nothing above `allow` was found.
    pub cloud: BackendChoice,
    /// Serves requests with a `local` category; absent: such requests are refused.
    pub local: Option<BackendChoice>,
    /// Per category; a category not listed takes `default`.
    pub categories: BTreeMap<Category, RuledAction>,
    /// For categories the policy does not list (`inference.default`; absent: `block`).
    pub default: RuledAction,
    /// Custom categories from keyword lists (`inference.detect.keywords.NAME`): matched as
    /// whole words, case-insensitively.
    pub keywords: BTreeMap<String, Vec<String>>,
    /// Custom categories from patterns (`inference.detect.patterns.NAME`), in the syntax of
    /// the `regex` crate.
    pub patterns: BTreeMap<String, String>,
    /// Proprietary source trees (`inference.detect.code`): absolute path patterns whose
    /// files' fingerprints the router keeps; a prompt quoting them is category `code`.
    pub code: Vec<String>,
}

impl InferenceRules {
    /// Whether any category masks the values a reply carries that the request did not
    /// (so replies go through the guard).
    #[must_use]
    pub fn guards_replies(&self) -> bool {
        Category::BUILTIN
            .iter()
            .cloned()
            .chain(
                self.keywords
                    .keys()
                    .chain(self.patterns.keys())
                    .map(|n| Category::Custom(n.clone())),
            )
            .any(|c| self.action_for(&c).on_reply() == OnReply::Mask)
    }

    /// The action and rule for a category.
    #[must_use]
    pub fn action_for(&self, category: &Category) -> &RuledAction {
        self.categories.get(category).unwrap_or(&self.default)
    }
}

#[cfg(test)]
impl InferenceRules {
    /// Rules for unit tests: the cloud backend `cloud`, no local one, `default` for the
    /// categories not listed, each rule cited as `p.yaml:LINE` (the default at line 1, the
    /// categories from line 2 in order).
    ///
    /// # Panics
    ///
    /// Never: the default router address is a constant that parses.
    #[must_use]
    pub fn for_tests(default: Action, categories: &[(Category, Action)]) -> InferenceRules {
        InferenceRules {
            router: DEFAULT_ROUTER_ADDR.parse().expect("address"),
            cloud: BackendChoice {
                backend: "cloud".into(),
                model: None,
            },
            local: None,
            categories: categories
                .iter()
                .zip(2..)
                .map(|((c, a), line)| (c.clone(), RuledAction::new(*a, format!("p.yaml:{line}"))))
                .collect(),
            default: RuledAction::new(default, "p.yaml:1".into()),
            keywords: BTreeMap::new(),
            patterns: BTreeMap::new(),
            code: Vec::new(),
        }
    }
}
