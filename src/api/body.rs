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
