//! The daemon's bookkeeping, kernel-free: its sandboxes, which policy slot each uses, the
//! rule tables deny events cite, and the state file a restarted daemon reads back.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nemoclaw_common::sandbox::{MAX_SLOTS, SELF_TEST_SLOT, Slot};
use serde::{Deserialize, Serialize};

use crate::policy::compiled::RuleRef;

/// One sandbox as the daemon records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    pub name: String,
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub slot: Slot,
    /// Controls registered in `SANDBOXES`.
    pub controls: u32,
    pub policy: PathBuf,
    pub policy_sha256: String,
    pub user: String,
    pub command: Vec<String>,
    /// Destroyed when its creator goes away (`nemoclaw run`).
    pub ephemeral: bool,
    /// The installed policy's rule table, cited by deny events from its slot.
    pub rules: Vec<RuleRef>,
    /// Where its host-name rules' nameservers come from, and how long a vanished address
    /// stays allowed (seconds).
    pub resolv_conf: PathBuf,
    pub dns_grace: u64,
    /// The kernel's count of dropped deny events when the sandbox started: its stop record
    /// reports the drops made while it ran.
    #[serde(default)]
    pub events_lost_at_start: u64,
    /// The names its DNS gateway answers (the installed policy's host names) and the
    /// gateway's loopback ports (IPv4, IPv6), which a restarted daemon binds again.
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub dns_ports: (u16, u16),
    /// Its policy's compiled `inference:` section: what the privacy router routes by
    /// (kept across restarts, so the router keeps working through one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<crate::policy::inference::InferenceRules>,
}

/// What survives a daemon restart (the kernel keeps the rest in pinned maps).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// SHA-256 of the eBPF object whose maps are pinned: a daemon of another build must not
    /// adopt maps whose layout it does not know.
    pub object_sha256: String,
    pub sandboxes: Vec<SandboxState>,
    /// Slots released but not yet swept: a restarted daemon sweeps them before it hands
    /// any slot out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<Slot>,
}

impl StateFile {
    pub fn read(path: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes atomically (a temporary file renamed over the old one), mode 0600. No fsync:
    /// the file lives on `/run`, a tmpfs that a reboot clears together with the bpffs pins it
    /// describes, and a sync would stall the reload that follows.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

/// The highest slot handed out: 0 never is, nor [`SELF_TEST_SLOT`] (the last).
const LAST_SLOT: Slot = SELF_TEST_SLOT - 1;

/// Released slots are swept together once this many wait...
pub const SWEEP_BATCH: usize = 32;
/// ...or once the oldest has waited this long.
pub const SWEEP_AFTER: Duration = Duration::from_secs(30);

/// Policy slots in use. Slot 0 is never handed out, so an all-zero key never matches a
/// live policy. Freed slots are reused last (round robin), so deny events still queued from
/// a replaced policy find its rule table.
///
/// A slot no sandbox is registered with any more is *released*, not freed: its entries stay
/// in the maps, where no lookup reaches them (lookups are keyed by a registered slot), and
/// it stays in use until a sweep has deleted them ([`Self::swept`]). Finding a slot's
/// entries means scanning every map (`kernel::slots`), whose cost is the maps' size, not
/// the entries': one sweep clears any number of slots for the price of one.
#[derive(Debug)]
pub struct Slots {
    used: BTreeSet<Slot>,
    next: Slot,
    /// Released slots, with when each was released.
    released: BTreeMap<Slot, Instant>,
    /// After a failed sweep: no sweep falls due before this (one is still forced when no
    /// slot is free).
    retry_at: Option<Instant>,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            used: BTreeSet::new(),
            next: 1,
            released: BTreeMap::new(),
            retry_at: None,
        }
    }
}

impl Slots {
    #[must_use]
    pub fn with_used(used: impl IntoIterator<Item = Slot>) -> Self {
        let used: BTreeSet<Slot> = used.into_iter().collect();
        let next = used.last().map_or(1, |s| s % LAST_SLOT + 1);
        Self {
            used,
            next,
            released: BTreeMap::new(),
            retry_at: None,
        }
    }

    /// A free slot, now marked used; `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Slot> {
        for _ in 0..MAX_SLOTS {
            let slot = self.next;
            self.next = slot % LAST_SLOT + 1;
            if self.used.insert(slot) {
                return Some(slot);
            }
        }
        None
    }

    /// `slot`'s entries are left for the next sweep; it stays in use until then.
    pub fn release(&mut self, slot: Slot, now: Instant) {
        self.used.insert(slot);
        self.released.entry(slot).or_insert(now);
    }

    /// The released slots, for a sweep to clear (and for the state file).
    #[must_use]
    pub fn released(&self) -> BTreeSet<Slot> {
        self.released.keys().copied().collect()
    }

    /// Whether a sweep is due: [`SWEEP_BATCH`] slots wait, or one has for [`SWEEP_AFTER`].
    /// After a failed sweep, not before [`SWEEP_AFTER`] has passed.
    #[must_use]
    pub fn sweep_due(&self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        self.released.len() >= SWEEP_BATCH
            || self
                .released
                .values()
                .min()
                .is_some_and(|oldest| now.saturating_duration_since(*oldest) >= SWEEP_AFTER)
    }

    /// A sweep cleared `slots`' entries: they are free.
    pub fn swept(&mut self, slots: &BTreeSet<Slot>) {
        for slot in slots {
            self.released.remove(slot);
            self.used.remove(slot);
        }
        self.retry_at = None;
    }

    /// A sweep failed: the slots stay released and in use; the next sweep falls due
    /// [`SWEEP_AFTER`] from `now`.
    pub fn sweep_failed(&mut self, now: Instant) {
        self.retry_at = Some(now + SWEEP_AFTER);
    }
}

/// Per slot: the sandbox and the rule table its deny events cite. Entries of freed slots
/// stay until the slot is reused.
#[derive(Debug, Default)]
pub struct RuleBook(BTreeMap<Slot, (String, std::sync::Arc<Vec<RuleRef>>)>);

impl RuleBook {
    pub fn set(&mut self, slot: Slot, sandbox: &str, rules: Vec<RuleRef>) {
        self.0
            .insert(slot, (sandbox.to_owned(), std::sync::Arc::new(rules)));
    }

    #[must_use]
    pub fn get(&self, slot: Slot) -> Option<(String, std::sync::Arc<Vec<RuleRef>>)> {
        self.0.get(&slot).cloned()
    }
}

/// A name for a sandbox created without one: `sandbox-<n>` not yet taken.
#[must_use]
pub fn generate_name(taken: &dyn Fn(&str) -> bool) -> String {
    (1..=u32::MAX)
        .map(|n| format!("sandbox-{n}"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// Sandbox names become cgroup directory names: keep them to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid sandbox name {name:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

/// What changed between two rule tables, by section and entry text.
#[must_use]
pub fn rule_changes(old: &[RuleRef], new: &[RuleRef]) -> (Vec<String>, Vec<String>) {
    let key = |r: &RuleRef| format!("{}: {}", r.section, r.text);
    let old: BTreeSet<String> = old.iter().map(key).collect();
    let new: BTreeSet<String> = new.iter().map(key).collect();
    (
        new.difference(&old).cloned().collect(),
        old.difference(&new).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_skip_zero_and_reuse_freed_last() {
        let mut s = Slots::default();
        assert_eq!(s.allocate(), Some(1));
        assert_eq!(s.allocate(), Some(2));
        s.release(1, Instant::now());
        s.swept(&BTreeSet::from([1]));
        assert_eq!(s.allocate(), Some(3), "a freed slot is not reused at once");
        let mut full = Slots::with_used(1..MAX_SLOTS);
        assert_eq!(full.allocate(), None);
        full.release(7, Instant::now());
        full.swept(&BTreeSet::from([7]));
        assert_eq!(full.allocate(), Some(7));
        assert_eq!(full.allocate(), None);
    }

    #[test]
    fn a_released_slot_stays_in_use_until_swept() {
        let t0 = Instant::now();
        let mut s = Slots::with_used(1..SELF_TEST_SLOT);
        s.release(7, t0);
        assert_eq!(s.allocate(), None, "released, not free");
        assert!(!s.sweep_due(t0));
        assert!(
            s.sweep_due(t0 + SWEEP_AFTER),
            "the oldest has waited long enough"
        );
        assert_eq!(s.released(), BTreeSet::from([7]));
        s.swept(&BTreeSet::from([7]));
        assert!(s.released().is_empty());
        assert_eq!(s.allocate(), Some(7));
        // A slot released again keeps its first release time.
        s.release(7, t0);
        s.release(7, t0 + SWEEP_AFTER);
        assert!(s.sweep_due(t0 + SWEEP_AFTER));
        // A failed sweep is not retried at once, then is.
        s.sweep_failed(t0 + SWEEP_AFTER);
        assert!(!s.sweep_due(t0 + SWEEP_AFTER));
        assert!(s.sweep_due(t0 + SWEEP_AFTER * 2));
        assert_eq!(s.released(), BTreeSet::from([7]));
    }

    #[test]
    fn a_batch_of_released_slots_is_due_at_once() {
        let t0 = Instant::now();
        let mut s = Slots::default();
        for _ in 0..SWEEP_BATCH {
            let slot = s.allocate().unwrap();
            assert!(!s.sweep_due(t0));
            s.release(slot, t0);
        }
        assert!(s.sweep_due(t0));
        // Sweeping only some (those a sweep saw) leaves the rest released.
        let mut some = s.released();
        let late = s.allocate().unwrap();
        s.release(late, t0);
        some.remove(&1);
        s.swept(&some);
        assert_eq!(s.released(), BTreeSet::from([1, late]));
    }

    #[test]
    fn slots_resume_after_the_highest_used() {
        let mut s = Slots::with_used([4, 9]);
        assert_eq!(s.allocate(), Some(10));
        let mut wrap = Slots::with_used([LAST_SLOT]);
        assert_eq!(wrap.allocate(), Some(1));
    }

    #[test]
    fn the_self_test_slot_is_never_handed_out() {
        let mut all_but = Slots::with_used(1..SELF_TEST_SLOT);
        assert_eq!(all_but.allocate(), None);
        assert_eq!(LAST_SLOT + 1, SELF_TEST_SLOT);
    }

    #[test]
    fn names_are_checked_and_generated() {
        assert!(check_name("agent-1.dev_x").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(generate_name(&|n| n == "sandbox-1"), "sandbox-2");
    }

    #[test]
    fn rule_changes_by_section_and_text() {
        let r = |section: &str, text: &str| RuleRef {
            id: 1,
            file: "p.yaml".into(),
            line: 1,
            column: 1,
            section: section.into(),
            text: text.into(),
        };
        let old = [
            r("network.allow", "10.0.0.1:443"),
            r("process.allow", "python3"),
        ];
        let new = [
            r("network.allow", "10.0.0.2:443"),
            r("process.allow", "python3"),
        ];
        let (added, removed) = rule_changes(&old, &new);
        assert_eq!(added, ["network.allow: 10.0.0.2:443"]);
        assert_eq!(removed, ["network.allow: 10.0.0.1:443"]);
    }

    #[test]
    fn state_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("nemoclaw-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(StateFile::read(&path).unwrap(), None);
        let state = StateFile {
            object_sha256: "ab".into(),
            sandboxes: vec![SandboxState {
                name: "a".into(),
                cgroup: "/sys/fs/cgroup/nemoclaw/a".into(),
                cgroup_id: 42,
                slot: 3,
                controls: 5,
                policy: "/p.yaml".into(),
                policy_sha256: "cd".into(),
                user: "nobody".into(),
                command: vec!["sh".into()],
                ephemeral: true,
                rules: vec![],
                resolv_conf: "/etc/resolv.conf".into(),
                dns_grace: 30,
                events_lost_at_start: 7,
                dns_names: vec!["api.example.com".to_owned()],
                dns_ports: (40001, 40002),
                inference: None,
            }],
            released: vec![9, 12],
        };
        state.write(&path).unwrap();
        assert_eq!(StateFile::read(&path).unwrap(), Some(state));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
