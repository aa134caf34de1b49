//! Token counts from a backend's reply, as it streams past: OpenAI's `usage`
//! (`prompt_tokens`/`completion_tokens`, or the Responses API's `input_tokens`/
//! `output_tokens`) and Anthropic's (`message_start` input, `message_delta` output). Reads
//! SSE `data:` lines one at a time, or a whole JSON reply, with bounded memory.

use serde::Serialize;
use serde_json::Value;

/// Longest line or non-streamed reply kept for counting; longer ones are skipped.
const MAX_KEPT: usize = 4 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<u64>,
}

/// Watches reply bytes for token counts.
pub struct UsageMeter {
    streaming: bool,
    pending: Vec<u8>,
    overflow: bool,
    pub tokens: Tokens,
}

impl UsageMeter {
    #[must_use]
    pub fn new(streaming: bool) -> UsageMeter {
        UsageMeter {
            streaming,
            pending: Vec::new(),
            overflow: false,
            tokens: Tokens::default(),
        }
    }

    /// The next bytes of the reply.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if !self.streaming {
            if self.pending.len() + bytes.len() > MAX_KEPT {
                self.overflow = true;
            } else {
                self.pending.extend_from_slice(bytes);
            }
            return;
        }
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            if !self.overflow {
                self.pending.extend_from_slice(&bytes[..newline]);
                let line = std::mem::take(&mut self.pending);
                self.line(&line);
            }
            self.overflow = false;
            self.pending.clear();
            bytes = &bytes[newline + 1..];
        }
        if self.pending.len() + bytes.len() > MAX_KEPT {
            self.overflow = true;
            self.pending.clear();
        } else if !self.overflow {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// The reply ended: a non-streamed reply is read now.
    pub fn finish(&mut self) {
        if !self.streaming
            && !self.overflow
            && let Ok(value) = serde_json::from_slice::<Value>(&self.pending)
        {
            self.take(&value);
        }
        self.pending = Vec::new();
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if let Ok(value) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            self.take(&value);
        }
    }

    /// Picks counts from one JSON object: `usage` at the top, in `message`
    /// (Anthropic's `message_start`) or in `response` (the Responses API's events).
    fn take(&mut self, value: &Value) {
        for usage in [
            value.get("usage"),
            value.get("message").and_then(|m| m.get("usage")),
            value.get("response").and_then(|r| r.get("usage")),
        ]
        .into_iter()
        .flatten()
        {
            let count = |keys: &[&str]| keys.iter().find_map(|k| usage.get(*k)?.as_u64());
            if let Some(n) = count(&["prompt_tokens", "input_tokens"]) {
                self.tokens.prompt = Some(n);
            }
            if let Some(n) = count(&["completion_tokens", "output_tokens"]) {
                self.tokens.completion = Some(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_non_streamed() {
        let mut m = UsageMeter::new(false);
        let body = br#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        for chunk in body.chunks(7) {
            m.feed(chunk);
        }
        m.finish();
        assert_eq!(
            m.tokens,
            Tokens {
                prompt: Some(12),
                completion: Some(5)
            }
        );
    }

    #[test]
    fn anthropic_stream_split_anywhere() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
                      event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
                      event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        for split in 1..stream.len() {
            let mut m = UsageMeter::new(true);
            m.feed(&stream.as_bytes()[..split]);
            m.feed(&stream.as_bytes()[split..]);
            m.finish();
            assert_eq!(
                m.tokens,
                Tokens {
                    prompt: Some(25),
                    completion: Some(15)
                },
                "split {split}"
            );
        }
    }

    #[test]
    fn responses_api_completed_event() {
        let mut m = UsageMeter::new(true);
        m.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n\n");
        assert_eq!(
            m.tokens,
            Tokens {
                prompt: Some(3),
                completion: Some(4)
            }
        );
    }
}
