//! Request bodies: read with a size limit and a JSON nesting limit, refused with an
//! OperationOutcome past either — before any parsing, so a hostile body costs no more than
//! one pass over its bytes. And read within a time: a body that stops arriving (or only
//! trickles in) is cut after `[limits] body_timeout_secs` (`body_deadline_secs`) and answered
//! 408, instead of holding a connection and a handler for as long as the client likes.

use super::AppState;
use super::error::ApiError;
use crate::fhir::IssueCode;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Sleep, sleep};

/// Every request body gets the time limits — here, in front of all handlers, so that every
/// way of reading a body (a raw payload, a JSON or form extractor) is cut alike.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>()
        && !matches!(req.parts().1, Payload::None)
    {
        let (idle, deadline) = (state.limits.body_timeout, state.limits.body_deadline);
        let inner = req.take_payload();
        let timed: Pin<Box<dyn futures_util::Stream<Item = Result<web::Bytes, PayloadError>>>> =
            Box::pin(Timed {
                inner,
                idle,
                idle_timer: None,
                deadline_secs: deadline.as_secs(),
                deadline: Box::pin(sleep(deadline)),
                done: false,
            });
        req.set_payload(Payload::from(timed));
    }
    next.call(req).await
}

/// A body stream that fails with a time-out (an I/O error of kind `TimedOut`) when nothing
/// arrived for `idle` while it was waited for, or when the body is not complete by the
/// deadline. The idle clock runs only while the handler waits for data, so a handler busy
/// elsewhere before reading (say, checking the key) does not count against the client.
struct Timed {
    inner: Payload,
    idle: Duration,
    idle_timer: Option<Pin<Box<Sleep>>>,
    deadline_secs: u64,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl Timed {
    fn past_deadline(&mut self) -> Poll<Option<Result<web::Bytes, PayloadError>>> {
        let text = format!(
            "the request body was not complete after {} s",
            self.deadline_secs
        );
        self.fail(text)
    }

    fn fail(&mut self, text: String) -> Poll<Option<Result<web::Bytes, PayloadError>>> {
        self.done = true;
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            text,
        )))))
    }
}

impl futures_util::Stream for Timed {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.deadline.is_elapsed() {
            return this.past_deadline();
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.idle_timer = None;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                this.done = other.is_none();
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.past_deadline();
        }
        let idle = this.idle;
        let timer = this.idle_timer.get_or_insert_with(|| Box::pin(sleep(idle)));
        if timer.as_mut().poll(cx).is_ready() {
            let text = format!(
                "the request body stopped arriving: nothing came for {} s",
                idle.as_secs()
            );
            return this.fail(text);
        }
        Poll::Pending
    }
}

/// What [`Timed`] said, if this body error is its time-out.
pub fn timed_out(e: &PayloadError) -> Option<String> {
    match e {
        PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Some(io.to_string()),
        _ => None,
    }
}

/// The same, through the errors of actix's JSON and form extractors.
pub fn timed_out_error(e: &actix_web::Error) -> Option<String> {
    use actix_web::error::{JsonPayloadError, UrlencodedError};
    if let Some(UrlencodedError::Payload(p)) = e.as_error::<UrlencodedError>() {
        return timed_out(p);
    }
    if let Some(JsonPayloadError::Payload(p)) = e.as_error::<JsonPayloadError>() {
        return timed_out(p);
    }
    e.as_error::<PayloadError>().and_then(timed_out)
}

/// 408 for a body that did not arrive in time: nothing was stored, send it again.
pub fn timeout_error(text: &str) -> ApiError {
    ApiError::one(
        StatusCode::REQUEST_TIMEOUT,
        IssueCode::Timeout,
        format!(
            "{text}; nothing of this request was stored — send it again, whole (a connection that stalls this long may need a retry later)"
        ),
    )
}

/// The request body, refused past `max_body_bytes` or nested deeper than `max_json_depth`.
pub async fn read(payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let body = read_limited(payload, state.max_body_bytes, body_too_large).await?;
    check_depth(&body, state.limits.max_json_depth)?;
    Ok(body)
}

/// What a body past `ingest.max_body_bytes` is told.
pub fn body_too_large(limit: usize) -> String {
    format!(
        "the body is larger than {limit} bytes (ingest.max_body_bytes); send one record per request, or a day's records as a batch (Content-Type: application/x-ndjson) — nothing was stored"
    )
}

/// A batch body (NDJSON, or a FHIR `batch` Bundle), refused past the batch limit or nested
/// too deep.
pub async fn read_batch(payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let body = read_limited(payload, state.batch.max_bytes, |limit| {
        format!(
            "the batch is larger than {limit} bytes (ingest.max_batch_bytes); split it into smaller batches — nothing was stored"
        )
    })
    .await?;
    check_depth(&body, state.limits.max_json_depth)?;
    Ok(body)
}

/// What a request body says it is, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json` or `application/fhir+json`: one record, one resource or one Bundle.
    Json,
    /// `application/x-ndjson` (or `application/ndjson`): one record per line.
    Ndjson,
}

/// The body's kind, refused with 415 when the `Content-Type` is missing or not one of
/// `accepted` — a body that does not say it is JSON is not taken for JSON.
pub fn kind(req: &actix_web::HttpRequest, accepted: &[Kind]) -> Result<Kind, ApiError> {
    let media = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let kind = match media.as_deref() {
        Some("application/json" | "application/fhir+json") => Some(Kind::Json),
        Some("application/x-ndjson" | "application/ndjson" | "application/fhir+ndjson") => {
            Some(Kind::Ndjson)
        }
        _ => None,
    };
    match kind {
        Some(k) if accepted.contains(&k) => Ok(k),
        _ => {
            let wanted: Vec<&str> = accepted
                .iter()
                .map(|k| match k {
                    Kind::Json => "`application/json` (or `application/fhir+json`)",
                    Kind::Ndjson => "`application/x-ndjson` (a batch: one record per line)",
                })
                .collect();
            Err(ApiError::one(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueCode::NotSupported,
                format!(
                    "{}; send the header Content-Type: {} — nothing was stored",
                    match media {
                        Some(m) => format!("this endpoint does not take a body of type `{m}`"),
                        None => "the request has no Content-Type".to_string(),
                    },
                    wanted.join(" or ")
                ),
            ))
        }
    }
}

/// JSON (or NDJSON) nested deeper than `max` objects and arrays is refused. Real records
/// nest a dozen levels; thousands of levels only serve to exhaust a parser's stack.
pub fn check_depth(body: &[u8], max: usize) -> Result<(), ApiError> {
    if crate::profile::ndjson::too_deep(body, max) {
        return Err(ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::TooLong,
            format!(
                "the JSON is nested more than {max} levels deep; a FHIR resource or a record never needs that"
            ),
        ));
    }
    Ok(())
}

/// 413, saying what to do instead.
pub fn too_large_error(text: String) -> ApiError {
    ApiError::one(StatusCode::PAYLOAD_TOO_LARGE, IssueCode::TooLong, text)
}

/// A body that could not be read: 408 when it did not arrive in time, else 400.
pub fn payload_error(e: PayloadError) -> ApiError {
    if let Some(text) = timed_out(&e) {
        return timeout_error(&text);
    }
    ApiError::one(
        StatusCode::BAD_REQUEST,
        IssueCode::Structure,
        format!("cannot read the request body: {e}"),
    )
}

/// The body, refused past `limit` bytes with `too_large` (which says what to do instead).
async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
    too_large: impl Fn(usize) -> String,
) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(payload_error)?;
        if body.len() + chunk.len() > limit {
            return Err(too_large_error(too_large(limit)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::check_depth;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(check_depth(br#"{"a": [{"b": [1, 2]}]}"#, 4).is_ok());
        assert!(check_depth(br#"{"a": [{"b": [1, 2]}]}"#, 3).is_err());
        // Brackets and escaped quotes inside strings do not count.
        assert!(check_depth(br#"{"text": "[[[[{{{{ \" [[[["}"#, 1).is_ok());
        // NDJSON: each line starts again at depth 0.
        assert!(check_depth(b"{\"a\": {}}\n{\"b\": {}}\n", 2).is_ok());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(check_depth(deep.as_bytes(), 64).is_err());
    }
}
