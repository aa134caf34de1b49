//! The host configuration, `/etc/nemoclaw/nemoclaw.yaml`: where the daemon keeps things,
//! the audit trail's files, the HTTP endpoint for `/healthz` and `/metrics`, and the
//! persistent sandboxes the daemon keeps. Every key is optional (the defaults are the
//! [`Default`] values below); unknown keys and bad values are errors naming
//! `file:line:column` and the key path, like a policy's (`parse.rs`, on the located YAML
//! tree of `policy/yaml.rs`).

mod parse;

pub use parse::cgroup_root;
#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::daemon::protocol::{
    CONTROL_GROUP, DEFAULT_AUDIT_LOG, DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE,
};
use crate::policy::{Diagnostic, Diagnostics};

/// Where `nemoclaw daemon` reads its configuration when `--config` is not given (all
/// defaults when the file does not exist).
pub const DEFAULT_CONFIG: &str = "/etc/nemoclaw/nemoclaw.yaml";
/// Largest configuration file accepted.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole configuration, every value filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NemoclawConfig {
    pub daemon: DaemonSettings,
    pub audit: AuditSettings,
    pub http: HttpSettings,
    pub router: RouterSettings,
    pub sandboxes: Vec<PersistentSandbox>,
}

/// `daemon:` where the daemon keeps things.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DaemonSettings {
    /// The control socket (mode 0660).
    pub socket: PathBuf,
    /// The control socket's group, where it exists (else root only).
    pub socket_group: String,
    /// Where programs, links and maps are pinned (on a bpffs).
    pub pin_dir: PathBuf,
    /// The daemon's record of its sandboxes.
    pub state: PathBuf,
    /// The sandboxes' parent cgroup (`nemoclaw*`).
    pub cgroup_root: String,
    /// Nameservers for host-name rules.
    pub resolv_conf: PathBuf,
    /// Seconds an address DNS stopped returning stays allowed.
    pub dns_grace: u64,
    /// Re-apply a sandbox's policy when its file is rewritten.
    pub watch_policies: bool,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            socket: DEFAULT_SOCKET.into(),
            socket_group: CONTROL_GROUP.to_owned(),
            pin_dir: DEFAULT_PIN_DIR.into(),
            state: DEFAULT_STATE.into(),
            cgroup_root: crate::sandbox::cgroup::DAEMON_ROOT.to_owned(),
            resolv_conf: "/etc/resolv.conf".into(),
            dns_grace: 30,
            watch_policies: true,
        }
    }
}

/// `audit:` the trail's files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditSettings {
    /// The hash-chained JSON-lines log.
    pub log: PathBuf,
    /// Rotate when the log reaches this many bytes; 0: never.
    pub rotate_size: u64,
    /// Rotated files kept (`audit.jsonl.1` .. `.N`).
    pub keep: u32,
    /// Where OCSF 1.x JSON lines are written beside the log, if anywhere.
    pub ocsf: Option<PathBuf>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            log: DEFAULT_AUDIT_LOG.into(),
            rotate_size: 64 << 20,
            keep: 10,
            ocsf: None,
        }
    }
}

impl AuditSettings {
    /// What the audit sink takes of these settings (everything but the log's path).
    #[must_use]
    pub fn sink_options(&self) -> crate::audit::SinkOptions {
        crate::audit::SinkOptions {
            rotate_size: self.rotate_size,
            keep: self.keep,
            ocsf: self.ocsf.clone(),
        }
    }
}

/// `http:` the health and metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpSettings {
    /// `/healthz` and `/metrics`; `None`: off.
    pub listen: Option<SocketAddr>,
}

/// The default HTTP address: loopback, Prometheus' port range.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: Some(DEFAULT_HTTP_LISTEN),
        }
    }
}

/// `router:` the privacy router the health check looks at when it runs as its own service
/// (`nemoclaw-router.service`); a router the daemon runs as its child is watched directly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouterSettings {
    /// Its listen address (`listen` in `router.yaml`); `None`: no router configured.
    pub listen: Option<SocketAddr>,
}

/// One of `sandboxes:`, a sandbox the daemon keeps (created at start, re-applied on reload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersistentSandbox {
    /// `[a-z0-9-]+`.
    pub name: String,
    /// The policy file (absolute).
    pub policy: PathBuf,
    /// The user commands run as (for `~` in the policy).
    pub user: String,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Carries the I/O error in its message, not as a `source` (said once in a chain).
    #[error("{}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: larger than {MAX_CONFIG_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    /// YAML syntax, an unknown key or a bad value; one located line per problem.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// Every located problem (empty for I/O errors).
    #[must_use]
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid(Diagnostics(list)) => list,
            Self::Read { .. } | Self::TooLarge { .. } => &[],
        }
    }
}

impl NemoclawConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text, path)
    }

    /// `path` when given; else [`DEFAULT_CONFIG`] when it exists, else every default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_CONFIG).exists() => Self::load(Path::new(DEFAULT_CONFIG)),
            None => Ok(Self::default()),
        }
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        parse::config(text, file).map_err(|errors| ConfigError::Invalid(Diagnostics(errors)))
    }

    /// The effective settings as YAML (what `nemoclaw config check` prints).
    #[must_use]
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

/// Parses a size: bytes, or a number with `KiB`, `MiB` or `GiB` (`64MiB`, `1 GiB`, `0`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a number with KiB, MiB or GiB)"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" | "K" => 10,
        "MiB" | "M" => 20,
        "GiB" | "G" => 30,
        other => return Err(format!("unknown size unit {other:?}: use KiB, MiB or GiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}
