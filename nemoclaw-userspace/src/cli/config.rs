//! `nemoclaw config check FILE`: validates the host configuration and prints the
//! effective settings (every default filled in).

use std::path::PathBuf;

use crate::config::NemoclawConfig;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (`/etc/nemoclaw/nemoclaw.yaml`) and print the
    /// effective settings; exit 1 with every error located when it is invalid.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

#[must_use]
pub fn run(cmd: &ConfigCommand) -> i32 {
    let ConfigCommand::Check { file } = cmd;
    match NemoclawConfig::load(file) {
        Ok(config) => {
            print!("{}", config.to_yaml());
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
