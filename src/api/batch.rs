//! Batches: many single pushes in one request — a posyandu app syncing a day's records over a
//! weak mobile link. Each item is pushed on its own (input check, map, validate, commit). A
//! few run side by side, so their mapping and validation overlap and their commits share the
//! store's group commit; items about the same record wait for each other, so two lines about
//! one record are revisions in the order they were written. The answer streams one result per
//! item in input order, each written only after that item's commit: when the connection drops
//! mid-answer, every item with a result is durable, and the items without one are simply sent
//! again (and recognised if they had been committed after all).

use super::error::ApiError;
use crate::fhir::{IssueCode, Outcome};
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use futures_util::{StreamExt, future::LocalBoxFuture, stream};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use tokio::sync::oneshot;

/// How many records, and how many bytes, one batch request may carry.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

/// The non-empty lines of an NDJSON body, with their 1-based line numbers; refused past
/// `max_records` before any of them is pushed.
pub fn ndjson_lines(body: &Bytes, limits: BatchLimits) -> Result<Vec<(usize, Bytes)>, ApiError> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (n, piece) in body.split(|b| *b == b'\n').enumerate() {
        let end = start + piece.len();
        if !piece.iter().all(u8::is_ascii_whitespace) {
            lines.push((n + 1, body.slice(start..end)));
        }
        start = end + 1;
    }
    too_many(lines.len(), limits)?;
    if lines.is_empty() {
        return Err(ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::Required,
            "the batch is empty: send one JSON record per line",
        ));
    }
    Ok(lines)
}

/// Refuse a batch of more than `max_records` items, before any is pushed.
pub fn too_many(count: usize, limits: BatchLimits) -> Result<(), ApiError> {
    if count > limits.max_records {
        return Err(ApiError::one(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueCode::TooLong,
            format!(
                "the batch has {count} records; at most {} are taken in one request (ingest.max_batch_records) — split it; nothing was stored",
                limits.max_records
            ),
        ));
    }
    Ok(())
}

/// One item's result line: its number, the HTTP status a single push would have got, and
/// the receipt or the OperationOutcome.
pub fn result_line(line: usize, result: Result<super::push::Answer, ApiError>) -> Value {
    match result {
        Ok(answer) => {
            let mut v = json!({"line": line, "http_status": answer.status.as_u16()});
            if let (Value::Object(out), Value::Object(body)) = (&mut v, answer.body) {
                out.extend(body);
            }
            v
        }
        Err(e) => json!({
            "line": line,
            "http_status": e.status.as_u16(),
            "outcome": line_outcome(line, e.outcome).to_operation_outcome(),
        }),
    }
}

/// An item's issues, each text prefixed with its line number, so an OperationOutcome read
/// alone still says which record it is about.
fn line_outcome(line: usize, mut outcome: Outcome) -> Outcome {
    for issue in &mut outcome.issues {
        issue.text = format!("line {line}: {}", issue.text);
    }
    outcome
}

/// Items pushed at once. Enough to keep both cores and the store's group commit busy; few
/// enough that a dropped connection leaves little work in flight.
pub const IN_FLIGHT: usize = 8;

/// Stream the results of `items` in their order, each computed by `push` and written as soon
/// as it and those before it are known: `open`, then the results separated by `separator`,
/// then `close`. Items with the same `key` (the same record) are pushed one after another;
/// an item without a key (one that cannot be a record, such as a line that is not JSON) waits
/// for nothing.
pub fn stream_results<T: 'static>(
    content_type: &'static str,
    items: Vec<T>,
    key: impl Fn(&T) -> Option<String>,
    open: &'static str,
    separator: &'static str,
    close: &'static str,
    mut push: impl FnMut(T) -> LocalBoxFuture<'static, Value> + 'static,
) -> HttpResponse {
    let ordered = in_record_order(items, key);
    let results = stream::iter(ordered)
        .map(move |(item, after, done)| {
            let pushed = push(item);
            async move {
                if let Some(earlier) = after {
                    // An error only says the earlier item ended without a result.
                    let _ = earlier.await;
                }
                let v = pushed.await;
                drop(done);
                v
            }
        })
        .buffered(IN_FLIGHT)
        .enumerate()
        .map(move |(i, v)| {
            let mut text = if i == 0 {
                String::new()
            } else {
                separator.to_string()
            };
            text.push_str(&v.to_string());
            text
        });
    let body = stream::once(async move { open.to_string() })
        .chain(results)
        .chain(stream::once(async move { close.to_string() }))
        .filter(|s| std::future::ready(!s.is_empty()))
        .map(|s| Ok::<_, Infallible>(Bytes::from(s)));
    HttpResponse::Ok()
        .content_type(content_type)
        .streaming(body)
}

/// Each item with the end of the last earlier item of its record (if any) to wait for, and
/// the signal of its own end.
type Ordered<T> = (
    T,
    Option<oneshot::Receiver<()>>,
    Option<oneshot::Sender<()>>,
);

fn in_record_order<T>(items: Vec<T>, key: impl Fn(&T) -> Option<String>) -> Vec<Ordered<T>> {
    let mut last: HashMap<String, oneshot::Receiver<()>> = HashMap::new();
    items
        .into_iter()
        .map(|item| match key(&item) {
            Some(k) => {
                let (done, end) = oneshot::channel();
                let after = last.insert(k, end);
                (item, after, Some(done))
            }
            None => (item, None, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_records: 3,
        max_bytes: 1 << 20,
    };

    #[test]
    fn lines_keep_their_numbers_and_skip_blank_ones() {
        let body = Bytes::from_static(b"{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}");
        let lines = ndjson_lines(&body, LIMITS).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 4, 5]);
        assert_eq!(&lines[1].1[..], b"{\"b\":2}\r");
        assert_eq!(&lines[2].1[..], b"{\"c\":3}");
    }

    #[test]
    fn too_many_lines_are_refused_before_any_is_pushed() {
        let body = Bytes::from_static(b"{}\n{}\n{}\n{}\n");
        let err = ndjson_lines(&body, LIMITS).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(err.outcome.issues[0].text.contains("4 records"));
        assert!(ndjson_lines(&Bytes::from_static(b"\n \n"), LIMITS).is_err());
    }

    #[test]
    fn items_of_one_record_wait_for_each_other_only() {
        let items = vec!["a", "b", "a", "-", "b", "a"];
        let ordered = in_record_order(items, |i| (*i != "-").then(|| i.to_string()));
        let waits: Vec<bool> = ordered
            .iter()
            .map(|(_, after, _)| after.is_some())
            .collect();
        assert_eq!(waits, [false, false, true, false, true, true]);
        assert!(
            ordered[3].2.is_none(),
            "a line that is no record signals nothing"
        );
    }

    #[tokio::test]
    async fn results_come_in_input_order_and_one_record_in_sequence() {
        use std::sync::{Arc, Mutex};
        let log = Arc::new(Mutex::new(Vec::new()));
        let items: Vec<(usize, &'static str, u64)> =
            vec![(1, "a", 30), (2, "b", 0), (3, "a", 0), (4, "c", 10)];
        let l = log.clone();
        let resp = stream_results(
            "application/x-ndjson",
            items,
            |(_, k, _)| Some(k.to_string()),
            "",
            "\n",
            "\n",
            move |(n, k, delay)| {
                let l = l.clone();
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    l.lock().unwrap().push((k, n));
                    json!({"line": n})
                })
            },
        );
        let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        assert_eq!(
            &body[..],
            b"{\"line\":1}\n{\"line\":2}\n{\"line\":3}\n{\"line\":4}\n"
        );
        let done = log.lock().unwrap().clone();
        let a: Vec<usize> = done
            .iter()
            .filter(|(k, _)| *k == "a")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(a, [1, 3], "line 3 waited for line 1 of the same record");
        // Line 2 (another record) did not wait for the slow line 1.
        let pos = |n| done.iter().position(|(_, m)| *m == n).unwrap();
        assert!(pos(2) < pos(1), "{done:?}");
    }

    #[test]
    fn an_error_line_names_its_line() {
        let err = ApiError::one(StatusCode::UNPROCESSABLE_ENTITY, IssueCode::Required, "x");
        let v = result_line(7, Err(err));
        assert_eq!(v["line"], 7);
        assert_eq!(v["http_status"], 422);
        assert_eq!(v["outcome"]["issue"][0]["details"]["text"], "line 7: x");
    }
}
