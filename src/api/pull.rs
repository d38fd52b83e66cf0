//! Pull endpoints, for clients with SMART Backend Services tokens (see [`crate::pull`] for
//! what is pulled and why the retention must outlast the pull interval):
//!
//! | endpoint | scope | does |
//! |---|---|---|
//! | `GET /fhir/Bundle?_since=&_count=&_cursor=` | `system/Bundle.read` | the `_since` feed: delivered transaction Bundles as a `searchset`, in delivery-commit order |
//! | `GET /fhir/$export?_since=&_type=&_outputFormat=` | `system/*.read` | Bulk Data kick-off, every organization the client may see (`Prefer: respond-async`) |
//! | `GET /fhir/Organization/{id}/$export?…` | `system/*.read` | the same, one SATUSEHAT organization's records |
//! | `GET /fhir/$export-status/{job}` | `system/*.read` | 202 + `X-Progress` while running, 200 + manifest when done, 410 once expired |
//! | `DELETE /fhir/$export-status/{job}` | `system/*.read` | cancel, delete the files (202) |
//! | `GET /fhir/$export-file/{job}/{Type}.ndjson` | `system/*.read` | one output file, streamed from disk |
//!
//! **Organizations.** A client registered for one organization sees only its records: its
//! feed and its system-level exports are limited to it, another organization's export is
//! refused (403). Export jobs are visible only to the client that started them.
//!
//! **The feed protocol.** Pages are in feed order (the order deliveries were committed); the
//! `next` link carries the position of the page's last Bundle as `_cursor` (opaque to the
//! client). A page with Bundles always has a `next` link, even when it is not full: a
//! delivery committed meanwhile is on the next page. A page without Bundles has no `next`;
//! it means "caught up" — keep its `self` link and poll it later. Following the links
//! never misses or repeats a Bundle. `_since` (an instant, delivered at or after) only
//! chooses where a new puller starts. Unknown parameters are refused (400) rather than
//! ignored: a misspelt `_since` must not silently return everything.
//!
//! **Kick-off parameters.** `_since`, `_type` (a comma list of the types gerbang's mappings
//! produce) and `_outputFormat` (`application/fhir+ndjson`, `application/ndjson`, `ndjson`);
//! `_typeFilter`, `_elements`, `patient` and `includeAssociatedData` are not supported (400,
//! as the IG asks of a server that does not apply them). Only GET kick-offs.
//!
//! Every feed page and every kick-off is audited (actor `client:<id>`, action `pull` /
//! `export`); so is every file download (`pull`).

use super::error::{ApiError, fhir_json};
use super::{AppState, auth};
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use crate::pull::export::{file_name, remove_dir};
use crate::pull::instant;
use crate::store::{AuditEvent, ExportJob, ExportStatus, FeedItem, FeedQuery, NewExportJob};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub const FEED_SCOPE: &str = "system/Bundle.read";
pub const EXPORT_SCOPE: &str = "system/*.read";
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 500;
/// The kick-off parameters gerbang applies.
const KICK_OFF_PARAMS: [&str; 4] = ["_since", "_type", "_outputFormat", "_format"];
/// Kick-off parameters of the Bulk Data IG that gerbang refuses (400) rather than ignore.
const UNSUPPORTED_PARAMS: [&str; 4] = [
    "_typeFilter",
    "_elements",
    "patient",
    "includeAssociatedData",
];
/// What a client polling a running export is asked to wait, in seconds.
const RETRY_AFTER_SECS: u64 = 2;

// ------------------------------------------------------------------------------ the feed

pub async fn feed(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let principal = auth::client(&req, &state, FEED_SCOPE).await?;
    let params = Params::parse(&req, &["_since", "_count", "_cursor", "_format"])?;
    params.check_format()?;
    let since = params.instant("_since")?;
    let count = match params.get("_count") {
        None => DEFAULT_COUNT,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_COUNT),
            _ => {
                return Err(bad(
                    "_count",
                    format!("`_count` must be a number from 1 to {MAX_COUNT}, not `{c}`"),
                ));
            }
        },
    };
    let after = match params.get("_cursor") {
        None => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| {
            bad(
                "_cursor",
                format!(
                    "`_cursor` `{c}` is not a cursor of this feed; use the `next` link of a page as it is"
                ),
            )
        })?,
    };
    let organization = principal.organization_id.clone();
    let items = state
        .store
        .feed(&FeedQuery {
            after_seq: after,
            until_seq: None,
            since,
            organization_id: organization.clone(),
            limit: count,
        })
        .await
        .map_err(ApiError::unavailable)?;

    let base = state.auth.base_url(&req);
    let link = |cursor: i64| {
        let mut q = Vec::new();
        if let Some(s) = params.get("_since") {
            q.push(format!("_since={}", encode(&crate::time::query_instant(s))));
        }
        q.push(format!("_count={count}"));
        if cursor > 0 {
            q.push(format!("_cursor={}", encode_cursor(cursor)));
        }
        format!("{base}/fhir/Bundle?{}", q.join("&"))
    };
    let mut links = vec![json!({"relation": "self", "url": link(after)})];
    if let Some(last) = items.last() {
        links.push(json!({"relation": "next", "url": link(last.seq)}));
    }
    let detail = match (items.first(), items.last()) {
        (Some(first), Some(last)) => format!(
            "feed page: {} Bundle(s), positions {}–{}",
            items.len(),
            first.seq,
            last.seq
        ),
        _ => format!("feed page: no Bundle after position {after}"),
    };
    audit(&state, &principal.actor(), "pull", organization, detail).await?;
    let entries: Vec<Value> = items.into_iter().map(feed_entry).collect();
    let page = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(crate::time::now_millis()),
        "link": links,
        "entry": entries,
    });
    Ok(fhir_json(StatusCode::OK, &page))
}

/// One delivered Bundle as a search entry: the stored Bundle with the receipt id as its id and
/// the delivery time as `meta.lastUpdated`.
fn feed_entry(item: FeedItem) -> Value {
    let mut bundle = crate::pull::held_bundle(&item).into_owned();
    if let Some(map) = bundle.as_object_mut() {
        let mut out = serde_json::Map::with_capacity(map.len() + 2);
        out.insert("resourceType".into(), json!("Bundle"));
        out.insert("id".into(), json!(item.receipt_id));
        let mut meta = match map.remove("meta") {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        meta.insert("lastUpdated".into(), json!(instant(item.delivered_at)));
        out.insert("meta".into(), Value::Object(meta));
        for (k, v) in std::mem::take(map) {
            if k != "resourceType" && k != "id" {
                out.insert(k, v);
            }
        }
        *map = out;
    }
    json!({
        "fullUrl": format!("urn:uuid:{}", item.receipt_id),
        "resource": bundle,
        "search": {"mode": "match"},
    })
}

/// Cursors are opaque to clients: `p` and the feed position.
fn encode_cursor(seq: i64) -> String {
    format!("p{seq}")
}

fn decode_cursor(text: &str) -> Option<i64> {
    text.strip_prefix('p')?
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

// ------------------------------------------------------------------------------ $export

pub async fn export_system(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, state, None).await
}

pub async fn export_organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, state, Some(path.into_inner())).await
}

async fn kick_off(
    req: HttpRequest,
    state: web::Data<AppState>,
    organization: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let principal = auth::client(&req, &state, EXPORT_SCOPE).await?;
    // The organization: the one asked for, within what the client may see.
    let organization = match (organization, &principal.organization_id) {
        (Some(asked), Some(own)) if &asked != own => {
            return Err(ApiError::one(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                format!(
                    "client {} may only export the records of organization {own}, not {asked}",
                    principal.client_id
                ),
            ));
        }
        (Some(asked), _) => Some(asked),
        (None, own) => own.clone(),
    };
    let prefers_async = req
        .headers()
        .get_all("Prefer")
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    if !prefers_async {
        return Err(ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::Required,
            "an export runs asynchronously: send the header `Prefer: respond-async`",
        ));
    }
    let params = Params::parse(&req, &[KICK_OFF_PARAMS, UNSUPPORTED_PARAMS].concat())?;
    params.check_format()?;
    for unsupported in UNSUPPORTED_PARAMS {
        if params.get(unsupported).is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Outcome::one(
                    Issue::error(
                        IssueCode::NotSupported,
                        format!(
                            "`{unsupported}` is not supported by gerbang's $export; leave it out"
                        ),
                    )
                    .at(unsupported),
                ),
            ));
        }
    }
    if let Some(f) = params.get("_outputFormat")
        && !matches!(
            f.trim(),
            "application/fhir+ndjson" | "application/ndjson" | "ndjson"
        )
    {
        return Err(bad(
            "_outputFormat",
            format!(
                "`_outputFormat` `{f}` is not supported; gerbang writes application/fhir+ndjson"
            ),
        ));
    }
    let since = params.instant("_since")?;
    let supported = crate::pull::supported_types(&state.mappings);
    let mut types: Vec<String> = Vec::new();
    if let Some(list) = params.get("_type") {
        for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !supported.iter().any(|s| s == t) {
                return Err(bad(
                    "_type",
                    format!(
                        "`_type` names `{t}`, which gerbang does not export; it exports {}",
                        supported.join(", ")
                    ),
                ));
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
        if types.is_empty() {
            return Err(bad(
                "_type",
                "`_type` is empty; name resource types, e.g. `_type=Observation,Immunization`",
            ));
        }
    }

    let base = state.auth.base_url(&req);
    let request = format!("{base}{}", req.uri());
    let job = state
        .store
        .create_export_job(&NewExportJob {
            id: uuid::Uuid::new_v4().simple().to_string(),
            requester: principal.actor(),
            organization_id: organization.clone(),
            since,
            types,
            request,
            created_at: crate::time::now_millis(),
        })
        .await
        .map_err(ApiError::unavailable)?;
    let detail = format!(
        "export {}: _type={} _since={}",
        job.id,
        if job.types.is_empty() {
            "*".to_string()
        } else {
            job.types.join(",")
        },
        job.since.map(instant).unwrap_or_else(|| "-".into())
    );
    audit(&state, &principal.actor(), "export", organization, detail).await?;
    state.exports.wake.notify_one();
    let status_url = format!("{base}/fhir/$export-status/{}", job.id);
    let outcome = Outcome::one(Issue::new(
        Severity::Information,
        IssueCode::Informational,
        format!("export {} started; poll {status_url}", job.id),
    ));
    Ok(HttpResponse::Accepted()
        .insert_header(("Content-Location", status_url))
        .content_type("application/fhir+json")
        .json(outcome.to_operation_outcome()))
}

/// The client's own job, or 404 (another client's job is as invisible as a missing one).
async fn own_job(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    job_id: &str,
) -> Result<(auth::Principal, ExportJob), ApiError> {
    let principal = auth::client(req, state, EXPORT_SCOPE).await?;
    let job = state
        .store
        .export_job(job_id)
        .await
        .map_err(ApiError::unavailable)?;
    match job {
        Some(j) if j.requester == principal.actor() && j.status != ExportStatus::Cancelled => {
            Ok((principal, j))
        }
        _ => Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotFound,
            format!("no export {job_id} for this client (unknown, cancelled or forgotten)"),
        )),
    }
}

fn expired(job: &ExportJob) -> ApiError {
    ApiError::one(
        StatusCode::GONE,
        IssueCode::NotFound,
        format!(
            "export {} expired at {}; its files are deleted. Start a new export.",
            job.id,
            job.expires_at.map(instant).unwrap_or_default()
        ),
    )
}

pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, job) = own_job(&req, &state, &path).await?;
    let now = crate::time::now_millis();
    if job.expires_at.is_some_and(|t| t <= now) {
        return Err(expired(&job));
    }
    match job.status {
        ExportStatus::InProgress => {
            let progress = match job.records_total {
                Some(total) if total > 0 => format!(
                    "{}% ({} of {total} Bundles, {} resources)",
                    job.records_done * 100 / total,
                    job.records_done,
                    job.resources_done
                ),
                Some(_) => "finishing (nothing to export)".to_string(),
                None => "queued".to_string(),
            };
            Ok(HttpResponse::Accepted()
                .insert_header(("X-Progress", progress))
                .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
                .finish())
        }
        ExportStatus::Completed => {
            let mut res = HttpResponse::Ok();
            if let Some(t) = job.expires_at {
                res.insert_header(("Expires", http_date(t)));
            }
            Ok(res
                .content_type("application/json")
                .json(job.manifest.unwrap_or(Value::Null)))
        }
        ExportStatus::Failed => Err(ApiError::one(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueCode::Exception,
            format!(
                "export {} failed: {}",
                job.id,
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        ExportStatus::Cancelled => unreachable!("own_job hides cancelled jobs"),
    }
}

pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (principal, job) = own_job(&req, &state, &path).await?;
    state
        .store
        .cancel_export_job(&job.id, crate::time::now_millis())
        .await
        .map_err(ApiError::unavailable)?;
    // The files, if this instance has them; a running worker stops at its next page and
    // deletes its partial files; other instances' sweeps delete theirs.
    let dir = state.exports.job_dir(&job.id);
    let _ = web::block(move || remove_dir(&dir)).await;
    audit(
        &state,
        &principal.actor(),
        "export-cancel",
        job.organization_id.clone(),
        format!("export {} cancelled", job.id),
    )
    .await?;
    let outcome = Outcome::one(Issue::new(
        Severity::Information,
        IssueCode::Informational,
        format!("export {} cancelled; its files are deleted", job.id),
    ));
    Ok(fhir_json(
        StatusCode::ACCEPTED,
        &outcome.to_operation_outcome(),
    ))
}

pub async fn file(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (job_id, name) = path.into_inner();
    let (principal, job) = own_job(&req, &state, &job_id).await?;
    if job
        .expires_at
        .is_some_and(|t| t <= crate::time::now_millis())
    {
        return Err(expired(&job));
    }
    let listed = job.status == ExportStatus::Completed
        && job.manifest.as_ref().is_some_and(|m| {
            m["output"].as_array().is_some_and(|o| {
                o.iter()
                    .any(|f| f["type"].as_str().is_some_and(|t| file_name(t) == name))
            })
        });
    let not_found = |why: String| ApiError::one(StatusCode::NOT_FOUND, IssueCode::NotFound, why);
    if !listed {
        return Err(not_found(format!(
            "export {job_id} has no file {name}; see the `output` of its manifest"
        )));
    }
    let path = state.exports.job_dir(&job.id).join(&name);
    let file = match web::block(move || std::fs::File::open(&path)).await {
        Ok(Ok(f)) => f,
        _ => {
            return Err(not_found(format!(
                "the files of export {job_id} are on the gateway instance that wrote them ({}), not on this one; \
                 send export requests to one instance, or share [export] dir between them",
                job.owner.as_deref().unwrap_or("unknown")
            )));
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    audit(
        &state,
        &principal.actor(),
        "pull",
        job.organization_id.clone(),
        format!("export {job_id}: file {name}"),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/fhir+ndjson")
        .body(actix_web::body::SizedStream::new(len, stream_file(file))))
}

/// A file as a stream of 64 KiB chunks, read off the async threads: never all in memory.
fn stream_file(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((file, buf))) => Some((Ok(web::Bytes::from(buf)), Some(file))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    })
}

// ------------------------------------------------------------------------------ helpers

/// The query parameters, each at most once, only the `allowed` ones.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(req: &HttpRequest, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| {
                ApiError::one(
                    StatusCode::BAD_REQUEST,
                    IssueCode::Invalid,
                    format!("bad query string: {e}"),
                )
            })?
            .into_inner();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(
                    k,
                    format!(
                        "unknown parameter `{k}`; this endpoint takes {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if pairs[..i].iter().any(|(x, _)| x == k) {
                return Err(bad(k, format!("`{k}` is given more than once")));
            }
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `_format`, if given, must be JSON.
    fn check_format(&self) -> Result<(), ApiError> {
        match self.get("_format") {
            None | Some("json" | "application/json" | "application/fhir+json") => Ok(()),
            Some(f) => Err(bad(
                "_format",
                format!("`_format` `{f}` is not supported; gerbang answers application/fhir+json"),
            )),
        }
    }

    /// An instant parameter, in ms.
    fn instant(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        crate::time::parse_instant(text)
            .map(Some)
            .map_err(|_| {
                bad(
                    name,
                    format!(
                        "`{name}` must be a FHIR instant such as 2026-11-03T00:00:00+07:00 (with `+` written %2B in a URL), not `{text}`"
                    ),
                )
            })
    }
}

fn bad(param: &str, text: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        Outcome::one(Issue::error(IssueCode::Value, text).at(param)),
    )
}

/// Percent-encoding of a query value (instants: `+` and `:`).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// gerbang's URL for links: `[auth] public_url` if set, else `scheme://host` as the client
/// reached gerbang (behind a proxy: `Forwarded` / `X-Forwarded-*`).
fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    organization_id: Option<String>,
    detail: String,
) -> Result<(), ApiError> {
    state
        .store
        .audit(AuditEvent {
            at: crate::time::now_millis(),
            actor: actor.to_string(),
            action: action.to_string(),
            receipt_id: None,
            organization_id,
            detail: Some(detail),
        })
        .await
        .map_err(ApiError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        assert_eq!(decode_cursor(&encode_cursor(123)), Some(123));
        assert_eq!(decode_cursor("123"), None);
        assert_eq!(decode_cursor("p-1"), None);
        assert_eq!(decode_cursor("pabc"), None);
    }

    #[test]
    fn an_unencoded_plus_is_taken_back() {
        assert_eq!(
            crate::time::query_instant("2026-11-03T00:00:00 07:00"),
            "2026-11-03T00:00:00+07:00"
        );
        assert_eq!(
            encode("2026-11-03T00:00:00+07:00"),
            "2026-11-03T00%3A00%3A00%2B07%3A00"
        );
    }

    #[tokio::test]
    async fn files_stream_in_chunks_and_whole() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Observation.ndjson");
        let text: String = (0..20000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        assert!(text.len() > 3 * 64 * 1024 / 2);
        std::fs::write(&path, &text).unwrap();
        let chunks: Vec<web::Bytes> = stream_file(std::fs::File::open(&path).unwrap())
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert!(chunks.len() >= 2);
        assert!(chunks.iter().all(|c| c.len() <= 64 * 1024));
        assert_eq!(chunks.concat(), text.as_bytes());
    }

    #[test]
    fn feed_entries_carry_the_receipt_id_and_delivery_time() {
        let e = feed_entry(FeedItem {
            seq: 7,
            receipt_id: "r-1".into(),
            organization_id: "100".into(),
            record_type: "posyandu.balita".into(),
            delivered_at: 1_700_000_000_123,
            bundle: json!({"resourceType": "Bundle", "type": "transaction", "entry": []}),
            cancelled: false,
        });
        assert_eq!(
            serde_json::to_string(&e["resource"]).unwrap(),
            r#"{"resourceType":"Bundle","id":"r-1","meta":{"lastUpdated":"2023-11-14T22:13:20.123+00:00"},"type":"transaction","entry":[]}"#
        );
        assert_eq!(e["fullUrl"], "urn:uuid:r-1");
    }
}
