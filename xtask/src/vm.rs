use std::process::ExitCode;
use anyhow::Result;
#[derive(clap::Args)]
pub struct VmArgs {}
pub fn main(_args: &VmArgs) -> Result<ExitCode> { Ok(ExitCode::SUCCESS) }
