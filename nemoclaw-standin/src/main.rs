//! `nemoclaw-standin`: the recording cloud stand-in, as a process for tests and the demo.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nemoclaw_standin::{DEFAULT_SLOW_INTERVAL, Recorder, State, serve};
use tokio::net::TcpListener;

/// A recording stand-in for the `OpenAI` and Anthropic APIs: real wire formats, fixed
/// replies (the `echo`, `echo-tool` and `inject` models echo the request instead), every
/// request appended to the record file as one JSON line.
#[derive(Debug, Parser)]
#[command(name = "nemoclaw-standin", version)]
struct Args {
    /// The address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The file each request is appended to (created if missing).
    #[arg(long)]
    record: PathBuf,
    /// A file to write the bound address to once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Milliseconds between streamed parts for the `fault-slow` model.
    #[arg(long)]
    slow_interval_ms: Option<u64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let recorder = Recorder::open(&args.record)
        .with_context(|| format!("opening record file {}", args.record.display()))?;
    let slow = args
        .slow_interval_ms
        .map_or(DEFAULT_SLOW_INTERVAL, Duration::from_millis);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &args.ready_file {
        // Written whole then renamed, so a reader never sees a partial address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{addr}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing ready file {}", path.display()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    serve(listener, Arc::new(State::new(recorder, slow))).await
}
