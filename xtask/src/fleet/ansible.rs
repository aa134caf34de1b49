//! Driving the fleet with Ansible: the inventory of the running VMs, an `ansible.cfg` that
//! finds the repository's collection (`ansible/`, installed as `nemoclaw.fleet` through a
//! symlink), playbook runs with their PLAY RECAP parsed, and `ansible-lint`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use super::machine::{Machine, ssh_options};
use crate::util;

/// The collection's directory in the repository.
pub fn collection_dir() -> PathBuf {
    util::workspace_root().join("ansible")
}

/// The inventory and configuration of one run.
pub struct Fleet {
    dir: PathBuf,
    inventory: PathBuf,
    config: PathBuf,
}

/// One host's line of the PLAY RECAP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub rescued: u32,
}

/// What a playbook run did: its exit code, each host's recap, everything it printed.
pub struct PlaybookRun {
    pub code: i32,
    pub recap: BTreeMap<String, Recap>,
    pub output: String,
}

impl Fleet {
    /// Writes the inventory (one group `fleet`, hosts in boot order), `ansible.cfg`, and the
    /// collection path under `dir`.
    pub fn write(dir: &Path, machines: &[Machine], private_key: &Path) -> Result<Self> {
        let mut inventory = String::from("[fleet]\n");
        for m in machines {
            let _ = writeln!(
                inventory,
                "{} ansible_host=127.0.0.1 ansible_port={}",
                m.name, m.ssh_port
            );
        }
        let ssh_args = ssh_options(private_key)
            .iter()
            .skip(2) // the key: ansible_ssh_private_key_file
            .map(|a| util::shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            inventory,
            "\n[fleet:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n\
             ansible_ssh_private_key_file={}\nansible_ssh_common_args=\"{ssh_args}\"\n",
            private_key.display()
        );
        let inventory_path = dir.join("inventory.ini");
        std::fs::write(&inventory_path, inventory).context("writing the inventory")?;

        // ansible_collections/nemoclaw/fleet -> the repository's ansible/.
        let namespace = dir.join("collections/ansible_collections/nemoclaw");
        std::fs::create_dir_all(&namespace)
            .with_context(|| format!("creating {}", namespace.display()))?;
        let link = namespace.join("fleet");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(collection_dir(), &link)
            .with_context(|| format!("linking {}", link.display()))?;

        // SSH multiplexing and pipelining: under emulation each new login costs seconds.
        // The control sockets need a short path (108 bytes at most).
        let control_dir = PathBuf::from(format!("/tmp/nemoclaw-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&control_dir)
            .with_context(|| format!("creating {}", control_dir.display()))?;
        let config = format!(
            "[defaults]\ncollections_path = {}\nhost_key_checking = False\nforks = 10\n\
             retry_files_enabled = False\ninterpreter_python = /usr/bin/python3\n\
             [ssh_connection]\npipelining = True\ncontrol_path_dir = {}\n\
             ssh_args = -o ControlMaster=auto -o ControlPersist=300s\n",
            dir.join("collections").display(),
            control_dir.display()
        );
        let config_path = dir.join("ansible.cfg");
        std::fs::write(&config_path, config).context("writing ansible.cfg")?;
        Ok(Self {
            dir: dir.to_owned(),
            inventory: inventory_path,
            config: config_path,
        })
    }

    /// Runs the collection's rollout playbook with `vars` (a YAML file of extra variables),
    /// in check mode with diffs when `check`. Prints its output as it comes.
    pub fn rollout(&self, vars: &Path, check: bool) -> Result<PlaybookRun> {
        let mut cmd = Command::new("ansible-playbook");
        cmd.current_dir(&self.dir)
            .env("ANSIBLE_CONFIG", &self.config)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .arg("-i")
            .arg(&self.inventory)
            .arg(collection_dir().join("playbooks/rollout.yml"))
            .arg("-e")
            .arg(format!("@{}", vars.display()));
        if check {
            cmd.args(["--check", "--diff"]);
        }
        let mut output = String::new();
        let code = stream(&mut cmd, &mut output)?;
        Ok(PlaybookRun {
            code,
            recap: parse_recap(&output),
            output,
        })
    }
}

/// `ansible-lint` over the collection (its configuration is `ansible/.ansible-lint`).
pub fn lint() -> Result<()> {
    util::run(
        Command::new("ansible-lint")
            .current_dir(collection_dir())
            .env("ANSIBLE_NOCOLOR", "1"),
    )
    .context("ansible-lint over ansible/")
}

/// Runs `cmd`, printing and collecting its stdout line by line; its exit code.
fn stream(cmd: &mut Command, output: &mut String) -> Result<i32> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", util::describe(cmd)))?;
    let stdout = child.stdout.take().context("stdout not captured")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading ansible-playbook's output")?;
        println!("  | {line}");
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().context("waiting for ansible-playbook")?;
    Ok(status.code().unwrap_or(-1))
}

/// The PLAY RECAP's lines: `host : ok=3 changed=1 unreachable=0 failed=0 ... rescued=0 ...`.
fn parse_recap(output: &str) -> BTreeMap<String, Recap> {
    let mut recap = BTreeMap::new();
    let Some(start) = output.rfind("PLAY RECAP") else {
        return recap;
    };
    for line in output[start..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let mut r = Recap::default();
        for field in counts.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else { continue };
            match key {
                "ok" => r.ok = value,
                "changed" => r.changed = value,
                "unreachable" => r.unreachable = value,
                "failed" => r.failed = value,
                "rescued" => r.rescued = value,
                _ => {}
            }
        }
        recap.insert(host.trim().to_owned(), r);
    }
    recap
}

#[cfg(test)]
mod tests {
    use super::{Recap, parse_recap};

    #[test]
    fn reads_the_play_recap() {
        let out = "TASK [x] ***\nok: [fleet1]\n\nPLAY RECAP *********\n\
                   fleet1                     : ok=12   changed=2    unreachable=0    failed=1    skipped=3    rescued=1    ignored=0\n\
                   fleet2                     : ok=9    changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0\n";
        let recap = parse_recap(out);
        assert_eq!(
            recap["fleet1"],
            Recap {
                ok: 12,
                changed: 2,
                unreachable: 0,
                failed: 1,
                rescued: 1
            }
        );
        assert_eq!(recap["fleet2"].changed, 0);
        assert_eq!(recap.len(), 2);
        assert!(parse_recap("no recap").is_empty());
    }
}
