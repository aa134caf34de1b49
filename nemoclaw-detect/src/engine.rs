//! The one-pass engine: one multi-pattern automaton (regex-automata's meta regex, literal
//! prefilters, leftmost-first) over every built-in and custom pattern, one Aho-Corasick
//! automaton over the context words and the custom keyword lists, validators after a match,
//! then overlap resolution.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind as AcMatchKind};
use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};
use serde::{Deserialize, Serialize};

use crate::validate;
use crate::{Category, Finding};

/// The policy's own categories: keyword lists and patterns, by category name.
///
/// A name may also be a built-in category's (`secret`, `email` ...): its keywords and
/// patterns then report that category, kind `keyword` or `pattern`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// custom category name -> keywords (whole-word, case-insensitive)
    pub keywords: BTreeMap<String, Vec<String>>,
    /// custom category name -> pattern (regex crate syntax)
    pub patterns: BTreeMap<String, String>,
}

/// Why a [`DetectorConfig`] cannot be compiled; every variant names the category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectorError {
    /// The category name is not a valid category name.
    BadCategory {
        /// The category as written.
        category: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The pattern does not parse or compile.
    BadPattern {
        /// The category the pattern belongs to.
        category: String,
        /// The regex error.
        reason: String,
    },
    /// The pattern matches the empty string (it would fire everywhere).
    EmptyMatch {
        /// The category the pattern belongs to.
        category: String,
    },
    /// A keyword is empty or only whitespace.
    EmptyKeyword {
        /// The category the keyword belongs to.
        category: String,
    },
    /// A pattern, keyword or the whole set is over the size limits.
    TooLarge {
        /// The category (or `all categories` for the combined automaton).
        category: String,
        /// Which limit.
        reason: String,
    },
}

impl fmt::Display for DetectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetectorError::BadCategory { category, reason } => {
                write!(f, "category `{category}`: {reason}")
            }
            DetectorError::BadPattern { category, reason } => {
                write!(
                    f,
                    "category `{category}`: the pattern does not compile: {reason}"
                )
            }
            DetectorError::EmptyMatch { category } => write!(
                f,
                "category `{category}`: the pattern matches the empty string, it would fire everywhere"
            ),
            DetectorError::EmptyKeyword { category } => {
                write!(f, "category `{category}`: a keyword is empty")
            }
            DetectorError::TooLarge { category, reason } => {
                write!(f, "category `{category}`: too large: {reason}")
            }
        }
    }
}

impl std::error::Error for DetectorError {}

/// Size limit of one compiled automaton (bytes of NFA).
const NFA_SIZE_LIMIT: usize = 32 << 20;
/// Lazy DFA cache per thread and automaton, in bytes: large enough that the states of
/// all patterns stay built instead of being cleared and rebuilt on dense text.
const HYBRID_CACHE: usize = 16 << 20;
/// Longest keyword, in bytes.
const MAX_KEYWORD_LEN: usize = 256;
/// Most keywords over all categories.
const MAX_KEYWORDS: usize = 100_000;
/// How far before a date a birth context word may end, in bytes.
const BIRTH_CONTEXT_WINDOW: usize = 40;

/// A validator: the candidate's text and range in, the range to report out.
type ValidateFn = fn(&[u8], Range<usize>) -> Option<Range<usize>>;

/// What runs after the automaton matched a pattern.
#[derive(Clone, Copy)]
enum Check {
    /// A validator over the candidate.
    Validate(ValidateFn),
    /// A calendar date with a birth context word before it.
    BirthDate,
    /// A custom pattern: the match is the finding.
    Accept,
}

/// One pattern of the automaton.
#[derive(Clone)]
struct Spec {
    category: Category,
    kind: &'static str,
    check: Check,
}

#[allow(clippy::too_many_lines, reason = "a table")]
/// The built-in patterns, most specific first (the order breaks ties between patterns
/// matching at the same position). `B` is an ASCII word boundary, which keeps the lazy DFA
/// on non-ASCII text.
fn builtin_patterns() -> Vec<(&'static str, Category, &'static str, Check)> {
    use Category::{DateOfBirth, Email, Iban, IpAddress, PaymentCard, Phone, Secret, UsSsn};
    use Check::{BirthDate, Validate};
    use validate as v;
    vec![
        (
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:(?:[A-Za-z0-9+/=\s]|(?:Proc-Type|DEK-Info|Comment|Version|Hash):[^\n]*)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)",
            Secret,
            "private_key",
            Validate(v::private_key),
        ),
        (
            r"sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_-]{32,}",
            Secret,
            "anthropic_api_key",
            Validate(v::provider_token),
        ),
        (
            r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            Secret,
            "openai_api_key",
            Validate(v::provider_token),
        ),
        (
            r"gh[pousr]_[A-Za-z0-9]{36,255}",
            Secret,
            "github_token",
            Validate(v::provider_token),
        ),
        (
            r"github_pat_[A-Za-z0-9_]{50,255}",
            Secret,
            "github_token",
            Validate(v::provider_token),
        ),
        (
            r"glpat-[A-Za-z0-9_-]{20,}",
            Secret,
            "gitlab_token",
            Validate(v::provider_token),
        ),
        (
            r"xox[abeprs]-[A-Za-z0-9-]{10,}",
            Secret,
            "slack_token",
            Validate(v::provider_token),
        ),
        (
            r"https://hooks\.slack\.com/services/[A-Za-z0-9_/-]{20,}",
            Secret,
            "slack_webhook",
            Validate(v::whole),
        ),
        (
            r"[rs]k_(?:live|test)_[A-Za-z0-9]{20,}",
            Secret,
            "stripe_key",
            Validate(v::provider_token),
        ),
        (
            r"AIza[0-9A-Za-z_-]{35}",
            Secret,
            "google_api_key",
            Validate(v::provider_token),
        ),
        (
            r"SK[0-9a-f]{32}",
            Secret,
            "twilio_api_key",
            Validate(v::provider_token),
        ),
        (
            r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
            Secret,
            "sendgrid_api_key",
            Validate(v::provider_token),
        ),
        (
            r"npm_[A-Za-z0-9]{36}",
            Secret,
            "npm_token",
            Validate(v::provider_token),
        ),
        (
            r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
            Secret,
            "pypi_token",
            Validate(v::provider_token),
        ),
        (
            r"hf_[A-Za-z0-9]{34,}",
            Secret,
            "huggingface_token",
            Validate(v::provider_token),
        ),
        (
            r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
            Secret,
            "aws_access_key_id",
            Validate(v::aws_key_id),
        ),
        (
            r#"(?i:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key|aws[_-]?secret)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#,
            Secret,
            "aws_secret_access_key",
            Validate(v::aws_secret),
        ),
        (
            r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
            Secret,
            "jwt",
            Validate(v::jwt),
        ),
        (
            r#"(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|jdbc:[a-z]+|ftps?|sftp|smtps?|ldaps?|https?|clickhouse|cockroachdb|snowflake|neo4j(?:\+s)?|nats|kafka)://[^\s:/@"'<>]*:[^\s@"'<>/]+@[A-Za-z0-9._-]+(?::[0-9]+)?"#,
            Secret,
            "connection_string",
            Validate(v::connection_string),
        ),
        (
            r#"(?i:(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|credentials?|private[_-]?key|client[_-]?secret|bearer|basic)[A-Za-z0-9_-]{0,16})["']?(?:\s*(?::=|=>|[:=])\s*|\s+(?i:is|was)\s+|\s+)["'`]?[^\s"'`,;]{8,256}"#,
            Secret,
            "generic_secret",
            Validate(v::generic_secret),
        ),
        (
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
            PaymentCard,
            "luhn",
            Validate(v::payment_card),
        ),
        (
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)",
            Iban,
            "iban",
            Validate(v::iban),
        ),
        (
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
            UsSsn,
            "us_ssn",
            Validate(v::us_ssn),
        ),
        (
            r"(?-u:\b)[0-9]{3} [0-9]{2} [0-9]{4}(?-u:\b)",
            UsSsn,
            "us_ssn",
            Validate(v::us_ssn),
        ),
        (
            r"(?i:ssn|social security(?: number| no\.?| #)?|ss#)[^0-9\n]{0,20}(?-u:\b)[0-9]{9}(?-u:\b)",
            UsSsn,
            "us_ssn",
            Validate(v::us_ssn),
        ),
        (
            r"\+[1-9][0-9 ().-]{6,22}[0-9]",
            Phone,
            "e164",
            Validate(v::phone_e164),
        ),
        (
            r"(?:(?-u:\b)1[ .-])?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}(?-u:\b)",
            Phone,
            "national",
            Validate(v::phone_nanp),
        ),
        (
            r"(?-u:\b)0[1-9][0-9]{0,3}(?:[ ./-][0-9]{2,8}){1,4}(?-u:\b)",
            Phone,
            "national",
            Validate(v::phone_national),
        ),
        (
            r"(?:^|[^\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,24}",
            Email,
            "email",
            Validate(v::email),
        ),
        (
            r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)",
            IpAddress,
            "ipv4",
            Validate(v::ipv4),
        ),
        (
            r"(?:^|[^0-9A-Za-z_:.])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})",
            IpAddress,
            "ipv6",
            Validate(v::ipv6),
        ),
        (
            r"(?-u:\b)(?:19|20)[0-9]{2}[-/.][01]?[0-9][-/.][0-3]?[0-9](?-u:\b)",
            DateOfBirth,
            "date_of_birth",
            BirthDate,
        ),
        (
            r"(?-u:\b)[0-3]?[0-9][-/.][0-3]?[0-9][-/.](?:19|20)[0-9]{2}(?-u:\b)",
            DateOfBirth,
            "date_of_birth",
            BirthDate,
        ),
        (
            r"(?-u:\b)[0-3]?[0-9](?:st|nd|rd|th)?\s+(?:of\s+)?(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(?:19|20)[0-9]{2}(?-u:\b)",
            DateOfBirth,
            "date_of_birth",
            BirthDate,
        ),
        (
            r"(?-u:\b)(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+[0-3]?[0-9](?:st|nd|rd|th)?,?\s+(?:19|20)[0-9]{2}(?-u:\b)",
            DateOfBirth,
            "date_of_birth",
            BirthDate,
        ),
    ]
}

/// Birth context words (ASCII case-insensitive, a word boundary before them).
const BIRTH_WORDS: &[&str] = &[
    "born",
    "birth",
    "birthday",
    "birthdate",
    "dob",
    "d.o.b",
    "date of birth",
    "geboren",
    "né le",
    "née le",
    "fecha de nacimiento",
    "date de naissance",
    "geburtsdatum",
    "geb.",
    "data di nascita",
    "nascido",
];

/// The detectors of one policy: built once, shared (it is `Send + Sync`; share it through
/// an `Arc`, or clone it: the automata are reference-counted, each clone has its own
/// search caches).
#[derive(Clone)]
pub struct Detector {
    /// All patterns, leftmost-first: the one pass over the text.
    regex: Regex,
    /// The same patterns, all-matches semantics: which other patterns match at a position
    /// where the first one failed its validator (anchored, local, not a pass over the text).
    which: Regex,
    /// Per pattern id.
    specs: Vec<Spec>,
    /// Birth context words, looked up just before a date candidate.
    birth: AhoCorasick,
    /// The longest birth context word, in bytes.
    birth_max_len: usize,
    /// The policy's keywords, all categories in one automaton.
    keywords: Option<AhoCorasick>,
    /// Per keyword pattern id.
    keyword_categories: Vec<Category>,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("patterns", &self.specs.len())
            .field("keywords", &self.keyword_categories.len())
            .finish_non_exhaustive()
    }
}

/// Where the search resumes after a validated match.
#[derive(Clone, Copy)]
enum Resume {
    /// After the match: nothing inside a built-in finding is more specific than it.
    After,
    /// At the reported value (a generic secret's value may be a provider token).
    Inside,
    /// Just after the match's start: a policy pattern may cover a more specific finding.
    Next,
}

/// A candidate finding before overlap resolution.
struct Candidate {
    rank: u8,
    finding: Finding,
}

/// Overlap rank: lower wins. `secret` (provider formats, private keys, JWTs, connection
/// strings) > `secret`/`generic_secret` > `payment_card` > `iban` > `us_ssn` > `phone` >
/// `email` > `ip_address` > `date_of_birth` > `code` > custom categories; ties go to the
/// longer finding, then the earlier one.
fn rank(category: &Category, kind: &str) -> u8 {
    match category {
        Category::Secret if kind == "generic_secret" => 1,
        Category::Secret => 0,
        Category::PaymentCard => 2,
        Category::Iban => 3,
        Category::UsSsn => 4,
        Category::Phone => 5,
        Category::Email => 6,
        Category::IpAddress => 7,
        Category::DateOfBirth => 8,
        Category::Code => 9,
        Category::Custom(_) => 10,
    }
}

/// The meta regex builder with this crate's limits.
fn build(patterns: &[Hir], kind: MatchKind) -> Result<Regex, Box<meta::BuildError>> {
    Regex::builder()
        .configure(
            Regex::config()
                .match_kind(kind)
                .nfa_size_limit(Some(NFA_SIZE_LIMIT))
                .hybrid_cache_capacity(HYBRID_CACHE)
                .which_captures(regex_automata::nfa::thompson::WhichCaptures::Implicit),
        )
        .build_many_from_hir(patterns)
        .map_err(Box::new)
}

/// Parse a pattern (the `regex` crate's syntax and defaults).
fn parse(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// The same expression with ASCII word boundaries instead of Unicode ones: the lazy DFA
/// cannot run Unicode word boundaries on non-ASCII text and the whole automaton would fall
/// back to a much slower engine (a thousand times slower on such text). A letter of another
/// script next to an ASCII word then counts as a boundary.
fn ascii_boundaries(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
        HirKind::Look(look) => Hir::look(match look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => other,
        }),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(ascii_boundaries(*rep.sub)),
            ..rep
        }),
        HirKind::Capture(cap) => Hir::capture(Capture {
            sub: Box::new(ascii_boundaries(*cap.sub)),
            ..cap
        }),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(ascii_boundaries).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.into_iter().map(ascii_boundaries).collect())
        }
    }
}

/// Is the char ending at `at` (or starting at `at`, with `forward`) a word character.
fn word_char_at(text: &str, at: usize, forward: bool) -> bool {
    let c = if forward {
        text[at..].chars().next()
    } else {
        text[..at].chars().next_back()
    };
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

impl Detector {
    /// The built-in detectors plus the policy's keyword lists and patterns.
    pub fn new(config: &DetectorConfig) -> Result<Detector, DetectorError> {
        let mut pats: Vec<Hir> = Vec::new();
        let mut specs = Vec::new();
        for (p, category, kind, check) in builtin_patterns() {
            pats.push(parse(p).map_err(|reason| DetectorError::BadPattern {
                category: category.name().to_owned(),
                reason,
            })?);
            specs.push(Spec {
                category,
                kind,
                check,
            });
        }
        for (name, pattern) in &config.patterns {
            let category = category_of(name)?;
            let hir = parse(pattern).map_err(|reason| DetectorError::BadPattern {
                category: name.clone(),
                reason,
            })?;
            if hir.properties().minimum_len().is_none_or(|n| n == 0) {
                return Err(DetectorError::EmptyMatch {
                    category: name.clone(),
                });
            }
            let hir = ascii_boundaries(hir);
            build(std::slice::from_ref(&hir), MatchKind::LeftmostFirst).map_err(|e| {
                if e.size_limit().is_some() {
                    DetectorError::TooLarge {
                        category: name.clone(),
                        reason: e.to_string(),
                    }
                } else {
                    DetectorError::BadPattern {
                        category: name.clone(),
                        reason: e.to_string(),
                    }
                }
            })?;
            pats.push(hir);
            specs.push(Spec {
                category,
                kind: "pattern",
                check: Check::Accept,
            });
        }
        let too_large = |e: Box<meta::BuildError>| DetectorError::TooLarge {
            category: "all categories".to_owned(),
            reason: e.to_string(),
        };
        let regex = build(&pats, MatchKind::LeftmostFirst).map_err(too_large)?;
        let which = build(&pats, MatchKind::All).map_err(too_large)?;

        let (keywords, keyword_categories) = keyword_automaton(config)?;
        let birth = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(AcMatchKind::LeftmostLongest)
            .build(BIRTH_WORDS)
            .map_err(|e| DetectorError::TooLarge {
                category: "date_of_birth".to_owned(),
                reason: e.to_string(),
            })?;
        let birth_max_len = BIRTH_WORDS.iter().map(|w| w.len()).max().unwrap_or(0);
        Ok(Detector {
            regex,
            which,
            specs,
            birth,
            birth_max_len,
            keywords,
            keyword_categories,
        })
    }

    /// The built-in detectors only, no custom categories.
    ///
    /// # Panics
    ///
    /// Never: the built-in patterns are constants that the tests compile.
    #[must_use]
    pub fn builtin() -> Detector {
        // The built-in patterns are constants covered by the tests.
        #[allow(clippy::expect_used)]
        Detector::new(&DetectorConfig::default()).expect("the built-in patterns compile")
    }

    /// All findings in `text`, sorted by start, non-overlapping.
    ///
    /// On overlap the more specific finding is kept: `secret` (provider formats, private
    /// keys, JWTs, connection strings, then generic secrets) > `payment_card` > `iban` >
    /// `us_ssn` > `phone` > `email` > `ip_address` > `date_of_birth` > custom categories;
    /// between findings of the same rank the longer one, then the earlier one.
    #[must_use]
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut candidates = Vec::new();

        // Keyword lists: one Aho-Corasick pass (when the policy has any).
        if let Some(keywords) = &self.keywords {
            for m in keywords.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                if !text.is_char_boundary(s)
                    || !text.is_char_boundary(e)
                    || word_char_at(text, s, false)
                    || word_char_at(text, e, true)
                {
                    continue;
                }
                let category = &self.keyword_categories[m.pattern().as_usize()];
                candidates.push(Candidate {
                    rank: rank(category, "keyword"),
                    finding: Finding {
                        category: category.clone(),
                        kind: "keyword".to_owned(),
                        start: s,
                        end: e,
                    },
                });
            }
        }

        // Patterns: one pass of the multi-pattern automaton. After a failed candidate the
        // search resumes just after its start; after a finding, see `Resume`.
        let mut pos = 0;
        let mut set = PatternSet::new(self.which.pattern_len());
        while pos < text.len() {
            let Some(m) = self.regex.search(&Input::new(text).span(pos..text.len())) else {
                break;
            };
            let found = self.consider(text, m.pattern(), m.range(), &mut candidates);
            if found.is_none() {
                // Other patterns matching at the same start, in priority order.
                set.clear();
                let at = Input::new(text)
                    .span(m.start()..text.len())
                    .anchored(Anchored::Yes);
                self.which.which_overlapping_matches(&at, &mut set);
                for pid in set.iter() {
                    if pid == m.pattern() {
                        continue;
                    }
                    let at = Input::new(text)
                        .span(m.start()..text.len())
                        .anchored(Anchored::Pattern(pid));
                    if let Some(m2) = self.regex.search(&at)
                        && self
                            .consider(text, pid, m2.range(), &mut candidates)
                            .is_some()
                    {
                        break;
                    }
                }
            }
            pos = match found {
                Some((_, Resume::After)) => m.end(),
                Some((r, Resume::Inside)) => r.start.max(m.start() + 1),
                Some((_, Resume::Next)) | None => m.start() + 1,
            };
            while pos < text.len() && !text.is_char_boundary(pos) {
                pos += 1;
            }
        }
        resolve(candidates)
    }

    /// Validate one candidate; push it when it holds. Returns the reported range and where
    /// the search resumes.
    fn consider(
        &self,
        text: &str,
        pid: PatternID,
        r: Range<usize>,
        out: &mut Vec<Candidate>,
    ) -> Option<(Range<usize>, Resume)> {
        // A policy pattern with an ASCII `\B` could stop inside a character.
        if r.is_empty() || !text.is_char_boundary(r.start) || !text.is_char_boundary(r.end) {
            return None;
        }
        let bytes = text.as_bytes();
        let spec = &self.specs[pid.as_usize()];
        let r = match spec.check {
            Check::Validate(f) => f(bytes, r)?,
            Check::BirthDate => (validate::date(bytes, r.clone())
                && self.birth_before(text, r.start))
            .then_some(r)?,
            Check::Accept => r,
        };
        out.push(Candidate {
            rank: rank(&spec.category, spec.kind),
            finding: Finding {
                category: spec.category.clone(),
                kind: spec.kind.to_owned(),
                start: r.start,
                end: r.end,
            },
        });
        let resume = match (&spec.category, spec.check) {
            (_, Check::Accept) => Resume::Next,
            (Category::Secret, _) if spec.kind == "generic_secret" => Resume::Inside,
            _ => Resume::After,
        };
        Some((r, resume))
    }

    /// Does a birth context word (`born`, `date of birth`, `DOB` ...) end at most
    /// [`BIRTH_CONTEXT_WINDOW`] bytes before `start`, with a word boundary before it.
    fn birth_before(&self, text: &str, start: usize) -> bool {
        let mut lo = start.saturating_sub(BIRTH_CONTEXT_WINDOW + self.birth_max_len);
        while !text.is_char_boundary(lo) {
            lo += 1;
        }
        self.birth.find_iter(&text[lo..start]).any(|m| {
            let (s, e) = (lo + m.start(), lo + m.end());
            start - e <= BIRTH_CONTEXT_WINDOW
                && !text[..s]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
        })
    }
}

/// The Aho-Corasick automaton over the custom keywords (none without keywords), and the
/// category of each of its patterns.
#[allow(clippy::type_complexity, reason = "private")]
fn keyword_automaton(
    config: &DetectorConfig,
) -> Result<(Option<AhoCorasick>, Vec<Category>), DetectorError> {
    let mut words: Vec<String> = Vec::new();
    let mut roles = Vec::new();
    for (name, keywords) in &config.keywords {
        let category = category_of(name)?;
        for k in keywords {
            let k = k.trim();
            if k.is_empty() {
                return Err(DetectorError::EmptyKeyword {
                    category: name.clone(),
                });
            }
            if k.len() > MAX_KEYWORD_LEN {
                return Err(DetectorError::TooLarge {
                    category: name.clone(),
                    reason: format!("a keyword is over {MAX_KEYWORD_LEN} bytes"),
                });
            }
            // ASCII case folding is the automaton's; for other scripts, the usual cases.
            let mut variants = vec![k.to_owned(), k.to_lowercase(), k.to_uppercase()];
            let mut chars = k.chars();
            if let Some(first) = chars.next() {
                variants.push(
                    first
                        .to_uppercase()
                        .chain(chars.as_str().to_lowercase().chars())
                        .collect(),
                );
            }
            variants.sort();
            variants.dedup();
            for v in variants {
                words.push(v);
                roles.push(category.clone());
            }
        }
        if words.len() > MAX_KEYWORDS {
            return Err(DetectorError::TooLarge {
                category: name.clone(),
                reason: format!("over {MAX_KEYWORDS} keywords in all"),
            });
        }
    }
    if words.is_empty() {
        return Ok((None, roles));
    }
    let words = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(AcMatchKind::LeftmostLongest)
        .build(&words)
        .map_err(|e| DetectorError::TooLarge {
            category: "keywords".to_owned(),
            reason: e.to_string(),
        })?;
    Ok((Some(words), roles))
}

/// A policy category name as a [`Category`].
fn category_of(name: &str) -> Result<Category, DetectorError> {
    Category::try_from(name.to_owned()).map_err(|reason| DetectorError::BadCategory {
        category: name.to_owned(),
        reason,
    })
}

/// Keep the best of overlapping candidates (see [`Detector::scan`]), sorted by start.
fn resolve(mut candidates: Vec<Candidate>) -> Vec<Finding> {
    candidates.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then((b.finding.end - b.finding.start).cmp(&(a.finding.end - a.finding.start)))
            .then(a.finding.start.cmp(&b.finding.start))
    });
    // Accepted intervals by start.
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for c in candidates {
        let f = c.finding;
        let overlaps_before = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if !overlaps_before {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(d: &Detector, text: &str) -> Vec<(String, String, String)> {
        d.scan(text)
            .into_iter()
            .map(|f| {
                (
                    f.category.name().to_owned(),
                    f.kind,
                    text[f.start..f.end].to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn finds_each_builtin() {
        let d = Detector::builtin();
        let cases = [
            (
                "mail bob.smith@example.co.uk now",
                "email",
                "bob.smith@example.co.uk",
            ),
            ("call +44 20 7946 0958 today", "phone", "+44 20 7946 0958"),
            ("call (555) 234-5678 today", "phone", "(555) 234-5678"),
            ("ring 020 7946 0958 please", "phone", "020 7946 0958"),
            ("tel 06 12 34 56 78.", "phone", "06 12 34 56 78"),
            (
                "card 4111 1111 1111 1111 exp",
                "payment_card",
                "4111 1111 1111 1111",
            ),
            (
                "iban DE89 3704 0044 0532 0130 00 EUR",
                "iban",
                "DE89 3704 0044 0532 0130 00",
            ),
            ("ssn 536-22-1234", "us_ssn", "536-22-1234"),
            ("host 192.168.10.20:8080", "ip_address", "192.168.10.20"),
            (
                "v6 2001:db8::8a2e:370:7334 ok",
                "ip_address",
                "2001:db8::8a2e:370:7334",
            ),
            ("born on 12 March 1985 in", "date_of_birth", "12 March 1985"),
            ("DOB: 1985-03-12", "date_of_birth", "1985-03-12"),
            (
                "key AKIAIOSFODNN7EXAMPLF here",
                "secret",
                "AKIAIOSFODNN7EXAMPLF",
            ),
            (
                "export GITHUB_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5",
                "secret",
                "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5",
            ),
            (
                "DATABASE_URL=postgres://app:s3cr3tPw@db.internal:5432/app",
                "secret",
                "postgres://app:s3cr3tPw@db.internal:5432",
            ),
            ("password = \"Tr0ub4dor&3xY\"", "secret", "Tr0ub4dor&3xY"),
            (
                "\"api_key\": \"q8Zr2Lx9Vb4Nm7Kp1Wc6\"",
                "secret",
                "q8Zr2Lx9Vb4Nm7Kp1Wc6",
            ),
        ];
        for (text, cat, value) in cases {
            let found = kinds(&d, text);
            assert!(
                found.iter().any(|(c, _, v)| c == cat && v == value),
                "{text:?}: expected {cat} {value:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn specific_kinds_win_and_alternatives_are_tried() {
        let d = Detector::builtin();
        // A provider token after a key word: the provider kind, not generic_secret.
        let found = kinds(&d, "token: ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "github_token");
        // `01.02.1985` first matches the national phone pattern, which fails; the date
        // pattern at the same position is then tried.
        let found = kinds(&d, "DOB: 01.02.1985");
        assert_eq!(
            found,
            vec![(
                "date_of_birth".into(),
                "date_of_birth".into(),
                "01.02.1985".into()
            )]
        );
        // A connection string contains an e-mail look-alike: only the secret is reported.
        let found = kinds(&d, "url = mysql://root:Xk9vQ2pL7z@db.example.com:3306/app");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "connection_string");
    }

    #[test]
    fn non_ascii_text_keeps_char_boundaries() {
        let d = Detector::builtin();
        let text = "Größe 😀 – contact: jürgen.weiß@example.de oder łukasz@example.pl, tél +33 6 12 34 56 78 ✓";
        for f in d.scan(text) {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let found = kinds(&d, text);
        assert!(
            found
                .iter()
                .any(|(c, _, v)| c == "phone" && v == "+33 6 12 34 56 78"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(c, _, v)| c == "email" && v == "jürgen.weiß@example.de"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(c, _, v)| c == "email" && v == "łukasz@example.pl"),
            "{found:?}"
        );
    }

    #[test]
    fn private_key_block_and_jwt() {
        let d = Detector::builtin();
        let text = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nabc/+=\n-----END RSA PRIVATE KEY-----\ny";
        // A bare header (in a regex, a doc) is not a key.
        assert!(d.scan("r\"-----BEGIN PRIVATE KEY-----\"").is_empty());
        let f = d.scan(text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(&text[f[0].start..f[0].end], &text[2..text.len() - 2]);
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let f = d.scan(&format!("Authorization: {jwt}."));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, "jwt");
    }

    #[test]
    fn many_key_headers_scan_in_linear_time() {
        // The key body excludes `-`: each header's search stops at the next header instead
        // of running to the end of the text looking for an END line.
        let d = Detector::builtin();
        let text = "-----BEGIN RSA PRIVATE KEY-----\n".repeat(20_000);
        let start = std::time::Instant::now();
        assert!(d.scan(&text).is_empty());
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        let pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0nL2wBCAC7u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n=ABCD\n-----END PGP PRIVATE KEY BLOCK-----";
        let f = d.scan(pgp);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (0, pgp.len()));
    }

    #[test]
    fn look_alikes_do_not_fire() {
        let d = Detector::builtin();
        for text in [
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "version 1.2.3.4 and build 10.0.19045",
            "card 4111 1111 1111 1112",
            "ssn 666-22-1234 and 078-05-1120",
            "on 2024-01-15T10:30:00Z the job ran",
            "meeting on 12 March 1985",
            "order #100234987 shipped",
            "std::vec::Vec and a::b",
            "token = get_token()",
            "password: ${DB_PASSWORD}",
        ] {
            assert!(d.scan(text).is_empty(), "{text:?}: {:?}", kinds(&d, text));
        }
    }

    #[test]
    fn custom_categories() {
        let mut config = DetectorConfig::default();
        config.keywords.insert(
            "projects".into(),
            vec!["Falcon".into(), "Blue Heron".into(), "Émeraude".into()],
        );
        config
            .patterns
            .insert("tickets".into(), r"INC-[0-9]{6}".into());
        let d = Detector::new(&config).expect("compiles");
        let text = "falcon and BLUE HERON, not falconry; INC-123456 émeraude";
        // Word boundaries in policy patterns are ASCII ones (see `ascii_boundaries`).
        let mut c = DetectorConfig::default();
        c.patterns.insert("codes".into(), r"\bFalcon-\d+\b".into());
        let d2 = Detector::new(&c).expect("compiles");
        let found = kinds(&d2, "Größe: Falcon-12 und xFalcon-3, 東京Falcon-4");
        assert_eq!(
            found.iter().map(|f| f.2.as_str()).collect::<Vec<_>>(),
            vec!["Falcon-12", "Falcon-4"]
        );
        let found = kinds(&d, text);
        assert_eq!(
            found,
            vec![
                ("projects".into(), "keyword".into(), "falcon".into()),
                ("projects".into(), "keyword".into(), "BLUE HERON".into()),
                ("tickets".into(), "pattern".into(), "INC-123456".into()),
                ("projects".into(), "keyword".into(), "émeraude".into()),
            ]
        );
    }

    #[test]
    fn config_errors_name_the_category() {
        let mut c = DetectorConfig::default();
        c.patterns.insert("bad".into(), "(".into());
        assert!(Detector::new(&c).unwrap_err().to_string().contains("`bad`"));
        let mut c = DetectorConfig::default();
        c.patterns.insert("empty".into(), "a*".into());
        assert!(matches!(
            Detector::new(&c),
            Err(DetectorError::EmptyMatch { .. })
        ));
        let mut c = DetectorConfig::default();
        c.keywords.insert("kw".into(), vec![" ".into()]);
        assert!(matches!(
            Detector::new(&c),
            Err(DetectorError::EmptyKeyword { .. })
        ));
        let mut c = DetectorConfig::default();
        c.keywords.insert("Bad Name".into(), vec!["x".into()]);
        assert!(matches!(
            Detector::new(&c),
            Err(DetectorError::BadCategory { .. })
        ));
        let mut c = DetectorConfig::default();
        c.patterns
            .insert("big".into(), r"\w{1000}\w{1000}\w{1000}".into());
        assert!(matches!(
            Detector::new(&c),
            Err(DetectorError::TooLarge { .. })
        ));
    }

    #[test]
    fn never_panics_on_random_input() {
        let d = Detector::builtin();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "0123456789 -.:/@+()=_abcdefXYZ\n\"'é€😀ﬁ\u{0301}sk-AKIAghp_eyJ"
            .chars()
            .collect();
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let findings = d.scan(&s);
            for w in findings.windows(2) {
                assert!(w[0].end <= w[1].start);
            }
            for f in &findings {
                assert!(
                    s.is_char_boundary(f.start) && s.is_char_boundary(f.end) && f.start < f.end
                );
            }
            // Raw bytes made valid.
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = d.scan(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn detector_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Detector>();
    }
}
