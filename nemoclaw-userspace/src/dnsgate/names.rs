//! Which queries a sandbox's DNS gateway answers: the host names of the policy's `allow`
//! rules, and the names their answers' CNAME chains lead to (learned from the answers, for
//! their TTL), for the address and alias query types only. Everything else is refused.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use super::message::{CLASS_IN, Cname, TYPE_A, TYPE_AAAA, TYPE_CNAME};
use crate::policy::{Host, Policy};

/// `HTTPS` (RFC 9460): what current clients (curl, browsers, Go) ask beside A and AAAA.
pub const TYPE_HTTPS: u16 = 65;
/// Query types answered for an allowed name: addresses and aliases, nothing that carries
/// free text (TXT), services of other names (SRV, MX) or zone data.
const ANSWERED_TYPES: [u16; 4] = [TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_HTTPS];
/// A learned CNAME target is kept at least this long and at most [`MAX_LEARNED_TTL`].
const MIN_LEARNED_TTL: Duration = Duration::from_secs(5);
const MAX_LEARNED_TTL: Duration = Duration::from_hours(1);
/// Learned targets kept per sandbox; beyond it the ones that expire first go.
const MAX_LEARNED: usize = 4096;

/// Why a query is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No allow rule names it, and no allowed name's CNAME chain led to it.
    Name,
    /// An allowed name, asked for a type other than A, AAAA, CNAME or HTTPS.
    QueryType(u16),
    /// A class other than IN.
    QueryClass(u16),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name => f.write_str("no rule allows this name"),
            Self::QueryType(t) => write!(
                f,
                "query type {} is not answered (A, AAAA, CNAME and HTTPS only)",
                type_name(*t)
            ),
            Self::QueryClass(c) => write!(f, "query class {c} is not answered (IN only)"),
        }
    }
}

/// The mnemonic of common query types, else `TYPE<n>` (RFC 3597).
#[must_use]
pub fn type_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_owned()
}

/// The names one sandbox may resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedNames {
    /// From the policy: lower-case, no trailing dot.
    rules: BTreeSet<String>,
    /// CNAME targets of allowed names' answers, until they expire.
    learned: HashMap<String, Instant>,
}

impl AllowedNames {
    /// The host names of `policy`'s `network.allow` rules (deny rules name hosts to keep
    /// out, which a sandbox has no need to resolve).
    #[must_use]
    pub fn from_policy(policy: &Policy) -> Self {
        let rules = policy
            .network
            .iter()
            .flat_map(|n| &n.allow)
            .filter_map(|r| match &r.value.host {
                Host::Name(name) => Some(normalize(name)),
                _ => None,
            })
            .collect();
        Self {
            rules,
            learned: HashMap::new(),
        }
    }

    /// The policy's names as they were persisted ([`Self::names`]): an adopting daemon
    /// serves what the installed policy allowed, not what its file says now.
    #[must_use]
    pub fn from_names<I: IntoIterator<Item = String>>(names: I) -> Self {
        Self {
            rules: names.into_iter().map(|n| normalize(&n)).collect(),
            learned: HashMap::new(),
        }
    }

    /// The policy's names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.rules.iter().cloned().collect()
    }

    /// Whether a policy named any host: a gateway without names refuses everything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Judges a query for `name` (presentation form, lower-case), `qtype`, `qclass`.
    pub fn judge(&self, name: &str, qtype: u16, qclass: u16, now: Instant) -> Result<(), Refusal> {
        let name = normalize(name);
        let allowed =
            self.rules.contains(&name) || self.learned.get(&name).is_some_and(|&until| until > now);
        if !allowed {
            return Err(Refusal::Name);
        }
        if qclass != CLASS_IN {
            return Err(Refusal::QueryClass(qclass));
        }
        if !ANSWERED_TYPES.contains(&qtype) {
            return Err(Refusal::QueryType(qtype));
        }
        Ok(())
    }

    /// Learns the targets of `cnames` (an answer to an allowed query, in order) whose owner
    /// is allowed: the chain `a -> b -> c` allows `b` and `c`, for their TTL (clamped to
    /// 5 s..1 h), so a resolver that follows the chain itself is answered.
    pub fn learn(&mut self, cnames: &[Cname], now: Instant) {
        self.learned.retain(|_, until| *until > now);
        for c in cnames {
            let owner = normalize(&c.owner);
            let owner_allowed = self.rules.contains(&owner)
                || self.learned.get(&owner).is_some_and(|&until| until > now);
            if !owner_allowed {
                continue;
            }
            let ttl = Duration::from_secs(u64::from(c.ttl)).clamp(MIN_LEARNED_TTL, MAX_LEARNED_TTL);
            let until = now + ttl;
            let entry = self.learned.entry(normalize(&c.target)).or_insert(until);
            *entry = (*entry).max(until);
        }
        while self.learned.len() > MAX_LEARNED {
            let Some(first) = self
                .learned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            self.learned.remove(&first);
        }
    }

    /// A reloaded policy's names: what the chains of the old names taught is forgotten
    /// (the next answer to a still-allowed name teaches it again).
    pub fn replace(&mut self, new: Self) {
        *self = new;
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse_str;

    fn names(yaml: &str) -> AllowedNames {
        AllowedNames::from_policy(&parse_str(Path::new("p.yaml"), yaml).expect("policy"))
    }

    fn cname(owner: &str, target: &str, ttl: u32) -> Cname {
        Cname {
            owner: owner.to_owned(),
            target: target.to_owned(),
            ttl,
        }
    }

    #[test]
    fn allow_rules_name_the_hosts_deny_rules_and_addresses_do_not() {
        let n = names(
            "network:\n  allow:\n    - \"api.example.com:443\"\n    - \"10.0.0.1:53\"\n    - {host: Git.Example.org, ports: [22]}\n  deny:\n    - \"evil.example.com:443\"\n",
        );
        let now = Instant::now();
        assert_eq!(n.judge("api.example.com", TYPE_A, CLASS_IN, now), Ok(()));
        assert_eq!(
            n.judge("API.example.com.", TYPE_AAAA, CLASS_IN, now),
            Ok(())
        );
        assert_eq!(
            n.judge("git.example.org", TYPE_HTTPS, CLASS_IN, now),
            Ok(())
        );
        assert_eq!(
            n.judge("evil.example.com", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        assert_eq!(
            n.judge("x.api.example.com", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name),
            "a subdomain is another name"
        );
        assert_eq!(
            n.judge("example.com", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        assert_eq!(
            n.judge("api.example.com", 16, CLASS_IN, now),
            Err(Refusal::QueryType(16))
        );
        assert_eq!(
            n.judge("api.example.com", TYPE_A, 3, now),
            Err(Refusal::QueryClass(3))
        );
        assert!(!n.is_empty());
        assert!(names("network:\n  allow:\n    - \"10.0.0.1:443\"\n").is_empty());
        assert!(names("process:\n  allow: [python3]\n").is_empty());
    }

    #[test]
    fn cname_chains_of_allowed_names_are_learned_until_they_expire() {
        let mut n = names("network:\n  allow:\n    - \"api.example.com:443\"\n");
        let now = Instant::now();
        n.learn(
            &[
                cname("api.example.com", "edge.cdn.net", 60),
                cname("edge.cdn.net", "e1.cdn.net", 1),
                cname("other.example", "x.cdn.net", 60),
            ],
            now,
        );
        assert_eq!(n.judge("edge.cdn.net", TYPE_A, CLASS_IN, now), Ok(()));
        assert_eq!(n.judge("e1.cdn.net", TYPE_AAAA, CLASS_IN, now), Ok(()));
        assert_eq!(
            n.judge("x.cdn.net", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name),
            "the owner was not allowed"
        );
        assert_eq!(
            n.judge("other.example", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        // The 1 s TTL is kept for the 5 s minimum, the 60 s one for 60 s.
        let later = now + Duration::from_secs(6);
        assert_eq!(
            n.judge("e1.cdn.net", TYPE_A, CLASS_IN, later),
            Err(Refusal::Name)
        );
        assert_eq!(n.judge("edge.cdn.net", TYPE_A, CLASS_IN, later), Ok(()));
        let much_later = now + Duration::from_secs(61);
        assert_eq!(
            n.judge("edge.cdn.net", TYPE_A, CLASS_IN, much_later),
            Err(Refusal::Name)
        );
        // A reload forgets what the old answers taught.
        n.learn(&[cname("api.example.com", "edge.cdn.net", 60)], now);
        n.replace(names("network:\n  allow:\n    - \"b.example.com:443\"\n"));
        assert_eq!(
            n.judge("edge.cdn.net", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        assert_eq!(
            n.judge("api.example.com", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        assert_eq!(n.judge("b.example.com", TYPE_A, CLASS_IN, now), Ok(()));
    }

    #[test]
    fn learned_names_are_bounded() {
        let mut n = names("network:\n  allow:\n    - \"api.example.com:443\"\n");
        let now = Instant::now();
        let chain: Vec<Cname> = (0..MAX_LEARNED + 10)
            .map(|i| cname("api.example.com", &format!("t{i}.cdn.net"), 60 + i as u32))
            .collect();
        n.learn(&chain, now);
        assert_eq!(n.learned.len(), MAX_LEARNED);
        assert_eq!(
            n.judge("t0.cdn.net", TYPE_A, CLASS_IN, now),
            Err(Refusal::Name)
        );
        let last = format!("t{}.cdn.net", MAX_LEARNED + 9);
        assert_eq!(n.judge(&last, TYPE_A, CLASS_IN, now), Ok(()));
    }
}
