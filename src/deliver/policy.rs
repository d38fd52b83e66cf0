//! When to try again: exponential backoff with full jitter, capped, honouring Retry-After,
//! and when to stop retrying (a record too old or tried too often becomes a dead letter —
//! kept and replayable, never dropped).
//!
//! Retries live in the queue (`next_attempt_at` on the receipt), not in sleeping tasks, so a
//! restart loses no schedule and a failing upstream sees a bounded, spread-out request rate
//! instead of a synchronized retry storm.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Backoff of the first retry before jitter.
    #[serde(with = "humantime_secs")]
    pub base: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_secs")]
    pub cap: Duration,
    /// Give up (dead letter) after this many attempts; 0 means no limit (age still applies).
    pub max_attempts: u32,
    /// Give up when the record has waited this long since it was accepted.
    #[serde(with = "humantime_secs")]
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            max_attempts: 0,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Never retry sooner than this, whatever the jitter draws: it bounds the request rate a
/// single record can cause.
const MIN_DELAY: Duration = Duration::from_millis(500);

impl RetryPolicy {
    /// The wait before the next attempt after `attempts` failed ones: a uniform draw from
    /// `[0, min(cap, base·2^(attempts−1))]` ("full jitter"), at least `retry_after`.
    pub fn delay(&self, attempts: i64, retry_after: Option<Duration>) -> Duration {
        let exp = attempts.clamp(1, 40) as u32 - 1;
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(exp.min(31)))
            .min(self.cap);
        let jittered = Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64));
        jittered.max(MIN_DELAY).max(
            retry_after
                .unwrap_or_default()
                .min(self.cap.max(Duration::from_secs(3600))),
        )
    }

    /// Whether to stop retrying: too many attempts, or the record is too old.
    pub fn exhausted(&self, attempts: i64, accepted_at_ms: i64, now_ms: i64) -> bool {
        (self.max_attempts > 0 && attempts >= self.max_attempts as i64)
            || now_ms.saturating_sub(accepted_at_ms) >= self.max_age.as_millis() as i64
    }
}

/// Durations in configuration are written in seconds (e.g. `base = 2`, `cap = 900`).
pub mod humantime_secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(0.0..=1e9).contains(&secs) {
            return Err(serde::de::Error::custom(
                "a duration in seconds between 0 and 1e9",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let p = RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(p.delay(1, None) <= Duration::from_secs(2));
            assert!(p.delay(1, None) >= MIN_DELAY);
            assert!(p.delay(30, None) <= Duration::from_secs(60));
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.delay(6, None)).collect();
        assert!(draws.len() > 10);
        // Late attempts reach far beyond the first ones on average.
        let avg = |n| {
            (0..400)
                .map(|_| p.delay(n, None).as_secs_f64())
                .sum::<f64>()
                / 400.0
        };
        assert!(avg(8) > 3.0 * avg(1));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            assert!(p.delay(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        }
    }

    #[test]
    fn gives_up_by_attempts_or_age() {
        let p = RetryPolicy {
            max_attempts: 5,
            max_age: Duration::from_secs(100),
            ..Default::default()
        };
        assert!(!p.exhausted(4, 0, 1000));
        assert!(p.exhausted(5, 0, 1000));
        assert!(p.exhausted(1, 0, 100_000));
        let unlimited = RetryPolicy {
            max_attempts: 0,
            ..Default::default()
        };
        assert!(!unlimited.exhausted(10_000, 0, 1000));
    }
}
