use std::process::ExitCode;
use anyhow::Result;
#[derive(clap::Args)]
pub struct TestArgs {}
pub fn main(_args: &TestArgs) -> Result<ExitCode> { Ok(ExitCode::SUCCESS) }
