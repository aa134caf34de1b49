//! The reply on its way back: the backend's body streamed to the caller chunk by chunk (no
//! buffering: the first token reaches the agent when the backend sends it), token counts
//! read as it passes, an idle timeout, and one call of `finish` when it ends, however it
//! ends (complete, cut by the backend, or abandoned by the caller). Masking's restore
//! stage slots in here as a transform of each chunk.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use tokio::time::{Instant, Sleep};

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
}

type Finish = Box<dyn FnOnce(Ending, Tokens) + Send>;

/// The caller's view of a backend reply.
pub struct ReplyBody {
    inner: Incoming,
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
    pub fn new(inner: Incoming, streaming: bool, idle: Duration, finish: Finish) -> ReplyBody {
        ReplyBody {
            inner,
            meter: UsageMeter::new(streaming),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            finish: Some(finish),
        }
    }

    fn end(&mut self, ending: Ending) {
        if let Some(finish) = self.finish.take() {
            self.meter.finish();
            finish(ending, self.meter.tokens);
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.meter.feed(data);
                }
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(Ending::UpstreamCut);
                Poll::Ready(Some(Err(Cut(format!(
                    "the backend's reply broke off: {e}"
                )))))
            }
            Poll::Ready(None) => {
                this.end(Ending::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.end(Ending::UpstreamCut);
                    return Poll::Ready(Some(Err(Cut(format!(
                        "the backend sent nothing for {} s",
                        this.idle.as_secs()
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    /// The backend's own length, while chunks pass unchanged (the caller then gets a
    /// `Content-Length` reply when the backend sent one).
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        let ending = if self.inner.is_end_stream() {
            Ending::Complete
        } else {
            Ending::CallerGone
        };
        self.end(ending);
    }
}
