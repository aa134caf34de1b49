//! The control API: one JSON object per line over the daemon's Unix socket. A client sends
//! a [`Request`] and reads [`Response`] lines; `Events` keeps streaming until either side
//! closes.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

use crate::sandbox::user::SandboxUser;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/nemoclaw/nemoclaw.sock";
/// Where the daemon pins its programs, links and maps.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/nemoclaw";
/// The daemon's record of its sandboxes (root only), read back when it restarts.
pub const DEFAULT_STATE: &str = "/run/nemoclaw/state.json";
/// The audit log.
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/nemoclaw/audit.jsonl";
/// Members of this group may use the control socket besides root.
pub const CONTROL_GROUP: &str = "nemoclaw";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Creates a sandbox (a cgroup) under a policy file, compiled by the daemon.
    Create {
        /// Unique name; the daemon generates one when absent.
        name: Option<String>,
        policy: PathBuf,
        /// The user the sandboxed command will run as (for `~` in the policy).
        user: String,
        /// The command, for the audit log.
        command: Vec<String>,
        /// Destroy the sandbox when this connection closes (what `nemoclaw run` asks for).
        ephemeral: bool,
        /// Nameservers for its host-name rules (default: the daemon's `--resolv-conf`).
        #[serde(default)]
        resolv_conf: Option<PathBuf>,
        /// Seconds an address DNS stopped returning stays allowed (default: the daemon's).
        #[serde(default)]
        dns_grace: Option<u64>,
    },
    /// Kills what runs in a sandbox and removes it and its policy.
    Destroy {
        name: String,
        exit_code: Option<i32>,
    },
    /// Replaces a sandbox's policy atomically (a fresh slot, then one map update).
    Apply { name: String, policy: PathBuf },
    /// Re-reads every sandbox's policy file (what SIGHUP does).
    Reload,
    /// Lists sandboxes.
    List,
    /// Streams audit records as they are written (for one sandbox, or all). With `after`
    /// (a follower's last record, as streamed; needs `sandbox`), the sandbox's records
    /// written since that one are replayed from the audit log first.
    Events {
        sandbox: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<serde_json::Value>,
    },
    /// The privacy router asks whose connection this is: the sandbox with this cgroup id,
    /// and its compiled `inference:` rules (omitted when `known_sha256` is still current).
    Inference {
        cgroup_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        known_sha256: Option<String>,
    },
    /// The privacy router's record of one request, for the daemon's hash-chained trail.
    RecordInference { record: serde_json::Value },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub name: String,
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub slot: u32,
    pub policy: PathBuf,
    pub policy_sha256: String,
    pub user: String,
    pub enforcing: Vec<String>,
    /// Tasks in the sandbox now.
    pub tasks: usize,
}

/// The account a sandbox's commands run as, as the daemon resolved it when it compiled the
/// policy (`~` is this `home`): `nemoclaw run` starts the command with it, so the ids are
/// the ones the policy was compiled for and the client makes no user lookup of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

impl Account {
    #[must_use]
    pub fn of(user: &SandboxUser) -> Self {
        Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: user.groups.iter().map(|g| g.as_raw()).collect(),
            home: user.home.clone(),
        }
    }

    /// The account as the user `name` the sandbox was asked for.
    #[must_use]
    pub fn into_user(self, name: String) -> SandboxUser {
        SandboxUser {
            name,
            uid: Uid::from_raw(self.uid),
            gid: Gid::from_raw(self.gid),
            groups: self.groups.into_iter().map(Gid::from_raw).collect(),
            home: self.home,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Created {
        sandbox: SandboxInfo,
        /// What the user should know (e.g. socket kinds left open on this kernel).
        notices: Vec<String>,
        /// Absent from a daemon older than this field: the client looks the user up then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<Account>,
    },
    Destroyed {
        name: String,
    },
    Applied {
        name: String,
        old_sha256: String,
        new_sha256: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
    Reloaded {
        applied: Vec<String>,
        unchanged: Vec<String>,
        failed: Vec<String>,
    },
    Sandboxes {
        sandboxes: Vec<SandboxInfo>,
    },
    /// `Events` is subscribed: every record written from now on follows.
    Subscribed,
    /// One audit record (a JSON object), for `Events`.
    Event {
        record: serde_json::Value,
    },
    /// For `Inference`: the sandbox and its policy's hash; `rules` absent when the caller's
    /// copy is current or the policy has no `inference:` section (then `known_sha256`
    /// differs from `policy_sha256`, or was not given).
    Inference {
        sandbox: String,
        policy_sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<crate::policy::inference::InferenceRules>,
    },
    /// For `Inference`: no sandbox has that cgroup.
    NotASandbox,
    /// For `RecordInference`: written to the trail.
    Recorded,
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the NemoClaw daemon at {path}: {source}. Is `nemoclaw daemon` running (and are you root or in the `nemoclaw` group)?"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon sent something unreadable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("{0}")]
    Daemon(String),
}

/// A connection to the daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        Ok(())
    }

    /// The next response; a daemon-side error becomes [`ClientError::Daemon`].
    pub fn receive(&mut self) -> Result<Response, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_str(&line)? {
            Response::Error { message } => Err(ClientError::Daemon(message)),
            r => Ok(r),
        }
    }

    /// Sends `request` and waits for its one response.
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request)?;
        self.receive()
    }

    /// The underlying stream (e.g. to wait for it to close).
    #[must_use]
    pub fn stream(&self) -> &UnixStream {
        &self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let r = Request::Apply {
            name: "agent".into(),
            policy: "/etc/nemoclaw/p.yaml".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"op":"apply","name":"agent","policy":"/etc/nemoclaw/p.yaml"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn created_carries_the_account_and_reads_without_it() {
        let sandbox = SandboxInfo {
            name: "run-1".into(),
            cgroup: "/sys/fs/cgroup/nemoclaw/run-1".into(),
            cgroup_id: 7,
            slot: 1,
            policy: "/p.yaml".into(),
            policy_sha256: "ab".into(),
            user: "dev".into(),
            enforcing: vec!["filesystem".into()],
            tasks: 0,
        };
        let account = Account {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
            home: "/home/dev".into(),
        };
        let created = Response::Created {
            sandbox: sandbox.clone(),
            notices: vec![],
            account: Some(account.clone()),
        };
        let text = serde_json::to_string(&created).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), created);
        let user = account.clone().into_user("dev".into());
        assert_eq!(
            (user.uid.as_raw(), user.gid.as_raw(), &user.home),
            (1000, 1000, &PathBuf::from("/home/dev"))
        );
        assert_eq!(Account::of(&user), account);
        // A daemon from before the field: no account, and the client looks the user up.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old.as_object_mut().unwrap().remove("account");
        let Response::Created { account, .. } = serde_json::from_value(old).unwrap() else {
            panic!("not created");
        };
        assert_eq!(account, None);
    }
}
