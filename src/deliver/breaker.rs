//! Per-organization flow control: a concurrency cap and a circuit breaker.
//!
//! When SATUSEHAT keeps failing for an organization (5xx, 429, timeouts, refused
//! connections), the breaker opens and nothing is sent for that organization until it
//! half-opens: then a single probe is let through. A successful probe closes it; a failed one
//! opens it again for twice as long, up to a cap. So the request rate against a failing
//! upstream is bounded — about one request per open period per organization — instead of
//! every due record retrying on its own schedule. Answers that mean "SATUSEHAT is up" (any
//! 2xx, and refusals such as 4xx rule violations) close the breaker.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerPolicy {
    /// Consecutive transient failures that open the breaker.
    pub failures: u32,
    /// First open period, seconds; doubles on every failed probe.
    pub open_secs: f64,
    /// Longest open period, seconds.
    pub max_open_secs: f64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            open_secs: 30.0,
            max_open_secs: 300.0,
        }
    }
}

#[derive(Debug, Default)]
struct Org {
    in_flight: usize,
    failures: u32,
    open_until: Option<Instant>,
    open_for: Option<Duration>,
    probing: bool,
}

/// What the forwarder may do for an organization right now.
#[derive(Debug, PartialEq)]
pub enum Allowance {
    /// Up to this many more deliveries.
    Send(usize),
    /// Nothing until this instant.
    WaitUntil(Instant),
}

pub struct FlowControl {
    policy: BreakerPolicy,
    per_org: usize,
    orgs: Mutex<HashMap<String, Org>>,
}

/// Where an organization's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Nothing is sent for `remaining` more.
    Open { remaining: Duration },
    /// One probe may go; its answer closes or reopens the breaker.
    HalfOpen,
}

/// One organization's breaker, as shown to operators.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerView {
    pub organization_id: String,
    pub state: BreakerState,
    /// Transient failures in a row.
    pub failures: u32,
    /// Deliveries under way now.
    pub in_flight: usize,
}

/// How a delivery attempt went, as far as the upstream's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Health {
    /// SATUSEHAT answered (delivered, duplicate, or a refusal of the record itself).
    Up,
    /// 5xx, 429, timeout, connection trouble.
    Failing,
}

impl FlowControl {
    pub fn new(policy: BreakerPolicy, per_org: usize) -> Self {
        FlowControl {
            policy,
            per_org: per_org.max(1),
            orgs: Mutex::new(HashMap::new()),
        }
    }

    pub fn allowance(&self, org: &str, now: Instant) -> Allowance {
        let mut orgs = self.orgs.lock().expect("flow control");
        let o = orgs.entry(org.to_string()).or_default();
        match o.open_until {
            Some(until) if now < until => Allowance::WaitUntil(until),
            // Half-open: one probe at a time.
            Some(_) => Allowance::Send(if o.probing || o.in_flight > 0 { 0 } else { 1 }),
            None => Allowance::Send(self.per_org.saturating_sub(o.in_flight)),
        }
    }

    /// A delivery for `org` starts.
    pub fn started(&self, org: &str) {
        let mut orgs = self.orgs.lock().expect("flow control");
        let o = orgs.entry(org.to_string()).or_default();
        o.in_flight += 1;
        if o.open_until.is_some() {
            o.probing = true;
        }
    }

    /// A delivery for `org` ended; returns `Some(open period)` when this opened the breaker.
    pub fn finished(&self, org: &str, health: Health, now: Instant) -> Option<Duration> {
        let mut orgs = self.orgs.lock().expect("flow control");
        let o = orgs.entry(org.to_string()).or_default();
        o.in_flight = o.in_flight.saturating_sub(1);
        let was_probe = std::mem::take(&mut o.probing);
        match health {
            Health::Up => {
                *o = Org {
                    in_flight: o.in_flight,
                    ..Org::default()
                };
                None
            }
            Health::Failing => {
                o.failures += 1;
                let trip =
                    was_probe || (o.open_until.is_none() && o.failures >= self.policy.failures);
                if !trip {
                    return None;
                }
                let base = Duration::from_secs_f64(self.policy.open_secs);
                let cap = Duration::from_secs_f64(self.policy.max_open_secs);
                let open_for = match (was_probe, o.open_for) {
                    (true, Some(prev)) => (prev * 2).min(cap),
                    _ => base.min(cap),
                };
                o.open_for = Some(open_for);
                o.open_until = Some(now + open_for);
                Some(open_for)
            }
        }
    }

    /// Every organization's breaker as it stands at `now`, by organization id: read-only, for
    /// the web console (the state lives here, in the forwarder's memory).
    pub fn states(&self, now: Instant) -> Vec<BreakerView> {
        let orgs = self.orgs.lock().expect("flow control");
        let mut out: Vec<BreakerView> = orgs
            .iter()
            .map(|(id, o)| BreakerView {
                organization_id: id.clone(),
                state: match o.open_until {
                    None => BreakerState::Closed,
                    Some(until) if now < until => BreakerState::Open {
                        remaining: until - now,
                    },
                    Some(_) => BreakerState::HalfOpen,
                },
                failures: o.failures,
                in_flight: o.in_flight,
            })
            .collect();
        out.sort_by(|a, b| a.organization_id.cmp(&b.organization_id));
        out
    }

    /// Organizations whose breaker is open, for metrics.
    pub fn open_count(&self, now: Instant) -> usize {
        self.orgs
            .lock()
            .expect("flow control")
            .values()
            .filter(|o| o.open_until.is_some_and(|u| now < u))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc() -> FlowControl {
        FlowControl::new(
            BreakerPolicy {
                failures: 3,
                open_secs: 10.0,
                max_open_secs: 25.0,
            },
            2,
        )
    }

    #[test]
    fn caps_concurrency_per_organization() {
        let f = fc();
        let t = Instant::now();
        assert_eq!(f.allowance("a", t), Allowance::Send(2));
        f.started("a");
        f.started("a");
        assert_eq!(f.allowance("a", t), Allowance::Send(0));
        assert_eq!(
            f.allowance("b", t),
            Allowance::Send(2),
            "another organization is not held up"
        );
        f.finished("a", Health::Up, t);
        assert_eq!(f.allowance("a", t), Allowance::Send(1));
    }

    #[test]
    fn states_show_each_organizations_breaker() {
        let f = fc();
        let t = Instant::now();
        f.started("b");
        f.finished("b", Health::Up, t);
        for _ in 0..3 {
            f.started("a");
            f.finished("a", Health::Failing, t);
        }
        let s = f.states(t + Duration::from_secs(4));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].organization_id, "a");
        assert_eq!(
            s[0].state,
            BreakerState::Open {
                remaining: Duration::from_secs(6)
            }
        );
        assert_eq!(s[0].failures, 3);
        assert_eq!(s[1].state, BreakerState::Closed);
        assert_eq!(
            f.states(t + Duration::from_secs(10))[0].state,
            BreakerState::HalfOpen
        );
    }

    #[test]
    fn opens_after_failures_probes_once_and_backs_off() {
        let f = fc();
        let t = Instant::now();
        for _ in 0..2 {
            f.started("a");
            assert_eq!(f.finished("a", Health::Failing, t), None);
        }
        f.started("a");
        assert_eq!(
            f.finished("a", Health::Failing, t),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            f.allowance("a", t + Duration::from_secs(9)),
            Allowance::WaitUntil(t + Duration::from_secs(10))
        );
        // Half-open: exactly one probe.
        let t1 = t + Duration::from_secs(10);
        assert_eq!(f.allowance("a", t1), Allowance::Send(1));
        f.started("a");
        assert_eq!(f.allowance("a", t1), Allowance::Send(0));
        // The probe fails: open twice as long, then capped.
        assert_eq!(
            f.finished("a", Health::Failing, t1),
            Some(Duration::from_secs(20))
        );
        let t2 = t1 + Duration::from_secs(20);
        f.started("a");
        assert_eq!(
            f.finished("a", Health::Failing, t2),
            Some(Duration::from_secs(25))
        );
        // A successful probe closes it.
        let t3 = t2 + Duration::from_secs(25);
        f.started("a");
        assert_eq!(f.finished("a", Health::Up, t3), None);
        assert_eq!(f.allowance("a", t3), Allowance::Send(2));
    }
}
