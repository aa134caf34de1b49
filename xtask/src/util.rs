//! Helpers shared by the subcommands: workspace paths, running commands, exit codes.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use anyhow::{Context as _, Result, bail};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Where the VM's kernels, initramfs images and guest scripts live.
pub fn vm_dir() -> PathBuf {
    target_dir().join("nemoclaw-vm")
}

/// The `nemoclaw` binary built by [`build_userspace`].
pub fn nemoclaw_bin() -> PathBuf {
    target_dir().join("debug").join("nemoclaw")
}

/// A `cargo` command: the same cargo that runs xtask when there is one.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds the `nemoclaw` binary (debug), which the VM and the demo run.
pub fn build_userspace() -> Result<()> {
    run(cargo().args(["build", "--package", "nemoclaw-userspace"]))
        .context("building nemoclaw-userspace (use --no-build to skip)")
}

/// Human-readable form of a command, for error messages.
pub fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    let mut words = vec![program.to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs a command with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs a command, capturing its output; fails unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = capture(cmd)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command, capturing its output, whatever its exit status.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("could not start `{}`", describe(cmd)))
}

/// Whether this process runs as root (the owner of `/proc/self` is our effective uid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Converts a child's exit code into ours (codes outside 0..=255 become 1).
pub fn exit_code(code: i32) -> ExitCode {
    u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from)
}

/// Quotes a word for POSIX `sh`.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Removes terminal escape sequences (libtest colours `ok` when it sees a terminal).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Character set selection such as `ESC ( B`: one more byte.
            Some('(' | ')') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (days to a civil date as in Howard Hinnant's
/// `civil_from_days`).
pub fn utc_timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let (hour, minute) = (secs % 86_400 / 3600, secs % 3600 / 60);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::{shell_quote, utc_timestamp};

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/work/main"), "/work/main");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn utc_timestamps_are_civil_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_timestamp(1_700_000_000), "2023-11-14 22:13 UTC");
        // Leap days.
        assert_eq!(utc_timestamp(1_709_210_096), "2024-02-29 12:34 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_timestamp(1_796_598_000), "2026-12-06 23:00 UTC");
    }
}
