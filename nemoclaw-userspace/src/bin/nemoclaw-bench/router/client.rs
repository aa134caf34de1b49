//! The bench's HTTP/1.1 client: raw requests over one keep-alive TCP connection, so that
//! nothing but the systems measured (and the kernel's loopback) is in the timings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// How long a read may wait (`LiteLLM` under 64 clients included).
const READ_TIMEOUT: Duration = Duration::from_mins(1);

/// A chat-completions request for `model` with one user message, with `key` as the bearer
/// token (the same bytes go to every system).
pub fn chat_request(model: &str, prompt: &str, stream: bool, key: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {key}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One answered request.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// From the first byte written to the last byte of the reply read.
    pub elapsed: Duration,
    /// For an event stream: from the first byte written until the event with the first
    /// text content was read (the read that completed it; events are a few hundred bytes).
    pub first_content: Option<Duration>,
}

/// A keep-alive HTTP/1.1 connection that sends one request and reads one reply at a time
/// (`Content-Length` or chunked).
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request` and reads the whole reply, whatever its status.
    pub fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Reply> {
        let started = Instant::now();
        self.stream.get_mut().write_all(request)?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP status line: {:?}", line.trim()))?;
        let (mut length, mut chunked, mut events) = (0, false, false);
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse()?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("content-type") {
                    events = value.starts_with("text/event-stream");
                }
            }
        }
        let mut body = Vec::new();
        let mut first_content = None;
        let mut scanned = 0;
        let mut note = |body: &[u8]| {
            if events && first_content.is_none() && has_text_event(body, &mut scanned) {
                first_content = Some(started.elapsed());
            }
        };
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .with_context(|| format!("bad chunk size {:?}", line.trim()))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..])?;
                let mut crlf = [0; 2];
                self.stream.read_exact(&mut crlf)?;
                if size == 0 {
                    break;
                }
                note(&body);
            }
        } else {
            body.resize(length, 0);
            self.stream.read_exact(&mut body)?;
            note(&body);
        }
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
            first_content,
        })
    }

    /// [`Self::exchange`], an error unless the status is 200.
    pub fn ok(&mut self, request: &[u8]) -> anyhow::Result<Reply> {
        let reply = self.exchange(request)?;
        if reply.status != 200 {
            let text = String::from_utf8_lossy(&reply.body);
            bail!(
                "answer {}: {}",
                reply.status,
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(reply)
    }
}

/// Whether a complete server-sent event after `*scanned` in `body` has a `data:` line whose
/// chat-completion chunk carries text (`choices[0].delta.content` not empty); advances
/// `*scanned` past the complete events looked at.
fn has_text_event(body: &[u8], scanned: &mut usize) -> bool {
    while let Some(end) = body[*scanned..].windows(2).position(|w| w == b"\n\n") {
        let event = &body[*scanned..*scanned + end];
        *scanned += end + 2;
        for line in event.split(|&b| b == b'\n') {
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let Ok(chunk) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
                continue;
            };
            if chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
            {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_text_event_is_found_across_reads() {
        let role =
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let text = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
        let mut body = role.to_vec();
        let mut scanned = 0;
        assert!(!has_text_event(&body, &mut scanned));
        assert_eq!(scanned, role.len());
        body.extend_from_slice(&text[..20]);
        assert!(!has_text_event(&body, &mut scanned));
        body.extend_from_slice(&text[20..]);
        assert!(has_text_event(&body, &mut scanned));
    }
}
