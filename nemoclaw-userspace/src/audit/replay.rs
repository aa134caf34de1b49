//! Records a follower missed: a client whose event stream was cut (a daemon restart) says
//! which record it received last, and gets the sandbox's records written after it, read
//! back from the audit log, before the live ones.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufRead as _, BufReader},
    path::Path,
};

use serde_json::Value;

/// `record` as streamed: the log line without its chain link.
fn unchained(mut record: Value) -> Value {
    if let Some(map) = record.as_object_mut() {
        map.remove("prev");
    }
    record
}

/// `sandbox`'s records in `log` after the last one equal to `last` (as streamed), in order,
/// read from the newest rotated file (`log.1`, if there is one) and then `log`, so a
/// rotation while the follower was away loses nothing. Empty when `last` is in neither
/// (rotated further away): nothing can be said to be missing.
pub fn after(log: &Path, sandbox: &str, last: &Value) -> io::Result<Vec<Value>> {
    let mut found: Option<Vec<Value>> = None;
    let rotated = super::rotate::rotated_path(log, 1);
    let previous = match File::open(&rotated) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let files = previous.into_iter().chain([File::open(log)?]);
    for line in files.flat_map(|f| BufReader::new(f).lines()) {
        let line = line?;
        // Cheap filter before parsing: the sandbox's name is in each of its lines.
        if !line.contains(sandbox) {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if record.get("sandbox").and_then(Value::as_str) != Some(sandbox) {
            continue;
        }
        let record = unchained(record);
        if &record == last {
            found = Some(Vec::new());
        } else if let Some(missed) = &mut found {
            missed.push(record);
        }
    }
    Ok(found.unwrap_or_default())
}

/// Drops live records already replayed: those written between the subscription and the
/// read of the log arrive both ways.
#[derive(Default)]
pub struct Seen(HashMap<String, usize>);

impl Seen {
    #[must_use]
    pub fn new(replayed: &[Value]) -> Self {
        let mut seen = HashMap::new();
        for r in replayed {
            *seen.entry(r.to_string()).or_insert(0) += 1;
        }
        Self(seen)
    }

    /// Whether `record` was replayed (each replayed record matches one live record).
    pub fn take(&mut self, record: &Value) -> bool {
        if self.0.is_empty() {
            return false;
        }
        match self.0.get_mut(&record.to_string()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replays_the_sandboxs_records_after_the_last_one_received() {
        let dir = std::env::temp_dir().join(format!("nemoclaw-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.jsonl");
        let lines = [
            json!({"event": "sandbox_start", "sandbox": "a", "time": "1", "prev": "0"}),
            json!({"decision": "deny", "sandbox": "a", "time": "2", "prev": "x"}),
            json!({"decision": "deny", "sandbox": "b", "time": "3", "prev": "y"}),
            json!({"event": "daemon_start", "time": "4", "prev": "z"}),
            json!({"decision": "deny", "sandbox": "a", "time": "5", "prev": "w"}),
            json!({"event": "sandbox_stop", "sandbox": "a", "time": "6", "prev": "v"}),
        ];
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        std::fs::write(&log, text).unwrap();
        let last = json!({"decision": "deny", "sandbox": "a", "time": "2"});
        let missed = after(&log, "a", &last).unwrap();
        assert_eq!(
            missed,
            vec![
                json!({"decision": "deny", "sandbox": "a", "time": "5"}),
                json!({"event": "sandbox_stop", "sandbox": "a", "time": "6"}),
            ]
        );
        // Unknown last record: nothing is replayed.
        assert!(after(&log, "a", &json!({"time": "9"})).unwrap().is_empty());
        let mut seen = Seen::new(&missed);
        assert!(seen.take(&missed[1]));
        assert!(
            !seen.take(&missed[1]),
            "each replayed record drops one live copy"
        );
        assert!(!seen.take(&json!({"time": "7"})));
        // Rotated after the last record received: read on from the rotated file.
        std::fs::rename(&log, super::super::rotate::rotated_path(&log, 1)).unwrap();
        let newer = json!({"decision": "deny", "sandbox": "a", "time": "7", "prev": "u"});
        std::fs::write(&log, format!("{newer}\n")).unwrap();
        let missed = after(&log, "a", &last).unwrap();
        assert_eq!(missed.len(), 3);
        assert_eq!(
            missed[2],
            json!({"decision": "deny", "sandbox": "a", "time": "7"})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
