//! What the web console's overview reads: receipts per organization and status with the age
//! of each organization's queue, and the deliveries of the last hours (when each delivered
//! revision was accepted and when SATUSEHAT took it), from which the console draws delivery
//! rate and latency; and, for a facility's own page, its receipts per status. Aggregation into hours and percentiles is done by the caller, in plain
//! Rust: the same on both databases, and unit-testable.

use super::db::args;
use super::{Result, Status, Store};
use std::collections::BTreeMap;

/// One organization's receipts: how many in each status, and its queue's age.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrganizationQueue {
    pub organization_id: String,
    /// Receipts per status; a status without receipts is absent.
    pub counts: BTreeMap<Status, u64>,
    /// When the oldest work still waiting (queued, retrying or being delivered) was
    /// accepted (ms); None when nothing waits.
    pub oldest_waiting_since: Option<i64>,
}

/// One delivered revision: accepted at, delivered at (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub accepted_at: i64,
    pub delivered_at: i64,
}

/// At most this many deliveries are read for the charts (a day at ~6 records a second):
/// the overview stays cheap on a busy gateway, and the newest are the ones read.
pub const MAX_DELIVERIES: i64 = 500_000;

impl Store {
    /// Receipts per organization and status, with each organization's queue age; by
    /// organization id.
    pub async fn organization_queues(&self) -> Result<Vec<OrganizationQueue>> {
        self.read(|tx| {
            Box::pin(async move {
                let mut by_org: BTreeMap<String, OrganizationQueue> = BTreeMap::new();
                for row in tx
                    .query(
                        "SELECT organization_id, status, COUNT(*) FROM receipts GROUP BY organization_id, status",
                        args![],
                    )
                    .await?
                {
                    let org: String = row.get(0)?;
                    let status = Status::parse(&row.get::<String>(1)?)?;
                    let n: i64 = row.get(2)?;
                    let q = by_org.entry(org.clone()).or_insert_with(|| OrganizationQueue {
                        organization_id: org,
                        ..Default::default()
                    });
                    q.counts.insert(status, n as u64);
                }
                // The work waiting longest: a revision since it was accepted, a
                // cancellation since it was asked for.
                for row in tx
                    .query(
                        "SELECT r.organization_id, MIN(COALESCE(v.received_at, r.cancel_requested_at, r.updated_at)) \
                         FROM receipts r LEFT JOIN revisions v ON v.receipt_id = r.id AND v.revision = r.sending_revision \
                         WHERE r.status IN ('queued', 'retrying', 'delivering') GROUP BY r.organization_id",
                        args![],
                    )
                    .await?
                {
                    let org: String = row.get(0)?;
                    if let Some(q) = by_org.get_mut(&org) {
                        q.oldest_waiting_since = row.get(1)?;
                    }
                }
                Ok(by_org.into_values().collect())
            })
        })
        .await
    }

    /// One facility's receipts per status: every status, in [`Status::ALL`]'s order, zero
    /// when it has none. The facility is chosen here, in the query.
    pub async fn facility_counts(&self, facility_id: &str) -> Result<Vec<(Status, u64)>> {
        let f = facility_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let mut out: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
                for row in tx
                    .query(
                        "SELECT status, COUNT(*) FROM receipts WHERE facility_id = $1 GROUP BY status",
                        args![f],
                    )
                    .await?
                {
                    let status = Status::parse(&row.get::<String>(0)?)?;
                    let n: i64 = row.get(1)?;
                    if let Some(slot) = out.iter_mut().find(|(s, _)| *s == status) {
                        slot.1 = n as u64;
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// Revisions delivered at or after `since` (ms), newest first, at most
    /// [`MAX_DELIVERIES`].
    pub async fn deliveries_since(&self, since: i64) -> Result<Vec<Delivery>> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT received_at, outcome_at FROM revisions WHERE outcome = 'delivered' AND outcome_at >= $1 \
                     ORDER BY outcome_at DESC LIMIT $2",
                    args![since, MAX_DELIVERIES],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Delivery {
                        accepted_at: r.get(0)?,
                        delivered_at: r.get(1)?,
                    })
                })
                .collect()
            })
        })
        .await
    }
}
