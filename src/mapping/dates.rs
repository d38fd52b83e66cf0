//! When a record says things happened: checked before mapping, so an impossible or
//! out-of-range date is refused naming the facility's field rather than a Bundle element.
//!
//! Each record type declares in `mapping.yaml` which fields say when (JSON pointers):
//! `dates: {visit: /waktu_mulai, visit_end: /waktu_selesai, births: [/peserta/tanggal_lahir],
//! zone: /zona_waktu}`. Checked:
//!
//! - each is a real date (`2026-02-30` is not) and, for a local date-time, a real time;
//! - the visit is not before 3 June 2014, the earliest date SATUSEHAT takes (the start of
//!   JKN; "Not Allowed : Future Date or Past Date before 3rd June 2014", rule 10406);
//! - neither the visit's start nor its end is in the future. "Now" is passed in
//!   ([`check`]'s `now`), so mapping stays a pure function; without it (the CLI, golden tests,
//!   re-mapping a stored record) this one check is skipped. Local times are read in the
//!   record's zone (WIB when it names none), and [`crate::time::FUTURE_TOLERANCE_SECS`] is
//!   allowed for a facility clock that runs ahead — the same allowance as the validator's
//!   `not-future`: a larger one here would only move the refusal to a later step, where it
//!   names a Bundle element instead of the facility's field;
//! - the visit ends after it starts (SATUSEHAT rule 10173);
//! - no one is born after the visit.

use crate::fhir::{Issue, IssueCode};
use crate::time::FUTURE_TOLERANCE_SECS;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

/// The earliest visit date SATUSEHAT takes (from its first instant, UTC, as the validator
/// counts it).
pub const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(2014, 6, 3) {
    Some(d) => d,
    None => panic!("a real date"),
};

/// The zone of a record that names none (as the mappings assume).
const DEFAULT_ZONE: &str = "WIB";

/// `mapping.yaml` → `dates`: which fields of the record say when.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateFields {
    /// JSON pointer to the visit's start: a local date-time (`2026-05-12T09:00`, seconds and
    /// an offset optional) or a date.
    #[serde(default)]
    pub visit: Option<String>,
    /// JSON pointer to the visit's end, written like its start.
    #[serde(default)]
    pub visit_end: Option<String>,
    /// JSON pointers to birth dates (`YYYY-MM-DD`).
    #[serde(default)]
    pub births: Vec<String>,
    /// JSON pointer to the record's time zone (WIB, WITA, WIT or an offset); WIB without.
    #[serde(default)]
    pub zone: Option<String>,
}

/// `/peserta/tanggal_lahir` → `$.peserta.tanggal_lahir`.
fn path_of(pointer: &str) -> String {
    format!("${}", pointer.replace('/', "."))
}

/// The calendar date of a date or local date-time, or what is wrong with it.
fn date_of(text: &str) -> Result<NaiveDate, &'static str> {
    let date = text
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or("is not a real calendar date: write it YYYY-MM-DD with a day that exists in that month (e.g. 2026-02-28)")?;
    if let Some(time) = text.get(11..16)
        && NaiveTime::parse_from_str(time, "%H:%M").is_err()
    {
        return Err("is not a real time of day: write hh:mm from 00:00 to 23:59");
    }
    Ok(date)
}

/// Whether a date or a local date-time (`2026-05-12T09:00`, `2026-05-12 09:00:00+07:00`)
/// names a day and time that exist. What the text looks like is the pattern's business.
pub fn is_real(text: &str) -> bool {
    date_of(text).is_ok()
}

/// The instant of a date or local date-time read in `zone` (unless it carries its own
/// offset). A date counts from its first local instant; `hh:mm` with an offset and no seconds
/// (which the input schemas allow) is read as `hh:mm:00`.
fn instant_of(text: &str, zone: &str) -> Option<DateTime<Utc>> {
    let parse = |t: &str| crate::time::parse_local(t, zone).ok();
    let local = parse(text)
        .or_else(|| match (text.get(..16), text.get(16..)) {
            (Some(minutes), Some(offset)) if offset.starts_with(['Z', '+', '-']) => {
                parse(&format!("{minutes}:00{offset}"))
            }
            _ => None,
        })
        .or_else(|| {
            (text.len() == 10)
                .then(|| parse(&format!("{text}T00:00")))
                .flatten()
        })?;
    Some(local.with_timezone(&Utc))
}

/// One declared time of the record: where, as written, its local date and its instant.
struct When {
    at: String,
    text: String,
    date: NaiveDate,
    instant: Option<DateTime<Utc>>,
}

/// Issues with the declared dates of `record`; `now` is the gateway's clock, None to skip the
/// future check. Fields that are absent or not text are the schema's business.
pub fn check(record: &Value, fields: &DateFields, now: Option<DateTime<Utc>>) -> Vec<Issue> {
    let mut out = Vec::new();
    let zone = fields
        .zone
        .as_deref()
        .and_then(|p| record.pointer(p))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_ZONE);
    let mut read = |pointer: &str| -> Option<When> {
        let text = record.pointer(pointer)?.as_str()?;
        let at = path_of(pointer);
        match date_of(text) {
            Ok(date) => {
                let instant = instant_of(text, zone);
                Some(When {
                    at,
                    text: text.to_string(),
                    date,
                    instant,
                })
            }
            Err(why) => {
                out.push(Issue::error(IssueCode::Value, format!("{at} {why}")).at(at));
                None
            }
        }
    };
    let visit = fields.visit.as_deref().and_then(&mut read);
    let end = fields.visit_end.as_deref().and_then(&mut read);
    let births: Vec<When> = fields.births.iter().filter_map(|p| read(p)).collect();

    if let Some(v) = &visit {
        let earliest = Utc.from_utc_datetime(&EARLIEST.and_time(NaiveTime::MIN));
        if v.instant.is_some_and(|t| t < earliest) {
            out.push(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!("{} is before 3 June 2014: SATUSEHAT takes no visit before that date (the start of JKN; rule 10406) — check the year", v.at),
                )
                .at(v.at.clone()),
            );
        }
        for b in &births {
            if b.date > v.date {
                out.push(
                    Issue::error(
                        IssueCode::BusinessRule,
                        format!("{} is after the visit ({}, {}): no one is seen before they are born — check both dates", b.at, v.at, v.date),
                    )
                    .at(b.at.clone()),
                );
            }
        }
        if let Some(e) = &end
            && let (Some(start), Some(stop)) = (v.instant, e.instant)
            && stop <= start
        {
            out.push(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!("{} must be after {}: a visit ends after it starts (SATUSEHAT rule 10173) — check both times", e.at, v.at),
                )
                .at(e.at.clone()),
            );
        }
    }
    if let Some(now) = now {
        let latest = now + chrono::Duration::seconds(FUTURE_TOLERANCE_SECS);
        // The start first: a future visit is one issue, not two.
        if let Some(w) = [&visit, &end]
            .into_iter()
            .flatten()
            .find(|w| w.instant.is_some_and(|t| t > latest))
        {
            out.push(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!(
                        "{} is in the future: {} ({zone} unless it carries its own offset) is {}, later than the gateway's clock ({}) by more than the {} minutes allowed for clock differences — send the time the visit took place, in local time, and check the clock of the sending system",
                        w.at,
                        w.text,
                        crate::time::format_utc(w.instant.unwrap_or(now)),
                        crate::time::format_utc(now),
                        FUTURE_TOLERANCE_SECS / 60
                    ),
                )
                .at(w.at.clone()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> DateFields {
        DateFields {
            visit: Some("/waktu_mulai".into()),
            visit_end: Some("/waktu_selesai".into()),
            births: vec!["/peserta/tanggal_lahir".into()],
            zone: Some("/zona_waktu".into()),
        }
    }

    /// 2026-12-07 03:00 UTC = 10:00 WIB = 12:00 WIT.
    fn now() -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap())
    }

    fn texts(record: Value) -> Vec<String> {
        check(&record, &fields(), now())
            .into_iter()
            .map(|i| {
                assert!(
                    i.text.starts_with(i.expression.as_deref().unwrap()),
                    "{i:?}"
                );
                i.text
            })
            .collect()
    }

    #[test]
    fn ordinary_dates_pass() {
        assert!(texts(json!({"waktu_mulai": "2026-05-12T09:00", "waktu_selesai": "2026-05-12T09:10", "peserta": {"tanggal_lahir": "2024-02-29"}})).is_empty());
        // 11:50 WIT is 02:50 UTC: the past, though the date is "today" only east of Jakarta.
        assert!(texts(json!({"waktu_mulai": "2026-12-07T11:50", "zona_waktu": "WIT", "peserta": {"tanggal_lahir": "2026-12-07"}})).is_empty());
        // A clock up to five minutes ahead.
        assert!(texts(json!({"waktu_mulai": "2026-12-07T10:04:00"})).is_empty());
        assert!(texts(json!({"waktu_mulai": "2014-06-03T07:00"})).is_empty());
        assert!(
            texts(json!({})).is_empty(),
            "absent fields are the schema's business"
        );
    }

    #[test]
    fn impossible_dates_and_times_are_refused() {
        let t = texts(
            json!({"waktu_mulai": "2026-02-30T09:00", "peserta": {"tanggal_lahir": "2025-02-29"}}),
        );
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].starts_with("$.waktu_mulai is not a real calendar date"));
        assert!(t[1].starts_with("$.peserta.tanggal_lahir is not a real calendar date"));
        let t = texts(json!({"waktu_mulai": "2026-02-03T25:00"}));
        assert!(t[0].contains("not a real time"), "{t:?}");
    }

    #[test]
    fn future_visits_are_refused_in_the_records_own_zone() {
        // 10:30 WIB is 03:30 UTC: half an hour ahead.
        let t =
            texts(json!({"waktu_mulai": "2026-12-07T10:30", "waktu_selesai": "2026-12-07T10:40"}));
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(
            t[0].starts_with("$.waktu_mulai is in the future") && t[0].contains("5 minutes"),
            "{t:?}"
        );
        // The same wall-clock time in WIT (01:30 UTC) is the past; an end in the future is not.
        assert!(texts(json!({"waktu_mulai": "2026-12-07T10:30", "zona_waktu": "WIT"})).is_empty());
        let t =
            texts(json!({"waktu_mulai": "2026-12-07T09:30", "waktu_selesai": "2026-12-07T12:30"}));
        assert!(
            t[0].starts_with("$.waktu_selesai is in the future"),
            "{t:?}"
        );
        // An offset of its own wins over the zone.
        let t = texts(json!({"waktu_mulai": "2026-12-07T10:30+00:00", "zona_waktu": "WIT"}));
        assert!(t[0].starts_with("$.waktu_mulai is in the future"), "{t:?}");
        // Without a clock, the future is not judged.
        assert!(check(&json!({"waktu_mulai": "2099-01-01T08:00"}), &fields(), None).is_empty());
    }

    #[test]
    fn visits_before_satusehat_births_after_the_visit_and_ends_before_starts_are_refused() {
        let t = texts(json!({"waktu_mulai": "2014-06-02T08:00"}));
        assert!(t[0].contains("3 June 2014"), "{t:?}");
        let t = texts(
            json!({"waktu_mulai": "2026-05-12T09:00", "peserta": {"tanggal_lahir": "2026-05-13"}}),
        );
        assert!(
            t[0].starts_with("$.peserta.tanggal_lahir is after the visit"),
            "{t:?}"
        );
        let t =
            texts(json!({"waktu_mulai": "2026-05-12T09:00", "waktu_selesai": "2026-05-12T09:00"}));
        assert!(
            t[0].starts_with("$.waktu_selesai must be after $.waktu_mulai"),
            "{t:?}"
        );
    }
}
