//! `nemoclaw audit verify FILE [--head HASH]`

use std::path::PathBuf;

use anyhow::Context as _;

use crate::audit::chain;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the log's hash chain; report the first edited, removed or reordered record.
    Verify {
        file: PathBuf,
        /// The head hash recorded earlier: also detects records cut off the end.
        #[arg(long)]
        head: Option<String>,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Verify { file, head } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            match chain::verify(&text, head.as_deref()) {
                Ok((n, head)) => {
                    println!("{}: {n} records, chain intact; head {head}", file.display());
                    Ok(0)
                }
                Err(e) => {
                    println!("{}: {e}", file.display());
                    Ok(1)
                }
            }
        }
    }
}
