//! The privacy router's detectors: plain data and pure functions over text, no I/O, no
//! network, so every detector is unit-tested on its own and the router's pipeline calls one
//! [`scan`](crate) per text field.
//!
//! A [`Finding`] names its [`Category`] (what the policy's `inference.categories` decides
//! on), a `kind` (which detector inside the category, e.g. `aws_access_key_id`) and the
//! byte range of the value in the scanned text. Findings never carry the value itself: the
//! audit trail and the logs get categories, kinds, counts and positions only.

use std::fmt;

pub mod code;
mod engine;
mod validate;

pub use engine::{Detector, DetectorConfig, DetectorError};

use serde::{Deserialize, Serialize};

/// What the policy decides on: a built-in category or one the policy defines
/// (`inference.detect.keywords` / `inference.detect.patterns`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Category {
    /// E-mail addresses.
    Email,
    /// Phone numbers, international (`+CC ...`) and national forms.
    Phone,
    /// Payment card numbers (Luhn-valid, known issuer prefixes and lengths).
    PaymentCard,
    /// International bank account numbers (mod-97 valid).
    Iban,
    /// US social security numbers (the invalid ranges excluded).
    UsSsn,
    /// IPv4 and IPv6 addresses.
    IpAddress,
    /// Dates of birth: a date next to a birth context word.
    DateOfBirth,
    /// Credentials: provider key formats, private-key blocks, JWTs, connection strings with
    /// passwords, high-entropy tokens next to a key word.
    Secret,
    /// Quotes of the proprietary source trees the policy names.
    Code,
    /// A category the policy defines (keyword list or pattern), by its name.
    Custom(String),
}

impl Category {
    /// The built-in categories, in the order `nemoclaw policy explain` lists them.
    pub const BUILTIN: [Category; 9] = [
        Category::Email,
        Category::Phone,
        Category::PaymentCard,
        Category::Iban,
        Category::UsSsn,
        Category::IpAddress,
        Category::DateOfBirth,
        Category::Secret,
        Category::Code,
    ];

    /// The name policies use (`email`, `payment_card`, ... or the custom name).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::PaymentCard => "payment_card",
            Category::Iban => "iban",
            Category::UsSsn => "us_ssn",
            Category::IpAddress => "ip_address",
            Category::DateOfBirth => "date_of_birth",
            Category::Secret => "secret",
            Category::Code => "code",
            Category::Custom(name) => name,
        }
    }

    /// The built-in category with this name, if any.
    #[must_use]
    pub fn builtin(name: &str) -> Option<Category> {
        Category::BUILTIN.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Category> for String {
    fn from(category: Category) -> String {
        category.name().to_owned()
    }
}

impl TryFrom<String> for Category {
    type Error = String;

    /// A built-in name, or a custom one (lowercase letters, digits, `_`, `-`, starting
    /// with a letter).
    fn try_from(name: String) -> Result<Category, String> {
        if let Some(builtin) = Category::builtin(&name) {
            return Ok(builtin);
        }
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if valid {
            Ok(Category::Custom(name))
        } else {
            Err(format!(
                "`{name}` is not a category name (lowercase letters, digits, `_` and `-`, starting with a letter)"
            ))
        }
    }
}

/// One sensitive value found in a text: where, and what it is; never the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What the value is, for the policy.
    pub category: Category,
    /// The detector inside the category, e.g. `aws_access_key_id`, `private_key`, `luhn`.
    pub kind: String,
    /// Start of the value in the scanned text, in bytes (on a char boundary).
    pub start: usize,
    /// End (exclusive) of the value in the scanned text, in bytes (on a char boundary).
    pub end: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_round_trip() {
        for c in Category::BUILTIN {
            assert_eq!(Category::try_from(c.name().to_owned()), Ok(c.clone()));
        }
        assert_eq!(
            Category::try_from("project_names".to_owned()),
            Ok(Category::Custom("project_names".into()))
        );
        assert!(Category::try_from("Bad Name".to_owned()).is_err());
        assert!(Category::try_from(String::new()).is_err());
    }
}
