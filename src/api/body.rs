//! Request bodies: read with a size limit and a JSON nesting limit, refused with an
//! OperationOutcome past either — before any parsing, so a hostile body costs no more than
//! one pass over its bytes.

use super::AppState;
use super::error::ApiError;
use crate::fhir::IssueCode;
use actix_web::http::StatusCode;
use actix_web::web;

/// The request body, refused past `max_body_bytes` or nested deeper than `max_json_depth`.
pub async fn read(payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    check_depth(&body, state.limits.max_json_depth)?;
    Ok(body)
}

/// A batch body (NDJSON, or a FHIR `batch` Bundle), refused past the batch limit or nested
/// too deep.
pub async fn read_batch(payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let body = read_limited(payload, state.batch.max_bytes).await?;
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
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::one(
                        StatusCode::BAD_REQUEST,
                        IssueCode::TooLong,
                        format!(
                            "the JSON is nested more than {max} levels deep; a FHIR resource or a record never needs that"
                        ),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Structure,
                format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::one(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueCode::TooLong,
                format!(
                    "the record is larger than {limit} bytes; send one record per request (or split the file)"
                ),
            ));
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
