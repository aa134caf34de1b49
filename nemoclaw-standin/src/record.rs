//! The record file: one JSON line per request, appended and flushed before the answer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use serde_json::{Map, Value, json};

/// Appends one JSON line per received request to a file.
///
/// Line format: `{"method","path","query","headers","body_b64","body_len"}`, where `query`
/// is the raw query string or `null`, `headers` maps each lowercased header name to its
/// value (repeated headers joined with `", "`, non-UTF-8 bytes replaced) and `body_b64` is
/// the standard base64 of the raw body bytes. A body over the size cap is recorded with
/// `"body_b64": ""`, `"body_len": null` and `"error": "body over the size cap"`.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
}

/// What [`Recorder::record`] writes about one request.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw body, or `None` when it was over the cap.
    pub body: Option<&'a [u8]>,
}

impl Recorder {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends one line for `entry` and flushes it.
    pub fn record(&self, entry: &Entry<'_>) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&line_for(entry))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("record file lock poisoned"))?;
        file.write_all(&line)?;
        file.flush()?;
        Ok(())
    }
}

/// The JSON value of one record line.
#[must_use]
pub fn line_for(entry: &Entry<'_>) -> Value {
    let mut headers = Map::new();
    for (name, value) in entry.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut line = json!({
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "headers": headers,
    });
    if let Some(body) = entry.body {
        line["body_b64"] = Value::String(STANDARD.encode(body));
        line["body_len"] = json!(body.len());
    } else {
        line["body_b64"] = Value::String(String::new());
        line["body_len"] = Value::Null;
        line["error"] = Value::String("body over the size cap".to_owned());
    }
    line
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append("x-api-key", HeaderValue::from_static("sk-1"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        headers.append("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        headers
    }

    #[test]
    fn repeated_headers_are_joined_and_bytes_replaced() {
        let headers = headers();
        let line = line_for(&Entry {
            method: "GET",
            path: "/v1/models",
            query: None,
            headers: &headers,
            body: Some(b""),
        });
        assert_eq!(line["headers"]["accept"], "a, b");
        assert_eq!(line["headers"]["x-api-key"], "sk-1");
        assert_eq!(line["headers"]["x-bin"], "caf\u{fffd}");
        assert_eq!(line["query"], Value::Null);
        assert_eq!(line["body_b64"], "");
        assert_eq!(line["body_len"], 0);
        assert!(line.get("error").is_none());
    }

    #[test]
    fn an_over_cap_body_is_recorded_without_bytes() {
        let headers = headers();
        let line = line_for(&Entry {
            method: "POST",
            path: "/v1/messages",
            query: Some("x=1"),
            headers: &headers,
            body: None,
        });
        assert_eq!(line["body_b64"], "");
        assert_eq!(line["body_len"], Value::Null);
        assert_eq!(line["error"], "body over the size cap");
        assert_eq!(line["query"], "x=1");
    }

    #[test]
    fn lines_are_appended_one_per_request() {
        let path = std::env::temp_dir().join(format!(
            "nemoclaw-standin-record-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let recorder = Recorder::open(&path).unwrap();
        let headers = headers();
        for body in [&b"\x00\xff"[..], b"{}"] {
            recorder
                .record(&Entry {
                    method: "POST",
                    path: "/p",
                    query: None,
                    headers: &headers,
                    body: Some(body),
                })
                .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["body_b64"], "AP8=");
        assert_eq!(lines[1]["body_b64"], "e30=");
        std::fs::remove_file(&path).unwrap();
    }
}
