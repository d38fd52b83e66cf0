//! The answers actix-http gives before any application code sees a request — a request
//! line or header it cannot parse (400), a head past its 128 KiB buffer or 96 headers
//! (431), a head not complete within `client_request_timeout` (408) — are hard-coded in its
//! HTTP/1 dispatcher with an empty body, and actix offers no hook for them (actix-http 3.20,
//! `h1/dispatcher.rs`). [`Answering`] wraps each connection and replaces exactly those
//! answers, as they are written, with the same status and an OperationOutcome saying what
//! was wrong, so a client gets an explanation like for every other refusal.
//!
//! Why rewriting the output is safe here: those answers are the only ones with
//! `content-length: 0` and one of these statuses (every refusal of gerbang's own carries an
//! OperationOutcome or OAuth JSON), and the byte pattern cannot occur inside a body gerbang
//! sends (JSON and NDJSON escape CR and LF). Actix closes the connection after each of them,
//! so nothing follows the replaced answer. Should a pattern ever be split across two writes
//! (a previous pipelined answer filled the socket's buffer), the empty answer goes out as
//! before: nothing worse than without the wrapper.

use crate::fhir::{Issue, IssueCode, Outcome};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose empty parse-error answers get a body.
pub struct Answering<T> {
    io: T,
    /// A replacement answer still to be written, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    replaced: bool,
}

impl<T> Answering<T> {
    pub fn new(io: T) -> Self {
        Answering {
            io,
            pending: Vec::new(),
            sent: 0,
            replaced: false,
        }
    }
}

/// How long a request head may take to arrive (`client_request_timeout`, set by the server).
pub const HEAD_TIMEOUT_SECS: u64 = 5;

/// The empty answers actix-http writes itself, what they get instead.
const EMPTY_ANSWERS: [(&[u8], &str, IssueCode, &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        "400 Bad Request",
        IssueCode::Structure,
        "this is not a valid HTTP/1.1 request: its request line or a header could not be read \
         (spaces, quotes and control characters in the URL must be percent-encoded; header names \
         are tokens; one Content-Length). Nothing was stored; fix the request and send it again",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
        "431 Request Header Fields Too Large",
        IssueCode::TooLong,
        "the request line and headers are larger than 128 KiB, or there are more than 96 headers. \
         Nothing was stored; send shorter query parameters (gerbang takes URLs of up to \
         `limits.max_uri_bytes`, 8 KiB unless configured) and fewer headers",
    ),
    (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n",
        "408 Request Timeout",
        IssueCode::Timeout,
        concat!(
            "the request line and headers did not arrive within 5 s of connecting. Nothing was stored; ",
            "send the request again"
        ),
    ),
];
// The text above names the time-out; it must be the one the server sets.
const _: () = assert!(HEAD_TIMEOUT_SECS == 5);

/// What every empty answer above contains: one fast pass over a written buffer finds
/// whether any of them may be in it.
const EMPTY_BODY: &[u8] = b"\r\ncontent-length: 0\r\n";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The whole replacement answer: same status, an OperationOutcome, and the connection closed.
fn answer(status: &str, code: IssueCode, text: &str) -> Vec<u8> {
    let body = Outcome::one(Issue::error(code, text))
        .to_operation_outcome()
        .to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> Answering<T> {
    /// Write what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Answering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Answering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if !this.replaced && find(buf, EMPTY_BODY).is_some() {
            for (pattern, status, code, text) in &EMPTY_ANSWERS {
                let Some(at) = find(buf, pattern) else {
                    continue;
                };
                if at > 0 {
                    // What comes before (a pipelined answer) goes out as it is; the empty
                    // answer is met again at the start of the next write.
                    return Pin::new(&mut this.io).poll_write(cx, &buf[..at]);
                }
                if let Some(end) = find(buf, b"\r\n\r\n") {
                    this.replaced = true;
                    this.pending = answer(status, *code, text);
                    // The empty answer counts as written; its replacement goes out now or on
                    // the flush that follows.
                    let _ = this.poll_pending(cx)?;
                    return Poll::Ready(Ok(end + 4));
                }
            }
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn through(chunks: &[&[u8]]) -> String {
        let mut out = Answering::new(Vec::new());
        for c in chunks {
            out.write_all(c).await.unwrap();
        }
        out.flush().await.unwrap();
        String::from_utf8(out.io).unwrap()
    }

    #[tokio::test]
    async fn empty_parse_error_answers_get_an_operation_outcome() {
        let out = through(&[b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n"]).await;
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/fhir+json\r\n"),
            "{out}"
        );
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let oo: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert!(
            out.contains(&format!("content-length: {}\r\n", body.len())),
            "{out}"
        );

        // After a pipelined answer in the same write, only the empty one is replaced.
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let out = through(&[format!(
            "{ok}HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
        )
        .as_bytes()])
        .await;
        assert!(out.starts_with(ok), "{out}");
        assert!(out[ok.len()..].starts_with("HTTP/1.1 431"), "{out}");
        assert!(out.contains("128 KiB"), "{out}");

        // Gerbang's own answers pass untouched.
        let own = "HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n{\"a\":\"b\\r\\n\"}   ";
        assert_eq!(through(&[own.as_bytes()]).await, own);
    }
}
