//! The router's host configuration (`router.yaml`): where it listens, its limits, and the
//! backends a policy may name, with their credentials. Sandboxes never see this file: a
//! policy names a backend, the router holds its URL and key.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `nemoclaw router` reads its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nemoclaw/router.yaml";

/// Which API a backend speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI's (`/chat/completions`, `/responses`, `/embeddings` under the base URL):
    /// OpenAI, NVIDIA, Ollama, vLLM, llama.cpp, NIM, any OpenAI-compatible server.
    Openai,
    /// Anthropic's (`/v1/messages`).
    Anthropic,
}

impl Api {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Api::Openai => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

/// One backend as written in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendEntry {
    api: Api,
    /// Base URL: `https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`,
    /// `https://api.anthropic.com`.
    url: String,
    /// True for a backend on this machine or network (what `local` routes to).
    #[serde(default)]
    local: bool,
    /// Environment variable holding the API key.
    key_env: Option<String>,
    /// File holding the API key (must not be readable by group or others).
    key_file: Option<PathBuf>,
}

/// The configuration file as written; every key has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default = "default_header_timeout")]
    header_timeout_secs: u64,
    #[serde(default = "default_body_timeout")]
    body_timeout_secs: u64,
    #[serde(default = "default_upstream_timeout")]
    upstream_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default)]
    backends: BTreeMap<String, BackendEntry>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8089))
}
fn default_max_body() -> usize {
    10 << 20
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_upstream_timeout() -> u64 {
    600
}
fn default_max_connections() -> usize {
    1024
}

/// A backend, ready to call.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub api: Api,
    /// The base URL without a trailing `/`.
    pub url: String,
    pub local: bool,
    /// The key injected upstream (`Authorization: Bearer` or `x-api-key`); never logged.
    pub key: Option<Secret>,
}

/// A credential: shown as `***` by `Debug`, so it cannot reach a log by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("api", &self.api)
            .field("url", &self.url)
            .field("local", &self.local)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct RouterConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// A client must send its request head within this.
    pub header_timeout: Duration,
    /// ... and its body within this.
    pub body_timeout: Duration,
    /// An upstream must answer (headers) within this, and not pause longer between chunks.
    pub upstream_timeout: Duration,
    pub max_connections: usize,
    pub backends: BTreeMap<String, Backend>,
}

/// A configuration that cannot be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Carries the I/O error in its message, not as a `source` (said once in a chain).
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl RouterConfig {
    /// Reads and validates `path`; `env` looks up `key_env` variables.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path, env)
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(
        text: &str,
        origin: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let file: File = if text.trim().is_empty() {
            serde_yaml::from_str("{}")
        } else {
            serde_yaml::from_str(text)
        }
        .map_err(|e| invalid(e.to_string()))?;
        if file.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes: must be above 0".into()));
        }
        if file.max_connections == 0 {
            return Err(invalid("max_connections: must be above 0".into()));
        }
        for (key, secs) in [
            ("header_timeout_secs", file.header_timeout_secs),
            ("body_timeout_secs", file.body_timeout_secs),
            ("upstream_timeout_secs", file.upstream_timeout_secs),
        ] {
            if secs == 0 {
                return Err(invalid(format!("{key}: must be above 0")));
            }
        }
        let mut backends = BTreeMap::new();
        for (name, entry) in file.backends {
            let at = |m: String| invalid(format!("backends.{name}: {m}"));
            let url = entry.url.trim_end_matches('/').to_owned();
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.parse::<hyper::Uri>().is_err() {
                return Err(at(format!(
                    "url `{}` is not an http:// or https:// URL",
                    entry.url
                )));
            }
            let key = match (&entry.key_env, &entry.key_file) {
                (Some(_), Some(_)) => {
                    return Err(at("give `key_env` or `key_file`, not both".into()));
                }
                (Some(var), None) => Some(Secret(env(var).filter(|v| !v.is_empty()).ok_or_else(
                    || {
                        at(format!(
                            "key_env: the environment variable `{var}` is not set"
                        ))
                    },
                )?)),
                (None, Some(file)) => Some(Secret(read_key_file(file).map_err(at)?)),
                (None, None) => None,
            };
            backends.insert(
                name.clone(),
                Backend {
                    name,
                    api: entry.api,
                    url,
                    local: entry.local,
                    key,
                },
            );
        }
        Ok(Self {
            listen: file.listen,
            max_body_bytes: file.max_body_bytes,
            header_timeout: Duration::from_secs(file.header_timeout_secs),
            body_timeout: Duration::from_secs(file.body_timeout_secs),
            upstream_timeout: Duration::from_secs(file.upstream_timeout_secs),
            max_connections: file.max_connections,
            backends,
        })
    }
}

/// A key file's first line; refused when group or others may read it.
fn read_key_file(path: &Path) -> Result<String, String> {
    let meta = fs::metadata(path).map_err(|e| format!("key_file {}: {e}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "key_file {}: mode {:o} lets others read the key; chmod 600 it",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| format!("key_file {}: {e}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return Err(format!("key_file {}: empty", path.display()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_file_takes_every_default() {
        let c = RouterConfig::parse("", Path::new("r.yaml"), &no_env).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.max_body_bytes, 10 << 20);
        assert!(c.backends.is_empty());
    }

    #[test]
    fn backends_with_keys_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        fs::write(&key, "sk-file-key\n").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "backends:\n  local: {{api: openai, url: 'http://127.0.0.1:8080/v1/', local: true}}\n  \
             openai: {{api: openai, url: 'https://api.openai.com/v1', key_env: OPENAI_API_KEY}}\n  \
             anthropic: {{api: anthropic, url: 'https://api.anthropic.com', key_file: {}}}\n",
            key.display()
        );
        let env = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-env".to_owned());
        let c = RouterConfig::parse(&text, Path::new("r.yaml"), &env).unwrap();
        assert_eq!(c.backends["local"].url, "http://127.0.0.1:8080/v1");
        assert!(c.backends["local"].local);
        assert_eq!(
            c.backends["openai"].key.as_ref().unwrap().expose(),
            "sk-env"
        );
        assert_eq!(
            c.backends["anthropic"].key.as_ref().unwrap().expose(),
            "sk-file-key"
        );
        assert!(!format!("{c:?}").contains("sk-"), "keys never in Debug");
    }

    #[test]
    fn bad_configurations_say_where() {
        let err = |text: &str| {
            RouterConfig::parse(text, Path::new("r.yaml"), &no_env)
                .unwrap_err()
                .to_string()
        };
        assert!(err("lisen: 1").contains("unknown field `lisen`"));
        assert!(err("backends:\n  x: {api: openai, url: 'ftp://h'}").contains("backends.x: url"));
        assert!(
            err("backends:\n  x: {api: openai, url: 'https://h', key_env: NOPE}")
                .contains("`NOPE` is not set")
        );
        assert!(err("backends:\n  x: {api: gemini, url: 'https://h'}").contains("unknown variant"));
        assert!(err("max_body_bytes: 0").contains("max_body_bytes"));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        fs::write(&key, "sk-x\n").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "backends:\n  o: {{api: openai, url: 'https://h', key_file: {}}}",
            key.display()
        );
        let e = RouterConfig::parse(&text, Path::new("r.yaml"), &no_env).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
