//! The raw-TCP client the end-to-end tests talk to the stand-in with.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nemoclaw_standin::Server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SLOW: Duration = Duration::from_millis(60);

pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("nemoclaw-standin-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

pub struct Standin {
    pub server: Server,
    pub record: PathBuf,
}

impl Standin {
    pub async fn start() -> Self {
        let record = temp_path("record.jsonl");
        let server = Server::start("127.0.0.1:0".parse().expect("address"), &record, SLOW)
            .await
            .expect("start the stand-in");
        Self { server, record }
    }

    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line is JSON"))
            .collect()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = TcpStream::connect(self.server.addr())
            .await
            .expect("connect");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: standin\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let start = Instant::now();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read reply");
        Reply::parse(&raw, start.elapsed())
    }

    pub async fn openai(&self, path: &str, body: &Value) -> Reply {
        let body = body.to_string();
        self.send(
            "POST",
            path,
            &[
                ("authorization", "Bearer sk-router"),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await
    }

    pub async fn anthropic(&self, body: &Value) -> Reply {
        let body = body.to_string();
        let headers = [
            ("x-api-key", "sk-ant-router"),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ];
        self.send("POST", "/v1/messages", &headers, body.as_bytes())
            .await
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended as framed (content-length reached, or the chunked terminator seen).
    pub complete: bool,
    pub elapsed: Duration,
}

impl Reply {
    pub fn parse(raw: &[u8], elapsed: Duration) -> Self {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("no header end");
        let head = std::str::from_utf8(&raw[..split]).expect("head is UTF-8");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .expect("status line")
            .split(' ')
            .nth(1)
            .expect("status code")
            .parse()
            .expect("status number");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let rest = &raw[split + 4..];
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let (body, complete) = if header("transfer-encoding").as_deref() == Some("chunked") {
            dechunk(rest)
        } else {
            let len: usize = header("content-length")
                .expect("content-length")
                .parse()
                .expect("content-length number");
            (rest.to_vec(), rest.len() == len)
        };
        Self {
            status,
            headers,
            body,
            complete,
            elapsed,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// The SSE events: (event name if any, data).
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        let text = std::str::from_utf8(&self.body).expect("SSE is UTF-8");
        assert!(
            text.is_empty() || text.ends_with("\n\n"),
            "events not terminated: {text:?}"
        );
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut event = None;
                let mut data = None;
                for line in e.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        assert!(data.is_none(), "one data line per event");
                        data = Some(v.to_owned());
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                (event, data.expect("event without data"))
            })
            .collect()
    }
}

pub fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..end])
                .expect("chunk size line")
                .trim(),
            16,
        )
        .expect("chunk size hex");
        rest = &rest[end + 2..];
        if size == 0 {
            return (body, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "SECRET-MARKER-4111"}]})
}

pub fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "SECRET-MARKER-4111"}]})
}
