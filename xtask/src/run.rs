use std::process::ExitCode;
use anyhow::Result;
#[derive(clap::Args)]
pub struct RunArgs {}
pub fn main(_args: &RunArgs) -> Result<ExitCode> { Ok(ExitCode::SUCCESS) }
