//! The SATUSEHAT client: OAuth2 client-credentials tokens per organization (cached until
//! shortly before expiry, one refresh at a time per organization), Patient and Practitioner
//! look-ups by NIK, newborn registration by the mother's NIK, and transaction Bundles. A
//! request answered 401 (token revoked or expired upstream) gets a new token and is repeated
//! once, within the same call.
//!
//! Every failure is classified for the queue: [`CallError::Transient`] is retried later,
//! [`CallError::Rejected`] is SATUSEHAT saying no for good (a dead letter).

use crate::fhir::{self, Outcome};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Paths below a SATUSEHAT host (satusehat.md §1.1).
pub const OAUTH_PATH: &str = "/oauth2/v1";
pub const FHIR_PATH: &str = "/fhir-r4/v1";

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Refresh a token this long before SATUSEHAT says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Error)]
pub enum CallError {
    /// Worth retrying: network trouble, timeouts, 429, 5xx, expired credentials.
    #[error("{message}")]
    Transient {
        message: String,
        http_status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// SATUSEHAT refused the request; retrying the same payload will not help.
    #[error("{message}")]
    Rejected {
        message: String,
        http_status: u16,
        outcome: Value,
    },
    /// gerbang is not set up to send for this organization.
    #[error("{0}")]
    Config(String),
}

impl CallError {
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Transient { http_status, .. } => *http_status,
            CallError::Rejected { http_status, .. } => Some(*http_status),
            CallError::Config(_) => None,
        }
    }
}

struct Token {
    value: String,
    refresh_at: Instant,
}

pub struct SatusehatClient {
    http: reqwest::Client,
    base_url: String,
    credentials: HashMap<String, Credentials>,
    /// One slot per organization; its async mutex makes refreshes single-flight.
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    /// What SATUSEHAT turned out to hold already, per delivery that met a 20002.
    pub found: FoundIds,
}

/// Deliveries that met a 20002 (SATUSEHAT already holds some of the Bundle) and the ids
/// found so far by identifier, remembered per delivery — keyed by receipt id — until it ends.
/// A retried attempt carries on where the last one stopped: it looks up only what is still
/// unknown, rather than re-sending the Bundle to meet 20002 again and looking everything up
/// anew. In memory only: after a restart the first attempt meets the 20002 again and starts
/// over, nothing worse. At most [`FOUND_CAP`] deliveries are remembered; beyond that the
/// longest-untouched is forgotten.
#[derive(Default)]
pub struct FoundIds {
    by_key: Mutex<HashMap<String, (Instant, Vec<ServerId>)>>,
}

/// How many deliveries [`FoundIds`] remembers at most.
pub const FOUND_CAP: usize = 4096;

impl FoundIds {
    /// What was found for `key` so far (each with its fullUrl), if its delivery met a 20002.
    pub fn recall(&self, key: &str) -> Option<Vec<ServerId>> {
        self.by_key
            .lock()
            .expect("found ids")
            .get(key)
            .map(|(_, ids)| ids.clone())
    }

    /// The delivery of `key` met a 20002; add `ids` (those with a fullUrl, which name their
    /// entry) to what was found for it.
    pub fn remember(&self, key: &str, ids: &[ServerId]) {
        let ids = ids.iter().filter(|i| i.full_url.is_some());
        let mut map = self.by_key.lock().expect("found ids");
        if map.len() >= FOUND_CAP && !map.contains_key(key) {
            let oldest = map
                .iter()
                .min_by_key(|(_, (touched, _))| *touched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let (touched, known) = map
            .entry(key.to_string())
            .or_insert_with(|| (Instant::now(), Vec::new()));
        *touched = Instant::now();
        for id in ids {
            if !known.iter().any(|k| k.full_url == id.full_url) {
                known.push(id.clone());
            }
        }
    }

    /// The delivery of `key` ended (delivered or dead letter).
    pub fn forget(&self, key: &str) {
        self.by_key.lock().expect("found ids").remove(key);
    }

    pub fn len(&self) -> usize {
        self.by_key.lock().expect("found ids").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A created or existing resource upstream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerId {
    #[serde(rename = "fullUrl", default, skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    #[serde(rename = "resourceType")]
    pub resource_type: String,
    pub id: String,
}

impl SatusehatClient {
    pub fn new(
        base_url: &str,
        credentials: HashMap<String, Credentials>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("gerbang/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SatusehatClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials,
            tokens: Mutex::new(HashMap::new()),
            found: FoundIds::default(),
        })
    }

    fn fhir_url(&self, rest: &str) -> String {
        format!("{}{FHIR_PATH}{rest}", self.base_url)
    }

    fn slot(&self, org: &str) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        self.tokens
            .lock()
            .expect("token map")
            .entry(org.to_string())
            .or_default()
            .clone()
    }

    /// A valid access token for `org`, fetching a new one if needed. Concurrent callers for
    /// the same organization wait for one refresh instead of each fetching their own.
    pub async fn token(&self, org: &str) -> Result<String, CallError> {
        let slot = self.slot(org);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.value.clone());
            }
        }
        let token = self.fetch_token(org).await?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// A token to replace `refused`, which SATUSEHAT answered 401 (revoked after a key
    /// rotation or a restart upstream, or expired early). Single-flight like [`Self::token`]:
    /// when many requests meet the 401 at once, the first fetches a new token and the others,
    /// finding the slot no longer holds the refused token, take the new one.
    pub async fn renew(&self, org: &str, refused: &str) -> Result<String, CallError> {
        let slot = self.slot(org);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref()
            && t.value != refused
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        *guard = None;
        let token = self.fetch_token(org).await?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    async fn fetch_token(&self, org: &str) -> Result<Token, CallError> {
        let creds = self.credentials.get(org).ok_or_else(|| {
            CallError::Config(format!(
                "no SATUSEHAT credentials for organization {org}: add [organizations.\"{org}\"] client_id/client_secret to the configuration"
            ))
        })?;
        let url = format!(
            "{}{OAUTH_PATH}/accesstoken?grant_type=client_credentials",
            self.base_url
        );
        let resp = self
            .http
            .post(url)
            .form(&[
                ("client_id", creds.client_id.as_str()),
                ("client_secret", creds.client_secret.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transport("token request", e))?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(&resp);
            // A refused credential is a configuration problem, not the record's fault: keep
            // the records queued until an operator fixes it.
            return Err(CallError::Transient {
                message: format!(
                    "SATUSEHAT refused the token request for organization {org} (HTTP {})",
                    status.as_u16()
                ),
                http_status: Some(status.as_u16()),
                retry_after,
            });
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| transport("token response", e))?;
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| CallError::Transient {
                message: "token response without access_token".into(),
                http_status: None,
                retry_after: None,
            })?
            .to_string();
        // Apigee writes every value as a string ("3599"); accept numbers too.
        let expires_in = match body.get("expires_in") {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .unwrap_or(3599);
        let lifetime = Duration::from_secs(expires_in);
        let refresh_in = lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        Ok(Token {
            value,
            refresh_at: Instant::now() + refresh_in,
        })
    }

    /// Send an authorized request; on 401 get a new token and try once more, within the same
    /// call (a second 401 is returned, and classified as transient).
    async fn send(
        &self,
        org: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, CallError> {
        let mut token = self.token(org).await?;
        for attempt in 0..2 {
            let resp = build(&token).send().await.map_err(|e| transport(what, e))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                token = self.renew(org, &token).await?;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The SATUSEHAT id of the resource of type `rt` with identifier `system|value`, if any.
    pub async fn find_by_identifier(
        &self,
        org: &str,
        rt: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<String>, CallError> {
        let url = self.fhir_url(&format!("/{rt}"));
        let ident = format!("{system}|{value}");
        let resp = self
            .send(
                org,
                |t| {
                    self.http
                        .get(&url)
                        .query(&[("identifier", ident.as_str())])
                        .bearer_auth(t)
                        .header("Accept", "application/fhir+json")
                },
                "search",
            )
            .await?;
        let body = classify(resp, &format!("{rt} search")).await?;
        Ok(body
            .pointer("/entry/0/resource/id")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Register a newborn by the mother's NIK. SATUSEHAT answers with non-FHIR JSON
    /// (`{"create_patient": {"data": {"patient_id": …}}}`, satusehat.md §1.4).
    pub async fn create_patient(&self, org: &str, patient: &Value) -> Result<String, CallError> {
        let url = self.fhir_url("/Patient");
        let resp = self
            .send(
                org,
                |t| {
                    self.http
                        .post(&url)
                        .bearer_auth(t)
                        .header("Content-Type", "application/fhir+json")
                        .json(patient)
                },
                "patient registration",
            )
            .await?;
        let body = classify(resp, "patient registration").await?;
        body.pointer("/create_patient/data/patient_id")
            .or_else(|| body.pointer("/data/patient_id"))
            .or_else(|| body.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CallError::Transient {
                message: "patient registration answered without a patient_id".into(),
                http_status: None,
                retry_after: None,
            })
    }

    /// Update a resource SATUSEHAT holds: `PUT {Type}/{id}` with the id also in the body.
    pub async fn put_resource(
        &self,
        org: &str,
        resource_type: &str,
        id: &str,
        resource: &Value,
    ) -> Result<(), CallError> {
        let url = self.fhir_url(&format!("/{resource_type}/{id}"));
        let mut body = resource.clone();
        body["id"] = Value::String(id.to_string());
        let what = format!("update of {resource_type}");
        let resp = self
            .send(
                org,
                |t| {
                    self.http
                        .put(&url)
                        .bearer_auth(t)
                        .header("Content-Type", "application/fhir+json")
                        .header("Accept", "application/fhir+json")
                        .json(&body)
                },
                &what,
            )
            .await?;
        classify(resp, &what).await.map(|_| ())
    }

    /// Read a resource SATUSEHAT holds (`GET {Type}/{id}`); None if it has no such resource.
    pub async fn read_resource(
        &self,
        org: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<Value>, CallError> {
        let url = self.fhir_url(&format!("/{resource_type}/{id}"));
        let what = format!("read of {resource_type}");
        let resp = self
            .send(
                org,
                |t| {
                    self.http
                        .get(&url)
                        .bearer_auth(t)
                        .header("Accept", "application/fhir+json")
                },
                &what,
            )
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        classify(resp, &what).await.map(Some)
    }

    /// POST a transaction Bundle; the ids SATUSEHAT gave each entry, in entry order.
    pub async fn post_transaction(
        &self,
        org: &str,
        bundle: &Value,
    ) -> Result<Vec<ServerId>, CallError> {
        let url = self.fhir_url("");
        let resp = self
            .send(
                org,
                |t| {
                    self.http
                        .post(&url)
                        .bearer_auth(t)
                        .header("Content-Type", "application/fhir+json")
                        .header("Accept", "application/fhir+json")
                        .json(bundle)
                },
                "transaction",
            )
            .await?;
        let body = classify(resp, "transaction").await?;
        let mut ids = Vec::new();
        let responses = body
            .get("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (sent, got) in fhir::entries(bundle).zip(responses) {
            let location = got
                .pointer("/response/location")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut parts = location.split('/');
            if let (Some(rt), Some(id)) = (parts.next(), parts.next()) {
                if !rt.is_empty() && !id.is_empty() {
                    ids.push(ServerId {
                        full_url: sent.full_url.map(str::to_string),
                        resource_type: rt.to_string(),
                        id: id.to_string(),
                    });
                }
            }
        }
        Ok(ids)
    }
}

fn transport(what: &str, e: reqwest::Error) -> CallError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    CallError::Transient {
        message: format!("SATUSEHAT {what} {kind}"),
        http_status: e.status().map(|s| s.as_u16()),
        retry_after: None,
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sort an answer into success (its JSON body), transient or rejected.
async fn classify(resp: reqwest::Response, what: &str) -> Result<Value, CallError> {
    let status = resp.status();
    let code = status.as_u16();
    let retry_after = retry_after(&resp);
    let bytes = resp.bytes().await.map_err(|e| transport(what, e))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    if code == 429 || code == 408 || status.is_server_error() || code == 401 {
        return Err(CallError::Transient {
            message: format!("SATUSEHAT {what} answered HTTP {code}"),
            http_status: Some(code),
            retry_after,
        });
    }
    let outcome = if fhir::resource_type(&body) == Some("OperationOutcome") {
        body
    } else {
        Outcome::one(fhir::Issue::error(
            fhir::IssueCode::Processing,
            format!("SATUSEHAT {what} answered HTTP {code} without an OperationOutcome"),
        ))
        .to_operation_outcome()
    };
    let rules = Outcome::from_operation_outcome(&outcome).rule_numbers();
    let message = if rules.is_empty() {
        format!("SATUSEHAT refused the {what} (HTTP {code})")
    } else {
        format!(
            "SATUSEHAT refused the {what} (HTTP {code}, rule {})",
            rules
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(CallError::Rejected {
        message,
        http_status: code,
        outcome,
    })
}

/// Whether a refusal is SATUSEHAT recognising something it already has (rule 20002).
pub fn is_duplicate(outcome: &Value) -> bool {
    let o = Outcome::from_operation_outcome(outcome);
    !o.issues.is_empty()
        && o.issues
            .iter()
            .all(|i| i.rule == Some(20002) || i.code == fhir::IssueCode::Duplicate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(url: &str, id: &str) -> ServerId {
        ServerId {
            full_url: Some(url.into()),
            resource_type: "Encounter".into(),
            id: id.into(),
        }
    }

    #[test]
    fn found_ids_merge_per_delivery_until_forgotten() {
        let f = FoundIds::default();
        f.remember("r1", &[id("urn:uuid:a", "1")]);
        f.remember("r1", &[id("urn:uuid:a", "1"), id("urn:uuid:b", "2")]);
        // Without a fullUrl an id cannot be matched to an entry: not remembered.
        f.remember(
            "r2",
            &[ServerId {
                full_url: None,
                ..id("", "3")
            }],
        );
        assert_eq!(
            f.recall("r1"),
            Some(vec![id("urn:uuid:a", "1"), id("urn:uuid:b", "2")])
        );
        // The delivery met 20002 although nothing was found yet.
        assert_eq!(f.recall("r2"), Some(vec![]));
        assert_eq!(f.recall("r3"), None);
        f.forget("r1");
        f.forget("r2");
        assert!(f.recall("r1").is_none() && f.is_empty());
    }

    #[test]
    fn found_ids_are_bounded_and_forget_the_longest_untouched() {
        let f = FoundIds::default();
        for i in 0..FOUND_CAP {
            f.remember(&format!("r{i}"), &[id("urn:uuid:a", "1")]);
        }
        // r0 is touched again: r1 is now the longest untouched.
        f.remember("r0", &[id("urn:uuid:b", "2")]);
        f.remember("new", &[id("urn:uuid:a", "1")]);
        assert_eq!(f.len(), FOUND_CAP);
        assert_eq!(f.recall("r1"), None);
        assert_eq!(f.recall("r0").unwrap().len(), 2);
        assert_eq!(f.recall("new").unwrap().len(), 1);
    }
}
