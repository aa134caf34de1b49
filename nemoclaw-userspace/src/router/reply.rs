//! The reply on its way back: the backend's body streamed to the caller chunk by chunk (no
//! buffering: the first token reaches the agent when the backend sends it), token counts
//! read as it passes, an idle timeout, and one call of `finish` when it ends, however it
//! ends (complete, cut by the backend, or abandoned by the caller). When the reply is
//! rewritten (masking's restore, the injected-value guard: `events`), each chunk goes
//! through the rewriter; a rewriting failure cuts the caller's connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use tokio::time::{Instant, Sleep};

use super::events::ReplyRewriter;
use super::restore::Counts;
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
}

type Finish = Box<dyn FnOnce(Ending, Tokens, Option<Counts>) + Send>;

/// The caller's view of a backend reply.
pub struct ReplyBody {
    inner: Incoming,
    rewriter: Option<ReplyRewriter>,
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

impl ReplyBody {
    #[must_use]
    pub fn new(
        inner: Incoming,
        streaming: bool,
        idle: Duration,
        rewriter: Option<ReplyRewriter>,
        finish: Finish,
    ) -> ReplyBody {
        ReplyBody {
            inner,
            rewriter,
            inner_done: false,
            meter: UsageMeter::new(streaming),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            finish: Some(finish),
        }
    }

    fn end(&mut self, ending: Ending) {
        if let Some(finish) = self.finish.take() {
            self.meter.finish();
            let counts = self.rewriter.as_ref().map(|r| r.counts().clone());
            finish(ending, self.meter.tokens, counts);
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = &mut *self;
        loop {
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
                    let Some(rewriter) = &mut this.rewriter else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match rewriter.feed(data) {
                        // Held back (a placeholder prefix, a word the guard waits on).
                        Ok(out) if out.is_empty() => {}
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => return Poll::Ready(Some(Err(this.rewrite_failed(&e)))),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end(Ending::UpstreamCut);
                    return Poll::Ready(Some(Err(Cut(format!(
                        "the backend's reply broke off: {e}"
                    )))));
                }
                Poll::Ready(None) => {
                    this.inner_done = true;
                    let rest = match &mut this.rewriter {
                        Some(rewriter) => match rewriter.finish() {
                            Ok(rest) => rest,
                            Err(e) => return Poll::Ready(Some(Err(this.rewrite_failed(&e)))),
                        },
                        None => Vec::new(),
                    };
                    this.end(Ending::Complete);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        this.end(Ending::UpstreamCut);
                        return Poll::Ready(Some(Err(Cut(format!(
                            "the backend sent nothing for {} s",
                            this.idle.as_secs()
                        )))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.rewriter.is_some() {
            return self.inner_done;
        }
        self.inner.is_end_stream()
    }

    /// The backend's own length, while chunks pass unchanged (the caller then gets a
    /// `Content-Length` reply when the backend sent one); unknown when rewritten.
    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.rewriter.is_some() {
            return hyper::body::SizeHint::default();
        }
        self.inner.size_hint()
    }
}

impl ReplyBody {
    /// A rewriting failure: recorded, and the caller's connection is cut.
    fn rewrite_failed(&mut self, error: &str) -> Cut {
        self.inner_done = true;
        self.end(Ending::RewriteFailed);
        Cut(format!("the reply could not be restored: {error}"))
    }
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        let ending = if self.inner_done || self.inner.is_end_stream() {
            Ending::Complete
        } else {
            Ending::CallerGone
        };
        self.end(ending);
    }
}
