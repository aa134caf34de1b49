//! Response bodies: whole JSON, or parts sent one by one (SSE events), optionally slowly
//! or cut off before the end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// The body type of every response.
pub type ResponseBody = BoxBody<Bytes, io::Error>;

/// A body sent in one piece with a `content-length`.
#[must_use]
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How the parts of a paced body are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The pause before each part after the first.
    pub interval: Duration,
    /// Send this many parts, then fail the body so the connection closes without the
    /// chunked terminator.
    pub cut_after: Option<usize>,
}

/// The pause before a cut, so the parts before it leave the server's write buffer.
const CUT_GRACE: Duration = Duration::from_millis(100);

/// A chunked body whose parts a task sends as [`Pacing`] says.
#[must_use]
pub fn paced(parts: Vec<Bytes>, pacing: Pacing) -> ResponseBody {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for (i, part) in parts.into_iter().enumerate() {
            if pacing.cut_after == Some(i) {
                tokio::time::sleep(CUT_GRACE).await;
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "fault-cut: stream cut off",
                    )))
                    .await;
                return;
            }
            if i > 0 && !pacing.interval.is_zero() {
                tokio::time::sleep(pacing.interval).await;
            }
            if tx.send(Ok(part)).await.is_err() {
                return;
            }
        }
    });
    ChannelBody { rx }.boxed()
}

struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|part| part.map(|r| r.map(Frame::data)))
    }
}

/// One SSE event without an `event:` line: `data: JSON\n\n`.
#[must_use]
pub fn sse_data(data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// One SSE event with an `event:` line: `event: NAME\ndata: JSON\n\n`.
#[must_use]
pub fn sse_event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Splits `text` into pieces of at most `size` characters (on character boundaries).
#[must_use]
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Splits `text` into pieces of at most `size` bytes on character boundaries; a character
/// longer than `size` is a piece of its own.
#[must_use]
pub fn byte_pieces(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if i > start && i + c.len_utf8() - start > size {
            pieces.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits `bytes` into `n` parts of about equal length (for slow or cut whole bodies).
#[must_use]
pub fn split_bytes(bytes: &Bytes, n: usize) -> Vec<Bytes> {
    let size = bytes.len().div_ceil(n.max(1)).max(1);
    (0..bytes.len())
        .step_by(size)
        .map(|start| bytes.slice(start..(start + size).min(bytes.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_on_characters() {
        assert_eq!(pieces("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(pieces("ééééé", 2), ["éé", "éé", "é"]);
        assert!(pieces("", 3).is_empty());
    }

    #[test]
    fn byte_pieces_split_on_character_boundaries() {
        assert_eq!(byte_pieces("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(byte_pieces("aéb", 3), ["aé", "b"]);
        assert_eq!(byte_pieces("aaé", 3), ["aa", "é"]);
        assert_eq!(byte_pieces("a😀b", 3), ["a", "😀", "b"]);
        assert_eq!(byte_pieces("😀😀", 3), ["😀", "😀"]);
        assert!(byte_pieces("", 3).is_empty());
        let text = "{\"text\":\"é😀 x\"}";
        assert_eq!(byte_pieces(text, 3).concat(), text);
        assert!(
            byte_pieces(text, 3)
                .iter()
                .all(|p| p.len() <= 3 || p.chars().count() == 1)
        );
    }

    #[test]
    fn split_bytes_covers_the_whole_body() {
        let bytes = Bytes::from_static(b"0123456789");
        let parts = split_bytes(&bytes, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), b"0123456789");
        assert_eq!(split_bytes(&Bytes::from_static(b"ab"), 3).concat(), b"ab");
    }

    #[test]
    fn sse_framing() {
        let data = serde_json::json!({"type": "ping"});
        assert_eq!(
            sse_event("ping", &data),
            "event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
        assert_eq!(sse_data(&data), "data: {\"type\":\"ping\"}\n\n");
    }
}
