//! `policies/schema.json`: a JSON Schema for editors, generated from these types.
//!
//! These types mirror the YAML as written (string or long form, `"*"` or a list), which is
//! what an editor completes and checks; the parser (`parse.rs`) reads the same shapes into
//! the typed [`super::Policy`] with located errors. A test keeps the two in step by parsing
//! every example policy, and another fails when `policies/schema.json` is stale:
//! regenerate it with `nemoclaw policy schema > policies/schema.json`.
// The mirror types only exist to be described; nothing constructs them.
#![expect(dead_code, reason = "schema-only types, never constructed")]

use schemars::JsonSchema;

/// A sandbox policy for nemoclaw. Deny by default for every section that is present; an
/// explicit deny beats any allow; an absent section leaves that control unrestricted.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "NemoClaw policy")]
struct PolicyFile {
    /// Schema version; absent means 1.
    #[schemars(range(min = 1, max = 1))]
    version: Option<u32>,
    /// A short name for the policy.
    name: Option<String>,
    /// What the policy is for.
    description: Option<String>,
    /// Outbound connections (TCP connect, UDP send) and inbound (bind, listen).
    network: Option<Network>,
    /// File access by path.
    filesystem: Option<Filesystem>,
    /// Which programs may be executed.
    process: Option<Process>,
    /// `deny` blocks setuid/setgid gains, capabilities and other privilege changes.
    privilege_escalation: Option<PrivilegeEscalation>,
    /// How the privacy router routes model calls by what they contain. Needs a `network`
    /// section; the router's address is allowed in it, and model-provider endpoints may not
    /// be (unless listed in `direct`).
    inference: Option<Inference>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Inference {
    /// `IP:PORT` where the sandbox reaches the router (loopback or a host address);
    /// default `127.0.0.1:8089`.
    router: Option<String>,
    /// The backend that serves requests (a name in the router's configuration).
    cloud: InferenceBackend,
    /// The backend that serves requests with a `local` category; required if any action is
    /// `local`.
    local: Option<InferenceBackend>,
    /// The action for categories not listed; default `block`.
    default: Option<InferenceRule>,
    /// Category name -> action: a built-in category (`email`, `phone`, `payment_card`,
    /// `iban`, `us_ssn`, `ip_address`, `date_of_birth`, `secret`, `code`) or a custom name
    /// defined under `detect`.
    categories: Option<std::collections::BTreeMap<String, InferenceRule>>,
    /// Custom categories and the proprietary source trees.
    detect: Option<InferenceDetect>,
    /// `HOST:PORT` model-provider endpoints that `network.allow` may still list (the
    /// sandbox then reaches them without the router).
    direct: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct InferenceBackend {
    /// A backend name in the router's configuration.
    #[schemars(length(min = 1))]
    backend: String,
    /// The model to ask it for; absent: the caller's.
    #[schemars(length(min = 1))]
    model: Option<String>,
}

/// An action, or `{action, restore, injected}`.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum InferenceRule {
    Short(InferenceAction),
    Long(InferenceRuleLong),
}

/// `{action, restore, injected}`: `restore` only with `action: mask`.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend(
        "if" = {"properties": {"action": {"not": {"const": "mask"}}}},
        "then" = {"not": {"required": ["restore"]}}
    )
)]
struct InferenceRuleLong {
    action: InferenceAction,
    /// `mask` only: whether masked values are put back in replies; default `true`, `false`
    /// for `secret`.
    restore: Option<bool>,
    /// What a reply's value of the category that the request did not carry gets; default
    /// `pass` for `allow`, `mask` for the other actions.
    injected: Option<InferenceOnReply>,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum InferenceAction {
    /// Forward to the cloud backend as it is.
    Allow,
    /// Forward to the cloud backend with each value replaced by a placeholder, restored in
    /// the reply.
    Mask,
    /// Send the whole request to the local backend.
    Local,
    /// Refuse the request.
    Block,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum InferenceOnReply {
    /// Masked (never restored).
    Mask,
    /// As the backend sent it.
    Pass,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct InferenceDetect {
    /// Custom category name -> words or phrases (matched whole, case-insensitively).
    keywords: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Custom category name -> a pattern in the syntax of the Rust `regex` crate.
    patterns: Option<std::collections::BTreeMap<String, String>>,
    /// Proprietary source trees: `/dir/**` or a file, absolute or under `$HOME`/`~`.
    code: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Network {
    /// Destinations that may be reached.
    allow: Option<Vec<NetEntry>>,
    /// `"*"` (the default: everything not allowed is denied) or destinations to deny
    /// even when an allow matches.
    deny: Option<NetDeny>,
    /// Ports the sandbox may bind and listen on at every address (`0.0.0.0`, `::`, the
    /// host's addresses). Loopback (`127.0.0.0/8`, `::1`) is always open on every port;
    /// absent or empty: loopback only.
    listen: Option<Vec<ListenEntry>>,
}

#[derive(JsonSchema)]
#[schemars(untagged)]
enum ListenEntry {
    /// A port or a `FIRST-LAST` range, TCP and UDP.
    Port(Port),
    /// Every port (ephemeral ones included), TCP and UDP.
    All(AllMarker),
    Long(ListenLong),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ListenLong {
    /// Ports or `FIRST-LAST` ranges; absent means any port.
    ports: Option<Vec<Port>>,
    /// Default `any`.
    protocol: Option<NetProtocol>,
}

#[derive(JsonSchema)]
#[schemars(untagged)]
enum NetDeny {
    /// Everything not allowed is denied (the default).
    All(AllMarker),
    List(Vec<NetEntry>),
}

#[derive(JsonSchema)]
enum AllMarker {
    #[schemars(rename = "*")]
    All,
}

#[derive(JsonSchema)]
#[schemars(untagged)]
enum NetEntry {
    /// `HOST:PORT`: HOST is a DNS name, IPv4, `[IPv6]`, a CIDR or `*`; PORT is a number,
    /// `FIRST-LAST` or `*`.
    #[schemars(extend("pattern" = r"^(\[[0-9A-Fa-f:.]+(/[0-9]+)?\]|[^:\[\]]+):([0-9]+(-[0-9]+)?|\*)$"))]
    Short(String),
    Long(NetLong),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct NetLong {
    /// DNS name, IPv4, IPv6 (bare or in brackets), CIDR or `*`.
    host: String,
    /// Ports or `FIRST-LAST` ranges; absent means any port.
    ports: Option<Vec<Port>>,
    /// Default `any`.
    protocol: Option<NetProtocol>,
    /// The entry applies only to these executables: program names (looked up in PATH) or
    /// absolute paths, matched by (device, inode). Absent: every executable.
    binaries: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[schemars(untagged)]
enum Port {
    #[schemars(extend("minimum" = 1, "maximum" = 65535))]
    Number(u16),
    #[schemars(extend("pattern" = r"^[0-9]+(-[0-9]+)?$"))]
    Range(String),
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum NetProtocol {
    Tcp,
    Udp,
    Any,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Filesystem {
    /// Read and write (a long-form entry may narrow to `access: read`).
    allow: Option<Vec<FsEntry>>,
    /// Read only; writes are denied even where an allow matches.
    read_only: Option<Vec<FsEntry>>,
    /// Denied, even where an allow matches (a long-form entry may narrow to `access: write`).
    deny: Option<Vec<FsEntry>>,
}

#[derive(JsonSchema)]
#[schemars(untagged)]
enum FsEntry {
    /// `/exact/path`, `/dir/**`, `/**`, `**/name`, `**/*.ext`; may start with `$HOME` or `~`.
    Short(String),
    Long(FsLong),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct FsLong {
    path: String,
    access: Option<FsAccess>,
}

#[derive(JsonSchema)]
enum FsAccess {
    #[schemars(rename = "read")]
    Read,
    #[schemars(rename = "write")]
    Write,
    #[schemars(rename = "read-write")]
    ReadWrite,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Process {
    /// Program names (resolved through PATH), absolute paths, or `/dir/**`.
    allow: Option<Vec<String>>,
    /// Same forms; a deny by name covers every match in PATH.
    deny: Option<Vec<String>>,
    /// `/dir/**` directories whose files may be mapped executable (shared libraries);
    /// replaces the default /lib, /lib64, /usr/lib, /usr/lib64, /usr/local/lib.
    libraries: Option<Vec<String>>,
    /// `deny`: no executable anonymous memory, no writable and executable mapping, and no
    /// executable file mapping whose private pages were written (JIT runtimes such as V8
    /// stop working). `allow` (the default) leaves them alone.
    anonymous_exec: Option<AnonymousExec>,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum AnonymousExec {
    Deny,
    Allow,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum PrivilegeEscalation {
    Deny,
    Allow,
}

/// The schema as pretty JSON with a trailing newline: the content of `policies/schema.json`.
#[must_use]
pub fn generate() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    let mut text = serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}
