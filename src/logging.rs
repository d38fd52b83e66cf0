//! Structured logs (tracing), text or JSON, with a request id on every line of a request.
//!
//! PII is kept out at the source: events carry ids and counts, never payloads (see
//! `internal_events`). As a second line of defence every line passes through a writer that
//! masks anything shaped like a NIK or a phone number, so a careless future log statement
//! cannot leak one.

use std::io::{self, Write};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub fn init(format: &str, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStdout)
        .with_target(false);
    let result = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    // Tests may initialise twice; the first subscriber stays.
    let _ = result;
}

#[derive(Clone, Copy)]
struct RedactingStdout;

impl<'a> MakeWriter<'a> for RedactingStdout {
    type Writer = LineRedactor;
    fn make_writer(&'a self) -> Self::Writer {
        LineRedactor { buf: Vec::new() }
    }
}

/// Buffers one log record and writes it redacted when dropped.
pub struct LineRedactor {
    buf: Vec<u8>,
}

impl Write for LineRedactor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineRedactor {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = io::stdout().lock().write_all(redact(&text).as_bytes());
    }
}

/// Mask runs of 11 or more digits (NIK 16, KK 16, BPJS 13, mobile numbers 11–13), keeping
/// shorter numbers (counts, HTTP statuses, rule numbers, 10-digit organization ids).
/// Only free-standing numbers count: digits inside a word (hex ids, UUIDs) are left alone —
/// including the last group of a UUID that happens to be all digits (one in about 300
/// receipt ids), which follows a hyphen.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let mut run_in_word = false;
    let mut prev_alnum = false;
    let flush = |run: &mut String, out: &mut String, in_word: bool| {
        if run.len() >= 11 && !in_word {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            if run.is_empty() {
                run_in_word = prev_alnum || ends_with_uuid_head(&out);
            }
            run.push(c);
        } else {
            if !run.is_empty() {
                let in_word = run_in_word || c.is_ascii_alphabetic();
                flush(&mut run, &mut out, in_word);
            }
            out.push(c);
        }
        prev_alnum = c.is_ascii_alphanumeric();
    }
    flush(&mut run, &mut out, run_in_word);
    out
}

/// Whether `text` ends with the first four groups of a UUID and its last hyphen
/// (`xxxxxxxx-xxxx-xxxx-xxxx-`): what follows is the UUID's last group, not a number.
fn ends_with_uuid_head(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 24 {
        return false;
    }
    let head = &b[b.len() - 24..];
    head.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn masks_nik_and_phone_keeps_small_numbers() {
        assert_eq!(
            redact("nik=3273015008250002 status=503"),
            "nik=[redacted] status=503"
        );
        assert_eq!(redact("tel 081234567890"), "tel [redacted]");
        assert_eq!(
            redact("org 1000000001 rule 10117"),
            "org 1000000001 rule 10117"
        );
        assert_eq!(
            redact("\"nik\":\"3273015008250002\""),
            "\"nik\":\"[redacted]\""
        );
        // Ids that merely contain long digit runs stay readable.
        assert_eq!(
            redact("id=126a72336212345678901d91b87"),
            "id=126a72336212345678901d91b87"
        );
        // A UUID whose last group is all digits is an id, not a number.
        assert_eq!(
            redact("receipt=\"99973314-5084-405a-8f2d-528423779931\""),
            "receipt=\"99973314-5084-405a-8f2d-528423779931\""
        );
        // A NIK after a hyphen that is not a UUID's is still masked.
        assert_eq!(redact("NIK-3273015008250002"), "NIK-[redacted]");
    }
}
