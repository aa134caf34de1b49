//! `nemoclaw policy check|compile|explain|schema`: the spec stage from the command line,
//! no kernel and no root needed; and `policy apply`, which asks the daemon.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nemoclaw_common::exec::kernel_dev;

use crate::policy::{
    self, CompileEnv, CompileError, Compiled, Host, PolicyError, Ports, Query, explain::proto_of,
};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Parse, validate and compile a policy; print errors and warnings. Exit 1 on error.
    Check {
        file: PathBuf,
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Print the compiled map entries.
    Compile {
        file: PathBuf,
        /// Print JSON (deterministic: the same input gives the same bytes).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Say what the policy does to one operation and which rule decides.
    /// Exit 0 when allowed, 1 when denied.
    Explain {
        file: PathBuf,
        /// Executing a program (a path, or a name looked up in PATH).
        #[arg(long, group = "operation", value_name = "PATH")]
        exec: Option<PathBuf>,
        /// Opening a file (for reading, or for writing with --write).
        #[arg(long, group = "operation", value_name = "PATH")]
        open: Option<String>,
        /// With --open: open for writing.
        #[arg(long, requires = "open")]
        write: bool,
        /// Connecting to HOST:PORT (TCP, or UDP with --udp).
        #[arg(long, groups = ["operation", "network"], value_name = "HOST:PORT")]
        connect: Option<String>,
        /// Listening on ADDR:PORT (a TCP listen, or with --udp a UDP bind; port 0: an
        /// ephemeral port, for TCP a listen on a socket that was never bound).
        #[arg(long, groups = ["operation", "network"], value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// With --connect or --listen: UDP instead of TCP.
        #[arg(long, requires = "network")]
        udp: bool,
        /// With --connect: the connecting program (a name looked up in PATH, or a path), for
        /// rules with `binaries`.
        #[arg(long, requires = "connect", value_name = "PROGRAM")]
        binary: Option<PathBuf>,
        /// What the privacy router does with a request containing this category of data
        /// (`inference`): the action, its rule and the backend. Exit 1 when blocked.
        #[arg(long, group = "operation", value_name = "NAME")]
        category: Option<String>,
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Print the JSON Schema of the policy language (the content of policies/schema.json).
    Schema,
    /// Replace a running sandbox's policy through the daemon, atomically. Exit 1 if the
    /// policy is refused (nothing changes).
    Apply {
        sandbox: String,
        file: PathBuf,
        #[command(flatten)]
        socket: super::daemon::SocketArg,
    },
}

/// Whose sandbox the policy is compiled for.
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    /// Sandbox user: `$HOME`/`~` expand to their home directory.
    #[arg(long, conflicts_with = "home")]
    user: Option<String>,
    /// Home directory to expand `$HOME`/`~` to (instead of --user's).
    #[arg(long)]
    home: Option<PathBuf>,
}

impl EnvArgs {
    fn env(&self) -> anyhow::Result<CompileEnv> {
        if let Some(home) = &self.home {
            return Ok(CompileEnv::system(home));
        }
        if let Some(user) = &self.user {
            return Ok(CompileEnv::for_user(user)?);
        }
        match CompileEnv::for_uid(nix::unistd::getuid().as_raw()) {
            Ok(env) => Ok(env),
            Err(error) => match std::env::var_os("HOME") {
                Some(home) => Ok(CompileEnv::system(Path::new(&home))),
                None => Err(error.into()),
            },
        }
    }
}

/// Runs a `policy` subcommand; returns the process exit code.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<i32> {
    match cmd {
        PolicyCommand::Check { file, env } => Ok(check(&file, &env.env()?)),
        PolicyCommand::Compile { file, json, env } => compile(&file, json, &env.env()?),
        PolicyCommand::Explain {
            file,
            exec,
            open,
            write,
            connect,
            listen,
            udp,
            binary,
            category,
            env,
        } => {
            let env = env.env()?;
            let compiled = load_and_compile(&file, &env)?;
            if let Some(name) = category {
                let (code, text) = category_answer(&compiled, &file, &name)?;
                println!("{text}");
                return Ok(code);
            }
            let queries = if let Some(path) = exec {
                vec![exec_query(&path, &env)?]
            } else if let Some(path) = open {
                if !path.starts_with('/') {
                    bail!("--open needs an absolute path, got {path:?}");
                }
                vec![Query::Open {
                    path: policy::pattern::normalize(&path),
                    write,
                }]
            } else if let Some(target) = connect {
                let exe = match binary {
                    Some(program) => match exec_query(&program, &env)? {
                        Query::Exec { dev, ino, .. } => Some((dev, ino)),
                        _ => None,
                    },
                    None => None,
                };
                connect_queries(&target, udp, exe, &env)?
            } else if let Some(target) = listen {
                vec![listen_query(&target, udp)?]
            } else {
                bail!(
                    "say what to explain: --exec PATH, --open PATH [--write], --connect HOST:PORT, \
                     --listen ADDR:PORT or --category NAME"
                );
            };
            let mut code = 0;
            for query in &queries {
                let decision = policy::explain(&compiled.rules, query);
                println!(
                    "{}: {}",
                    describe_query(query),
                    decision.describe(&compiled.policy.rules)
                );
                if !decision.allowed() {
                    code = 1;
                }
            }
            Ok(code)
        }
        PolicyCommand::Schema => {
            print!("{}", policy::schema::generate());
            Ok(0)
        }
        PolicyCommand::Apply {
            sandbox,
            file,
            socket,
        } => super::daemon::apply(&socket.socket, &sandbox, &file),
    }
}

/// `explain --category NAME`: the exit code (1 when blocked) and the answer.
fn category_answer(compiled: &Compiled, file: &Path, name: &str) -> anyhow::Result<(i32, String)> {
    let Some(rules) = &compiled.inference else {
        bail!(
            "{}: no inference section, so model calls are not routed by category",
            file.display()
        );
    };
    let (action, text) = policy::explain_category(rules, name).map_err(anyhow::Error::msg)?;
    Ok((i32::from(action == policy::inference::Action::Block), text))
}

fn check(file: &Path, env: &CompileEnv) -> i32 {
    let policy = match policy::load(file) {
        Ok(policy) => policy,
        Err(error) => {
            print_error(&error.to_string());
            return 1;
        }
    };
    match policy::compile(&policy, env) {
        Ok(compiled) => {
            print_warnings(&compiled);
            let out = &compiled.policy;
            println!(
                "{}: ok: {} rules; {} exec, {} exec-dir, {} file exact, {} file prefix, {} file suffix, {} IPv4, {} IPv6, {} listen entries; {} warnings",
                file.display(),
                out.rules.len(),
                out.exec.len(),
                out.exec_prefix.len(),
                out.fs_exact.len(),
                out.fs_prefix.len(),
                out.fs_suffix.len(),
                out.net4.len(),
                out.net6.len(),
                out.listen.len(),
                compiled.warnings.len(),
            );
            0
        }
        Err(error) => {
            print_error(&error.to_string());
            1
        }
    }
}

fn print_error(text: &str) {
    for line in text.lines() {
        eprintln!("error: {line}");
    }
}

fn print_warnings(compiled: &Compiled) {
    for warning in &compiled.warnings {
        eprintln!("warning: {warning}");
    }
}

fn load_and_compile(file: &Path, env: &CompileEnv) -> anyhow::Result<Compiled> {
    let policy = policy::load(file).map_err(|error: PolicyError| anyhow::anyhow!("{error}"))?;
    let compiled =
        policy::compile(&policy, env).map_err(|error: CompileError| anyhow::anyhow!("{error}"))?;
    print_warnings(&compiled);
    Ok(compiled)
}

fn compile(file: &Path, json: bool, env: &CompileEnv) -> anyhow::Result<i32> {
    let compiled = load_and_compile(file, env)?;
    let out = &compiled.policy;
    if json {
        let text = serde_json::to_string_pretty(out).context("serialising the compiled policy")?;
        println!("{text}");
        return Ok(0);
    }
    println!("controls: {:#06b}", out.controls);
    println!("rules:");
    for rule in &out.rules {
        println!(
            "  {:>4}  {}:{}:{}  {}  {}",
            rule.id,
            rule.file.display(),
            rule.line,
            rule.column,
            rule.section,
            rule.text
        );
    }
    println!("exec (dev, ino):");
    for entry in &out.exec {
        println!(
            "  {:#x} {}  {} rule {}",
            entry.dev,
            entry.ino,
            action(entry.verdict.action),
            entry.verdict.rule_id
        );
    }
    for (path, verdict) in &out.exec_paths {
        println!(
            "  path {}  {} rule {}",
            path.display(),
            action(verdict.action),
            verdict.rule_id
        );
    }
    println!("exec dirs:");
    for entry in &out.exec_prefix {
        println!(
            "  {}  {} rule {}",
            entry.path,
            action(entry.verdict.action),
            entry.verdict.rule_id
        );
    }
    for (name, entries) in [
        ("files exact", &out.fs_exact),
        ("files prefix", &out.fs_prefix),
        ("files suffix", &out.fs_suffix),
    ] {
        println!("{name}:");
        for entry in entries {
            println!(
                "  {}  read: {} {}  write: {} {}",
                entry.path,
                action(entry.read.action),
                entry.read.rule_id,
                action(entry.write.action),
                entry.write.rule_id
            );
        }
    }
    print_network(out);
    if let Some(rules) = &compiled.inference {
        let text = serde_json::to_string(rules).context("serialising the inference rules")?;
        println!("inference (for the router): {text}");
    }
    Ok(0)
}

fn action(a: u32) -> &'static str {
    match a {
        nemoclaw_common::rule::ACTION_ALLOW => "allow",
        nemoclaw_common::rule::ACTION_DENY => "deny",
        _ => "-",
    }
}

/// The network part of `policy compile`'s text output.
fn print_network(out: &crate::policy::CompiledPolicy) {
    println!("network:");
    for b in &out.net_binaries {
        println!(
            "  binary {}: {} (dev {} ino {})",
            b.bin,
            b.path.display(),
            b.dev,
            b.ino
        );
    }
    for entry in &out.net4 {
        let addr = std::net::Ipv4Addr::from(entry.addr);
        println!(
            "  binary {} proto {} port {} {addr}/{}  {} rule {}",
            entry.bin,
            entry.proto,
            entry.port,
            entry.prefix_len,
            action(entry.verdict.action),
            entry.verdict.rule_id
        );
    }
    for entry in &out.net6 {
        let addr = std::net::Ipv6Addr::from(entry.addr);
        println!(
            "  binary {} proto {} port {} {addr}/{}  {} rule {}",
            entry.bin,
            entry.proto,
            entry.port,
            entry.prefix_len,
            action(entry.verdict.action),
            entry.verdict.rule_id
        );
    }
}

fn exec_query(path: &Path, env: &CompileEnv) -> anyhow::Result<Query> {
    let candidate = if path.components().count() == 1 && !path.is_absolute() {
        env.path
            .iter()
            .map(|dir| dir.join(path))
            .find(|p| p.is_file())
            .with_context(|| format!("{} not found in PATH", path.display()))?
    } else {
        path.to_path_buf()
    };
    let real = std::fs::canonicalize(&candidate)
        .with_context(|| format!("resolving {}", candidate.display()))?;
    let metadata = std::fs::metadata(&real).with_context(|| format!("stat {}", real.display()))?;
    let dev = kernel_dev(libc::major(metadata.dev()), libc::minor(metadata.dev()));
    Ok(Query::Exec {
        path: real,
        dev,
        ino: metadata.ino(),
    })
}

fn connect_queries(
    target: &str,
    udp: bool,
    exe: Option<(u64, u64)>,
    env: &CompileEnv,
) -> anyhow::Result<Vec<Query>> {
    let (host, ports) = policy::parse_host_port(target).map_err(anyhow::Error::msg)?;
    let port = match ports {
        Ports::Ranges(ranges) if ranges.len() == 1 && ranges[0].0 == ranges[0].1 => ranges[0].0,
        _ => bail!("--connect needs one port, got {target:?}"),
    };
    let addrs: Vec<IpAddr> = match host {
        Host::Net { addr, prefix_len } if prefix_len == if addr.is_ipv4() { 32 } else { 128 } => {
            vec![addr]
        }
        Host::Name(name) => env
            .resolver
            .resolve(&name)
            .map_err(|error| anyhow::anyhow!("resolving {name}: {error}"))?,
        _ => bail!("--connect needs one address or host name, got {target:?}"),
    };
    Ok(addrs
        .into_iter()
        .map(|addr| Query::Connect {
            addr,
            port,
            proto: proto_of(udp),
            exe,
        })
        .collect())
}

/// `--listen ADDR:PORT`: one address (IPv4, `[IPv6]`), one port (0 allowed).
fn listen_query(target: &str, udp: bool) -> anyhow::Result<Query> {
    let usage = || anyhow::anyhow!("--listen needs ADDR:PORT with one address, got {target:?}");
    let (host, port) = target.rsplit_once(':').ok_or_else(usage)?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--listen needs a port 0..=65535, got {target:?}"))?;
    let addr = match policy::parse_host(host).map_err(anyhow::Error::msg)? {
        Host::Net { addr, prefix_len } if prefix_len == if addr.is_ipv4() { 32 } else { 128 } => {
            addr
        }
        _ => return Err(usage()),
    };
    Ok(Query::Listen {
        addr,
        port,
        proto: proto_of(udp),
    })
}

fn describe_query(query: &Query) -> String {
    match query {
        Query::Exec { path, .. } => format!("exec {}", path.display()),
        Query::Open { path, write: false } => format!("open {path} (read)"),
        Query::Open { path, write: true } => format!("open {path} (write)"),
        Query::Connect {
            addr, port, proto, ..
        } => {
            let name = if *proto == nemoclaw_common::net::PROTO_UDP {
                "udp"
            } else {
                "tcp"
            };
            match addr {
                IpAddr::V4(v4) => format!("connect {name} {v4}:{port}"),
                IpAddr::V6(v6) => format!("connect {name} [{v6}]:{port}"),
            }
        }
        Query::Listen { addr, port, proto } => {
            let name = if *proto == nemoclaw_common::net::PROTO_UDP {
                "udp bind"
            } else {
                "tcp listen"
            };
            match addr {
                IpAddr::V4(v4) => format!("{name} {v4}:{port}"),
                IpAddr::V6(v6) => format!("{name} [{v6}]:{port}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: PolicyCommand,
    }

    #[test]
    fn explain_category_flag_parses_and_answers() {
        use clap::Parser as _;

        let parsed = Cli::try_parse_from(["nemoclaw", "explain", "p.yaml", "--category", "email"])
            .expect("parses");
        assert!(matches!(
            parsed.cmd,
            PolicyCommand::Explain { category: Some(ref name), .. } if name == "email"
        ));
        // One operation at a time.
        assert!(
            Cli::try_parse_from([
                "nemoclaw",
                "explain",
                "p.yaml",
                "--category",
                "email",
                "--open",
                "/etc/passwd",
            ])
            .is_err()
        );

        let file = Path::new("policies/x.yaml");
        let text = "network:\n  allow: []\ninference:\n  cloud: {backend: openai, model: m}\n  \
                    categories:\n    email: allow\n";
        let parsed = policy::parse_str(file, text).expect("parses");
        let compiled =
            policy::compile(&parsed, &CompileEnv::offline("/home/u".into())).expect("compiles");
        let (code, answer) = category_answer(&compiled, file, "email").expect("answers");
        assert_eq!(code, 0);
        assert_eq!(
            answer,
            "category email: allow (rule policies/x.yaml:6), served by openai/m"
        );
        let (code, answer) = category_answer(&compiled, file, "secret").expect("answers");
        assert_eq!(code, 1);
        assert!(
            answer.starts_with("category secret: block (not listed"),
            "{answer}"
        );
        assert!(category_answer(&compiled, file, "nope").is_err());

        let parsed = policy::parse_str(file, "network: {}\n").expect("parses");
        let compiled =
            policy::compile(&parsed, &CompileEnv::offline("/home/u".into())).expect("compiles");
        assert!(category_answer(&compiled, file, "email").is_err());
    }
}
