//! The reply on its way back: the backend's body streamed to the caller chunk by chunk (no
//! buffering: the first token reaches the agent when the backend sends it), token counts
//! read as it passes, an idle timeout, and one call of `finish` when it ends, however it
//! ends (complete, cut by the backend, or abandoned by the caller). An Anthropic request
//! served by an OpenAI-speaking local model has each chunk translated first
//! (`translate::stream`). When the reply is rewritten (masking's restore, the
//! injected-value guard: `events`), each chunk then goes through the rewriter; a rewriting
//! failure cuts the caller's connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use tokio::time::{Instant, Sleep};

use super::events::ReplyRewriter;
use super::restore::Counts;
use super::translate::stream::StreamTranslator;
use super::usage::{Tokens, UsageMeter};

/// How a reply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The backend sent all of it.
    Complete,
    /// The backend's stream broke or stalled; the caller's connection is aborted too (no
    /// clean end), so it cannot take a cut reply for a whole one.
    UpstreamCut,
    /// The caller went away first.
    CallerGone,
    /// The reply could not be rewritten (restored or guarded); the caller's connection is
    /// aborted, so it cannot take the part it got for a whole reply.
    RewriteFailed,
    /// A translated stream could not be translated on (or the backend reported an error
    /// in it): the caller got an Anthropic `error` event, which its SDK raises.
    TranslateFailed,
}

/// Called once when a reply ends: how, its token counts, the rewriting's counts, and why
/// it failed when it did (no reply text).
pub type Finish = Box<dyn FnOnce(Ending, Tokens, Option<Counts>, Option<String>) + Send>;

/// The caller's view of a backend reply (`B`: the backend's body as it arrives, or a whole
/// reply the router translated).
pub struct ReplyBody<B: Body = Incoming> {
    inner: B,
    translator: Option<StreamTranslator>,
    rewriter: Option<ReplyRewriter>,
    /// A cut held back until the translator's `error` event has gone out.
    pending_cut: Option<Cut>,
    /// Why the reply failed, for `finish`.
    failure: Option<String>,
    /// The backend's body has ended (the rewriter's rest may still be due).
    inner_done: bool,
    meter: UsageMeter,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    finish: Option<Finish>,
}

/// The error a cut reply ends with (hyper then aborts the connection).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cut(String);

impl<B> ReplyBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    #[must_use]
    pub fn new(
        inner: B,
        streaming: bool,
        idle: Duration,
        rewriter: Option<ReplyRewriter>,
        finish: Finish,
    ) -> ReplyBody<B> {
        ReplyBody {
            inner,
            translator: None,
            rewriter,
            pending_cut: None,
            failure: None,
            inner_done: false,
            meter: UsageMeter::new(streaming),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            finish: Some(finish),
        }
    }

    /// Translates each chunk of the backend's stream before it goes on.
    #[must_use]
    pub fn translating(mut self, translator: StreamTranslator) -> ReplyBody<B> {
        self.translator = Some(translator);
        self
    }

    /// The caller's bytes for the backend's `data`: translated, then rewritten.
    fn convert(&mut self, data: &[u8]) -> Result<Vec<u8>, Cut> {
        let translated;
        let data = match &mut self.translator {
            Some(translator) => {
                translated = translator.feed(data);
                &translated[..]
            }
            None => data,
        };
        let out = match &mut self.rewriter {
            Some(rewriter) => rewriter.feed(data),
            None => Ok(data.to_vec()),
        };
        out.map_err(|e| self.rewrite_failed(&e))
    }

    /// The translator's and the rewriter's rest, when the backend's body has ended.
    fn rest(&mut self) -> Result<Vec<u8>, Cut> {
        let translated = match &mut self.translator {
            Some(translator) => translator.finish(),
            None => Vec::new(),
        };
        let out = match &mut self.rewriter {
            Some(rewriter) => rewriter.feed(&translated).and_then(|mut out| {
                out.extend(rewriter.finish()?);
                Ok(out)
            }),
            None => Ok(translated),
        };
        out.map_err(|e| self.rewrite_failed(&e))
    }

    /// The translation failed (its `error` event is in what was sent): the backend's body
    /// is not read further.
    fn translation_failed(&self) -> Option<String> {
        self.translator
            .as_ref()
            .and_then(StreamTranslator::failure)
            .map(|f| format!("the reply could not be translated: {f}"))
    }

    /// The backend's stream broke or stalled (`why`): the caller's connection is cut,
    /// after a translated stream's `error` event.
    fn cut(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        self.inner_done = true;
        let last = match &mut self.translator {
            Some(translator) => translator.broken(&why),
            None => Vec::new(),
        };
        let last = match (&mut self.rewriter, last.is_empty()) {
            (Some(rewriter), false) => rewriter.feed(&last).unwrap_or_default(),
            _ => last,
        };
        self.failure = Some(why.clone());
        self.end(Ending::UpstreamCut);
        if last.is_empty() {
            return Poll::Ready(Some(Err(Cut(why))));
        }
        self.pending_cut = Some(Cut(why));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(last)))))
    }
}

impl<B: Body> ReplyBody<B> {
    fn end(&mut self, ending: Ending) {
        if let Some(finish) = self.finish.take() {
            self.meter.finish();
            let counts = self.rewriter.as_ref().map(|r| r.counts().clone());
            finish(ending, self.meter.tokens, counts, self.failure.take());
        }
    }
}

impl<B> Body for ReplyBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = &mut *self;
        loop {
            if let Some(cut) = this.pending_cut.take() {
                return Poll::Ready(Some(Err(cut)));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let idle = this.idle;
                    this.deadline.as_mut().reset(Instant::now() + idle);
                    let Some(data) = frame.data_ref() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    this.meter.feed(data);
                    if this.translator.is_none() && this.rewriter.is_none() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    let out = match this.convert(data) {
                        Ok(out) => out,
                        Err(cut) => return Poll::Ready(Some(Err(cut))),
                    };
                    if let Some(failure) = this.translation_failed() {
                        this.inner_done = true;
                        this.failure = Some(failure);
                        this.end(Ending::TranslateFailed);
                    }
                    // Empty: held back (half an SSE event, a placeholder prefix, a word the
                    // guard waits on).
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return this.cut(format!("the backend's reply broke off: {e}"));
                }
                Poll::Ready(None) => {
                    this.inner_done = true;
                    let rest = match this.rest() {
                        Ok(rest) => rest,
                        Err(cut) => return Poll::Ready(Some(Err(cut))),
                    };
                    match this.translation_failed() {
                        Some(failure) => {
                            this.failure = Some(failure);
                            this.end(Ending::TranslateFailed);
                        }
                        None => this.end(Ending::Complete),
                    }
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        let why = format!("the backend sent nothing for {} s", this.idle.as_secs());
                        return this.cut(why);
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.translator.is_some() || self.rewriter.is_some() {
            return self.inner_done && self.pending_cut.is_none();
        }
        self.inner.is_end_stream()
    }

    /// The backend's own length, while chunks pass unchanged (the caller then gets a
    /// `Content-Length` reply when the backend sent one); unknown when translated or
    /// rewritten.
    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.translator.is_some() || self.rewriter.is_some() {
            return hyper::body::SizeHint::default();
        }
        self.inner.size_hint()
    }
}

impl<B: Body> ReplyBody<B> {
    /// A rewriting failure: recorded, and the caller's connection is cut.
    fn rewrite_failed(&mut self, error: &str) -> Cut {
        self.inner_done = true;
        let why = format!("the reply could not be restored: {error}");
        self.failure = Some(why.clone());
        self.end(Ending::RewriteFailed);
        Cut(why)
    }
}

impl<B: Body> Drop for ReplyBody<B> {
    fn drop(&mut self) {
        let ending = if self.inner_done || self.inner.is_end_stream() {
            Ending::Complete
        } else {
            Ending::CallerGone
        };
        self.end(ending);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;

    /// A backend body: these pieces, then its end (or an error).
    struct Pieces(VecDeque<Result<Bytes, String>>);

    impl Body for Pieces {
        type Data = Bytes;
        type Error = String;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
            Poll::Ready(self.0.pop_front().map(|p| p.map(Frame::data)))
        }
    }

    type Finished = Arc<Mutex<Option<(Ending, Tokens, Option<String>)>>>;

    /// Runs `pieces` through a translating reply body: what the caller got (the text, and
    /// the error that ended it if one did) and what `finish` was told.
    async fn run(
        pieces: Vec<Result<&str, &str>>,
    ) -> (String, Option<String>, (Ending, Tokens, Option<String>)) {
        let finished: Finished = Arc::default();
        let record = Arc::clone(&finished);
        let inner = Pieces(
            pieces
                .into_iter()
                .map(|p| p.map(|s| Bytes::from(s.to_owned())).map_err(str::to_owned))
                .collect(),
        );
        let mut body = ReplyBody::new(
            inner,
            true,
            Duration::from_secs(5),
            None,
            Box::new(move |ending, tokens, _, failure| {
                *record.lock().unwrap() = Some((ending, tokens, failure));
            }),
        )
        .translating(StreamTranslator::new("smollm2", Vec::new()));
        let mut out = String::new();
        let mut error = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => out.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap()),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        drop(body);
        let finished = finished.lock().unwrap().take().unwrap();
        (out, error, finished)
    }

    fn chunk(delta: &serde_json::Value, finish: Option<&str>) -> String {
        let c = json!({"id": "c", "model": "smollm2",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    }

    #[tokio::test]
    async fn a_translated_stream_is_counted_from_the_backends_usage() {
        let stream = format!(
            "{}{}data: {}\n\ndata: [DONE]\n\n",
            chunk(&json!({"content": "Hi"}), None),
            chunk(&json!({}), Some("stop")),
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}})
        );
        let (a, b) = stream.split_at(17);
        let (out, error, (ending, tokens, failure)) = run(vec![Ok(a), Ok(b)]).await;
        assert_eq!(error, None);
        assert!(out.starts_with("event: message_start\n"), "{out}");
        assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert_eq!(ending, Ending::Complete);
        assert_eq!(
            tokens,
            Tokens {
                prompt: Some(7),
                completion: Some(1)
            }
        );
        assert_eq!(failure, None);
    }

    #[tokio::test]
    async fn a_failed_translation_ends_the_reply_and_says_why() {
        let first = chunk(&json!({"content": "Hi"}), None);
        let error = format!("data: {}\n\n", json!({"error": {"message": "boom"}}));
        let later = chunk(&json!({"content": "never read"}), None);
        let (out, cut, (ending, _, failure)) = run(vec![Ok(&first), Ok(&error), Ok(&later)]).await;
        assert_eq!(cut, None, "an error event, then a clean end");
        assert!(out.contains("event: error\n"), "{out}");
        assert!(!out.contains("never read"));
        assert!(!out.contains("message_stop"));
        assert_eq!(ending, Ending::TranslateFailed);
        assert!(failure.unwrap().contains("error event mid-stream"));
    }

    #[tokio::test]
    async fn a_broken_backend_stream_sends_an_error_event_then_cuts() {
        let first = chunk(&json!({"content": "Hi"}), None);
        let (out, cut, (ending, _, failure)) = run(vec![Ok(&first), Err("reset")]).await;
        assert!(
            out.ends_with("\n\n") && out.contains("event: error\n"),
            "{out}"
        );
        assert!(cut.unwrap().contains("broke off: reset"));
        assert_eq!(ending, Ending::UpstreamCut);
        assert!(failure.unwrap().contains("reset"));
    }
}
