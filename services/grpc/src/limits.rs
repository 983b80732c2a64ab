//! What tonic refuses on its own, answered as SPEC §7 says: a wrapper around each served
//! service (native and CRI alike).
//!
//! * **Size limits.** tonic refuses a request message over `max_recv_message_bytes` with
//!   `OUT_OF_RANGE` and no details; the spec wants `RESOURCE_EXHAUSTED` with an
//!   `ErrorInfo` (reason `TOO_LARGE`, metadata `limit`). No handler answers `OUT_OF_RANGE`
//!   (the error table has no such row), so every `OUT_OF_RANGE` a service answers in its
//!   headers is that refusal and is rewritten here.
//! * **Deadlines.** tonic's server times a call out at its `grpc-timeout` and answers
//!   `CANCELLED` ("Timeout expired"), racing the handler's own `DEADLINE_EXCEEDED`. The
//!   wrapper times the call out first, [`deadline_margin`] before tonic's timer (which
//!   starts earlier and is polled after the service), and answers `DEADLINE_EXCEEDED` with
//!   an `ErrorInfo`.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use imaged_core::{Error, ErrorKind};
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use crate::{call, status};

/// How much earlier than the client's `grpc-timeout` `t` a call is timed out here, so
/// that this answer, not tonic's `CANCELLED`, is the one sent, and that it reaches the
/// client before the client's own timer (started before the request was sent) gives
/// up: a tenth of `t`, at least 5 ms and at most 100 ms. A fixed 5 ms lost that race on a
/// loaded machine (3 of 20 runs of `a_passed_deadline_is_deadline_exceeded` with the
/// two cores busy).
pub(crate) fn deadline_margin(t: Duration) -> Duration {
    (t / 10).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

/// A served service with the spec's answers for size limits and deadlines.
#[derive(Debug, Clone)]
pub(crate) struct Guarded<S> {
    inner: S,
    max_recv: usize,
}

impl<S> Guarded<S> {
    /// `inner`, whose request messages are limited to `max_recv` bytes.
    pub(crate) fn new(inner: S, max_recv: usize) -> Self {
        Self { inner, max_recv }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let timeout = call::timeout(req.headers());
        let method = req.uri().path().to_owned();
        let max_recv = self.max_recv;
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = match timeout {
                None => answer.await?,
                Some(t) => {
                    let ours = t.saturating_sub(deadline_margin(t));
                    match tokio::time::timeout(ours, answer).await {
                        Ok(r) => r?,
                        Err(_) => return Ok(deadline_exceeded(&method, t)),
                    }
                }
            };
            Ok(too_large_if_refused(response, max_recv))
        })
    }
}

/// The `DEADLINE_EXCEEDED` answer of a call whose `grpc-timeout` of `t` passed.
fn deadline_exceeded(method: &str, t: Duration) -> http::Response<Body> {
    let err = Error::new(
        ErrorKind::DeadlineExceeded,
        format!("deadline exceeded: {method} did not finish within the client's {t:?}"),
    )
    .with_meta("method", method)
    .with_meta("timeout_ms", t.as_millis().to_string());
    status::to_status(&err).into_http()
}

/// `response` with tonic's `OUT_OF_RANGE` size refusal (a trailers-only response: the
/// status is in the headers) replaced by `RESOURCE_EXHAUSTED` / `TOO_LARGE`.
fn too_large_if_refused(response: http::Response<Body>, max_recv: usize) -> http::Response<Body> {
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == (Code::OutOfRange as i32).to_string().as_bytes());
    if !out_of_range {
        return response;
    }
    let detail = tonic::Status::from_header_map(response.headers())
        .map(|s| s.message().to_owned())
        .unwrap_or_default();
    let err = Error::new(
        ErrorKind::TooLarge,
        format!("a request message exceeds the limit of {max_recv} bytes ({detail})"),
    )
    .with_meta("limit", max_recv.to_string());
    status::to_status(&err).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    fn status_of(r: &http::Response<Body>) -> tonic::Status {
        tonic::Status::from_header_map(r.headers()).expect("a status in the headers")
    }

    #[test]
    fn out_of_range_becomes_too_large_with_the_limit() {
        let refused: http::Response<Body> = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 2048 bytes, the limit is: 1024 bytes",
        )
        .into_http();
        let st = status_of(&too_large_if_refused(refused, 1024));
        assert_eq!(st.code(), Code::ResourceExhausted);
        let info = st.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "TOO_LARGE");
        assert_eq!(info.metadata["limit"], "1024");
        assert!(
            st.message().contains("found 2048 bytes"),
            "{}",
            st.message()
        );
    }

    #[test]
    fn other_answers_pass_through() {
        let nf: http::Response<Body> = tonic::Status::not_found("x").into_http();
        assert_eq!(
            status_of(&too_large_if_refused(nf, 1)).code(),
            Code::NotFound
        );
        let ok = http::Response::new(Body::empty());
        assert!(
            too_large_if_refused(ok, 1)
                .headers()
                .get("grpc-status")
                .is_none()
        );
    }
}
