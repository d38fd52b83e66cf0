//! Who did what, and when: pushes (in the same transaction as the accept), corrections,
//! cancellations, pulls, replays, discards, tokens. An entry never carries a NIK or a name.

use super::db::{Query, Tx, args};
use super::{Result, Store};
use serde::{Deserialize, Serialize};

/// Who did what to which record, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub at: i64,
    /// `facility:<id>`, `client:<id>`, `operator:<name>` …
    pub actor: String,
    /// push | correct | cancel | pull | replay | discard | …
    pub action: String,
    pub receipt_id: Option<String>,
    pub organization_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub receipt_id: Option<String>,
    pub organization_id: Option<String>,
    pub since: Option<i64>,
    /// Before this instant (ms).
    pub until: Option<i64>,
}

/// Write an entry inside the caller's transaction.
pub(crate) async fn insert(
    tx: &mut dyn Tx,
    at: i64,
    actor: &str,
    action: &str,
    receipt_id: Option<&str>,
    organization_id: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_events (at, actor, action, receipt_id, organization_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        args![at, actor, action, receipt_id, organization_id, detail],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Record who did what (pulled, replayed, discarded …).
    pub async fn audit(&self, e: AuditEvent) -> Result<()> {
        self.write(move |tx| {
            Box::pin(async move {
                insert(
                    tx,
                    e.at,
                    &e.actor,
                    &e.action,
                    e.receipt_id.as_deref(),
                    e.organization_id.as_deref(),
                    e.detail.as_deref(),
                )
                .await
            })
        })
        .await
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        let f = filter.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let mut q = Query::new(
                    "SELECT at, actor, action, receipt_id, organization_id, detail FROM audit_events WHERE 1 = 1",
                );
                q.and_eq("actor", f.actor.as_deref())
                    .and_eq("action", f.action.as_deref())
                    .and_eq("receipt_id", f.receipt_id.as_deref())
                    .and_eq("organization_id", f.organization_id.as_deref());
                if let Some(t) = f.since {
                    let p = q.bind(t);
                    q.push(&format!(" AND at >= {p}"));
                }
                if let Some(t) = f.until {
                    let p = q.bind(t);
                    q.push(&format!(" AND at < {p}"));
                }
                let p = q.bind(limit as i64);
                q.push(&format!(" ORDER BY id DESC LIMIT {p}"));
                tx.query(&q.sql, &q.args)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(AuditEvent {
                            at: r.get(0)?,
                            actor: r.get(1)?,
                            action: r.get(2)?,
                            receipt_id: r.get(3)?,
                            organization_id: r.get(4)?,
                            detail: r.get(5)?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }
}
