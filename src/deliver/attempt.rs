//! One attempt at one leased receipt: make SATUSEHAT hold what the work asks for.
//!
//! - **A revision SATUSEHAT holds nothing of** (the first delivery, or one afresh after a
//!   refusal): resolve people by NIK, POST the transaction Bundle. A 20002 (SATUSEHAT has some
//!   of it already — a lost answer, a refused transaction that was partly stored) is answered
//!   by finding each resource by its identifier and sending only the rest. Search lags writes
//!   upstream: "20002 but not found" is retried later, never taken as final.
//! - **A correction of what SATUSEHAT holds**: the [`plan`] of changes — POST what is new,
//!   `PUT {Type}/{id}` what changed, nothing for what did not, entered-in-error for what the
//!   new revision no longer has.
//! - **A cancellation**: every resource the record owns becomes entered-in-error.
//!
//! Resources found upstream by identifier while delivering a later revision are PUT with that
//! revision's content: what an earlier attempt stored may hold an older one.

use super::client::{CallError, SatusehatClient, ServerId};
use super::plan::{self, HeldId};
use super::resolve::{self, ResolveError};
use crate::fhir;
use crate::store::{Lease, Store};
use crate::time::now_millis;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// What SATUSEHAT holds after a successful attempt.
pub struct Done {
    pub server_ids: Vec<ServerId>,
    /// Some of it was there before the attempt (found by identifier after a 20002).
    pub duplicate: bool,
    pub changes: Option<Value>,
}

pub enum Failure {
    Retry {
        error: String,
        http_status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Dead {
        error: String,
        outcome: Value,
        http_status: Option<u16>,
    },
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transient {
                message,
                http_status,
                retry_after,
            } => Failure::Retry {
                error: message,
                http_status,
                retry_after,
            },
            CallError::Rejected {
                message,
                http_status,
                outcome,
            } => Failure::Dead {
                error: message,
                outcome,
                http_status: Some(http_status),
            },
            // Missing credentials are the operator's to fix; the record waits.
            CallError::Config(message) => Failure::Retry {
                error: message,
                http_status: None,
                retry_after: Some(Duration::from_secs(300)),
            },
        }
    }
}

impl From<ResolveError> for Failure {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Call(c) => Failure::from(c),
            ResolveError::Unknown { message, outcome } => Failure::Dead {
                error: message,
                outcome,
                http_status: None,
            },
        }
    }
}

/// The text of a retry after SATUSEHAT said "duplicate" for resources its search cannot find
/// yet; it becomes the dead letter's text if the retry budget runs out.
pub const DUPLICATE_NOT_FOUND: &str = "SATUSEHAT answered 20002 (duplicate) for resources its identifier search does not find yet \
     (its search index lags behind writes, and a refused transaction may have been partly stored); searching again later";

pub struct Attempt<'a> {
    pub client: &'a SatusehatClient,
    pub store: &'a Store,
}

impl Attempt<'_> {
    pub async fn run(&self, lease: &Lease) -> Result<Done, Failure> {
        match (lease.revision, &lease.bundle, &lease.held) {
            (Some(revision), Some(bundle), None) => {
                let key = format!("{}#{revision}", lease.receipt_id);
                let (ids, duplicate, adopted) =
                    self.create(&lease.organization_id, &key, bundle).await?;
                // Found upstream while delivering a later revision: an earlier attempt may
                // have stored older content there.
                let updated = if revision > 1 && !adopted.is_empty() {
                    let resolved = self.resolve(&lease.organization_id, bundle).await?;
                    let known = known(&ids);
                    self.put_entries(&lease.organization_id, &resolved, bundle, &adopted, &known)
                        .await?;
                    adopted.len()
                } else {
                    0
                };
                let changes = json!({"created": ids.len() - adopted.len(), "updated": updated, "retired": 0, "unchanged": adopted.len() - updated});
                Ok(Done {
                    server_ids: ids,
                    duplicate,
                    changes: Some(changes),
                })
            }
            (Some(revision), Some(bundle), Some(held)) => {
                let held_ids = plan::held_ids(&held.server_ids);
                let plan = plan::plan(held.bundle.as_ref(), &held_ids, Some(bundle));
                let key = format!("{}#{revision}", lease.receipt_id);
                self.apply(
                    lease,
                    &key,
                    &plan,
                    &held_ids,
                    held.bundle.as_ref(),
                    Some(bundle),
                )
                .await
            }
            (None, _, Some(held)) => {
                let held_ids = plan::held_ids(&held.server_ids);
                let plan = plan::plan(held.bundle.as_ref(), &held_ids, None);
                let key = format!("{}#cancel", lease.receipt_id);
                self.apply(lease, &key, &plan, &held_ids, held.bundle.as_ref(), None)
                    .await
            }
            // Nothing held and nothing to send (a cancellation queued before anything was
            // delivered ends without a call).
            _ => Ok(Done {
                server_ids: Vec::new(),
                duplicate: false,
                changes: Some(json!({"created": 0, "updated": 0, "retired": 0, "unchanged": 0})),
            }),
        }
    }

    async fn resolve(&self, org: &str, bundle: &Value) -> Result<Value, Failure> {
        Ok(resolve::resolve(bundle, org, self.client, self.store, now_millis()).await?)
    }

    /// POST `bundle` (after resolving people); after a 20002, find what SATUSEHAT holds by
    /// identifier and send only the rest. The ids of every entry, whether any was there
    /// before, and the fullUrls of the owned entries found there (adopted).
    async fn create(
        &self,
        org: &str,
        key: &str,
        bundle: &Value,
    ) -> Result<(Vec<ServerId>, bool, Vec<String>), Failure> {
        let upstream = self.resolve(org, bundle).await?;
        self.post_with_lookups(org, key, &upstream, bundle).await
    }

    /// POST `upstream` (resolved); after a 20002 look up what SATUSEHAT holds and send the
    /// rest. `stored` is the Bundle as stored, which tells the record's own entries from
    /// look-ups and shared resources.
    async fn post_with_lookups(
        &self,
        org: &str,
        key: &str,
        upstream: &Value,
        stored: &Value,
    ) -> Result<(Vec<ServerId>, bool, Vec<String>), Failure> {
        let found = &self.client.found;
        let mut have = match found.recall(key) {
            // An earlier attempt met 20002 and did not finish resolving it: carry on.
            Some(have) => have,
            None => match self.client.post_transaction(org, upstream).await {
                Ok(ids) => return Ok((ids, false, Vec::new())),
                // Some or all of it was sent before (just before a crash, a lost answer, a
                // partly stored refusal, or another record created a shared resource).
                Err(CallError::Rejected { outcome, .. })
                    if super::client::is_duplicate(&outcome) =>
                {
                    found.remember(key, &[]);
                    Vec::new()
                }
                Err(e) => return Err(refused(e, stored, Sent::Bundle(upstream))),
            },
        };
        // Find what SATUSEHAT has by identifier; if anything is missing, send only that,
        // pointing at what exists. A look-up that failed (timeout, reset, 5xx) is no answer:
        // try again later, rather than re-send what may exist and take its 20002 as a
        // refusal — but remember what the other look-ups found, so the next attempt looks up
        // only the rest.
        let pending = resolve::without_known(upstream, &known(&have));
        let (more, failure) = resolve::by_identifier(self.client, org, &pending).await;
        found.remember(key, &more);
        if let Some(e) = failure {
            return Err(Failure::from(e));
        }
        have.extend(more);
        let adopted: Vec<String> = have
            .iter()
            .filter_map(|s| s.full_url.clone())
            .filter(|u| owned(stored, u))
            .collect();
        let rest = resolve::without_known(upstream, &known(&have));
        if fhir::entries(&rest).next().is_none() {
            return Ok((have, true, adopted));
        }
        // If this answer is lost, the next attempt finds what it created by look-up.
        let mut ids = match self.client.post_transaction(org, &rest).await {
            Ok(ids) => ids,
            Err(CallError::Rejected { outcome, .. }) if super::client::is_duplicate(&outcome) => {
                // SATUSEHAT holds something its search does not show yet.
                return Err(Failure::Retry {
                    error: DUPLICATE_NOT_FOUND.into(),
                    http_status: Some(400),
                    retry_after: None,
                });
            }
            Err(e) => return Err(refused(e, stored, Sent::Bundle(&rest))),
        };
        ids.extend(have);
        Ok((ids, true, adopted))
    }

    /// Carry out a correction's or a cancellation's plan.
    async fn apply(
        &self,
        lease: &Lease,
        key: &str,
        plan: &plan::Plan,
        held: &[HeldId],
        base: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<Done, Failure> {
        let org = &lease.organization_id;
        let mut ids: Vec<ServerId> = held
            .iter()
            .map(|h| ServerId {
                full_url: Some(h.full_url.clone()),
                resource_type: h.resource_type.clone(),
                id: h.id.clone(),
            })
            .collect();
        let mut updated = plan.update.clone();
        let mut duplicate = false;
        // 1. What SATUSEHAT does not hold yet: POST, pointing at what it holds.
        let resolved_new = match new {
            Some(b) => Some(self.resolve(org, b).await?),
            None => None,
        };
        if let (Some(resolved), Some(stored)) = (&resolved_new, new) {
            let creating = resolve::without_known(resolved, &known(&ids));
            if fhir::entries(&creating).next().is_some() {
                let (created, dup, adopted) =
                    self.post_with_lookups(org, key, &creating, stored).await?;
                duplicate = dup;
                updated.extend(adopted);
                ids.extend(created);
            }
        }
        let known_now = known(&ids);
        // 2. What changed: PUT the new content.
        if let (Some(resolved), Some(stored)) = (&resolved_new, new) {
            self.put_entries(org, resolved, stored, &updated, &known_now)
                .await?;
        }
        // 3. What the record no longer has: entered-in-error.
        if !plan.retire.is_empty() {
            let resolved_base = match base {
                Some(b) => Some(self.resolve(org, b).await?),
                None => None,
            };
            for url in &plan.retire {
                let Some(h) = held.iter().find(|h| &h.full_url == url) else {
                    continue;
                };
                let current = match &resolved_base {
                    Some(b) => entry_resource(b, url).cloned(),
                    // Pruned here: what SATUSEHAT holds is the content to retire.
                    None => {
                        self.client
                            .read_resource(org, &h.resource_type, &h.id)
                            .await?
                    }
                };
                let Some(mut resource) = current.as_ref().and_then(plan::entered_in_error) else {
                    continue;
                };
                fhir::rewrite_references(&mut resource, &mut |r| known_now.get(r).cloned());
                self.client
                    .put_resource(org, &h.resource_type, &h.id, &resource)
                    .await?;
            }
        }
        let mut changes = plan::changes(plan);
        changes["updated"] = json!(updated.len());
        self.client.found.forget(key);
        Ok(Done {
            server_ids: ids,
            duplicate,
            changes: Some(changes),
        })
    }

    /// PUT the resources of `resolved` named by `full_urls` to the ids SATUSEHAT gave them,
    /// references rewritten to what it holds. `stored` (the Bundle as stored) is what a
    /// refusal's expressions are rewritten against.
    async fn put_entries(
        &self,
        org: &str,
        resolved: &Value,
        stored: &Value,
        full_urls: &[String],
        known: &HashMap<String, String>,
    ) -> Result<(), Failure> {
        for url in full_urls {
            let (Some(resource), Some(target)) = (entry_resource(resolved, url), known.get(url))
            else {
                continue;
            };
            let Some((rt, id)) = target.split_once('/') else {
                continue;
            };
            let mut resource = resource.clone();
            fhir::rewrite_references(&mut resource, &mut |r| known.get(r).cloned());
            self.client
                .put_resource(org, rt, id, &resource)
                .await
                .map_err(|e| refused(e, stored, Sent::Resource(url)))?;
        }
        Ok(())
    }
}

/// fullUrl → `Type/id` of resources SATUSEHAT holds.
pub fn known(found: &[ServerId]) -> HashMap<String, String> {
    found
        .iter()
        .filter_map(|s| Some((s.full_url.clone()?, format!("{}/{}", s.resource_type, s.id))))
        .collect()
}

fn entry_resource<'a>(bundle: &'a Value, full_url: &str) -> Option<&'a Value> {
    fhir::entries(bundle)
        .find(|e| e.full_url == Some(full_url))
        .and_then(|e| e.resource)
}

/// Whether the entry `full_url` of the stored `bundle` belongs to the record: not a look-up or
/// a shared resource, which carry `ifNoneExist` there.
fn owned(bundle: &Value, full_url: &str) -> bool {
    bundle["entry"].as_array().is_some_and(|entries| {
        entries.iter().any(|e| {
            e["fullUrl"].as_str() == Some(full_url) && e.pointer("/request/ifNoneExist").is_none()
        })
    })
}

/// What a refused call sent: a transaction Bundle, or the resource of one stored entry.
enum Sent<'a> {
    Bundle(&'a Value),
    Resource(&'a str),
}

/// A failed call as a failure of the attempt; a refusal's OperationOutcome with every
/// expression pointing into the Bundle as stored. The Bundle sent lacks the look-up entries
/// (and, after a 20002, what SATUSEHAT held), so its entry numbers differ; a PUT's
/// expressions name the resource alone (`Observation.status`). Rewritten, they lead the
/// facility's view to the field of its own record ([`crate::mapping::provenance`]).
fn refused(e: CallError, stored: &Value, sent: Sent) -> Failure {
    let CallError::Rejected {
        message,
        http_status,
        mut outcome,
    } = e
    else {
        return Failure::from(e);
    };
    let stored_index = |full_url: &str| {
        fhir::entries(stored)
            .find(|e| e.full_url == Some(full_url))
            .map(|e| e.index)
    };
    let rewrite = |expression: &str| -> Option<String> {
        match &sent {
            Sent::Bundle(bundle) => {
                let rest = expression.strip_prefix("Bundle.entry[")?;
                let (n, rest) = rest.split_once(']')?;
                let n: usize = n.parse().ok()?;
                let url = bundle["entry"][n]["fullUrl"].as_str()?;
                Some(format!("Bundle.entry[{}]{rest}", stored_index(url)?))
            }
            Sent::Resource(url) => {
                if expression.starts_with("Bundle.") {
                    return None;
                }
                let i = stored_index(url)?;
                let rt = stored["entry"][i]["resource"]["resourceType"].as_str()?;
                let rest = expression.strip_prefix(rt)?;
                Some(format!("Bundle.entry[{i}].resource{rest}"))
            }
        }
    };
    if let Some(issues) = outcome.get_mut("issue").and_then(Value::as_array_mut) {
        for issue in issues {
            if let Some(exprs) = issue.get_mut("expression").and_then(Value::as_array_mut) {
                for x in exprs {
                    if let Some(new) = x.as_str().and_then(rewrite) {
                        *x = Value::String(new);
                    }
                }
            }
        }
    }
    Failure::Dead {
        error: message,
        outcome,
        http_status: Some(http_status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_point_into_the_bundle_as_stored() {
        let stored = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}, "request": {"ifNoneExist": "identifier=x"}},
            {"fullUrl": "urn:uuid:e", "resource": {"resourceType": "Encounter"}},
            {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Observation"}}]});
        // Sent without the Patient look-up: entry 1 there is entry 2 here.
        let sent = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:e", "resource": {"resourceType": "Encounter"}},
            {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Observation"}}]});
        let oo = |x: &str| CallError::Rejected {
            message: "refused".into(),
            http_status: 400,
            outcome: json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "value", "expression": [x]}]}),
        };
        let expression = |f: Failure| match f {
            Failure::Dead { outcome, .. } => outcome["issue"][0]["expression"][0]
                .as_str()
                .unwrap()
                .to_string(),
            Failure::Retry { .. } => panic!("a refusal is final"),
        };
        assert_eq!(
            expression(refused(
                oo("Bundle.entry[1].resource.valueQuantity.value"),
                &stored,
                Sent::Bundle(&sent)
            )),
            "Bundle.entry[2].resource.valueQuantity.value"
        );
        assert_eq!(
            expression(refused(
                oo("Observation.status"),
                &stored,
                Sent::Resource("urn:uuid:o")
            )),
            "Bundle.entry[2].resource.status"
        );
        // What cannot be placed stays as SATUSEHAT wrote it.
        assert_eq!(
            expression(refused(
                oo("Encounter.period"),
                &stored,
                Sent::Bundle(&sent)
            )),
            "Encounter.period"
        );
    }
}
