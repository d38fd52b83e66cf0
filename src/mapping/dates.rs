//! When a record says things happened: checked before mapping, so an impossible or
//! out-of-range date is refused naming the facility's field rather than a Bundle element.
//!
//! Each record type declares in `mapping.yaml` which fields are the visit's time and which
//! are birth dates (JSON pointers, `dates: {visit: /waktu_mulai, births: [/peserta/tanggal_lahir]}`).
//! Checked, in the record's local calendar:
//!
//! - each is a real date (`2026-02-30` is not) and, for a local date-time, a real time;
//! - the visit is not before 3 June 2014, the earliest date SATUSEHAT takes (the start of
//!   JKN; "Not Allowed : Future Date or Past Date before 3rd June 2014", rule 10406);
//! - the visit is not in the future. "Today" is passed in ([`check`]'s `today`), so mapping
//!   stays a pure function; one day is allowed for time zones (WIT is UTC+9) and a facility
//!   clock that runs ahead. Without `today` (the CLI, golden tests) this check is skipped;
//! - no one is born after the visit.

use crate::fhir::{Issue, IssueCode};
use chrono::{Duration, NaiveDate, NaiveTime};
use serde::Deserialize;
use serde_json::Value;

/// The earliest visit date SATUSEHAT takes.
pub const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(2014, 6, 3) {
    Some(d) => d,
    None => panic!("a real date"),
};

/// How far past today (UTC) a visit may be dated: time zones up to UTC+9 and clock skew.
pub const ALLOWANCE_DAYS: i64 = 1;

/// `mapping.yaml` → `dates`: which fields of the record say when.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateFields {
    /// JSON pointer to the visit's start: a local date-time (`2026-05-12T09:00`, seconds and
    /// an offset optional) or a date.
    #[serde(default)]
    pub visit: Option<String>,
    /// JSON pointers to birth dates (`YYYY-MM-DD`).
    #[serde(default)]
    pub births: Vec<String>,
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

/// Issues with the declared dates of `record`; `today` is the gateway's date (UTC), None to
/// skip the future check. Fields that are absent or not text are the schema's business.
pub fn check(record: &Value, fields: &DateFields, today: Option<NaiveDate>) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut read = |pointer: &str| -> Option<NaiveDate> {
        let text = record.pointer(pointer)?.as_str()?;
        let at = path_of(pointer);
        date_of(text)
            .map_err(|why| {
                out.push(Issue::error(IssueCode::Value, format!("{at} {why}")).at(at.clone()))
            })
            .ok()
    };
    let visit = fields.visit.as_deref().and_then(&mut read);
    let births: Vec<(String, NaiveDate)> = fields
        .births
        .iter()
        .filter_map(|p| read(p).map(|d| (path_of(p), d)))
        .collect();

    if let (Some(pointer), Some(visit)) = (fields.visit.as_deref(), visit) {
        let at = path_of(pointer);
        if visit < EARLIEST {
            out.push(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!("{at} is before 3 June 2014: SATUSEHAT takes no visit before that date (the start of JKN; rule 10406) — check the year"),
                )
                .at(at.clone()),
            );
        }
        if let Some(today) = today {
            let latest = today + Duration::days(ALLOWANCE_DAYS);
            if visit > latest {
                out.push(
                    Issue::error(
                        IssueCode::BusinessRule,
                        format!("{at} is in the future: the visit is dated {visit}, after {latest} (today {today} by the gateway's clock, plus one day allowed for time zones and clock differences) — send the date the visit took place, and check the clock of the sending system"),
                    )
                    .at(at.clone()),
                );
            }
        }
        for (birth_at, birth) in &births {
            if *birth > visit {
                out.push(
                    Issue::error(
                        IssueCode::BusinessRule,
                        format!("{birth_at} is after the visit ({at}, {visit}): no one is seen before they are born — check both dates"),
                    )
                    .at(birth_at.clone()),
                );
            }
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
            births: vec!["/peserta/tanggal_lahir".into()],
        }
    }

    fn today() -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(2026, 12, 7)
    }

    fn paths(record: Value) -> Vec<String> {
        check(&record, &fields(), today())
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
        assert!(paths(json!({"waktu_mulai": "2026-05-12T09:00", "peserta": {"tanggal_lahir": "2024-02-29"}})).is_empty());
        assert!(paths(json!({"waktu_mulai": "2026-12-08T23:59:59+09:00", "peserta": {"tanggal_lahir": "2026-12-08"}})).is_empty());
        assert!(paths(json!({"waktu_mulai": "2014-06-03"})).is_empty());
        assert!(
            paths(json!({})).is_empty(),
            "absent fields are the schema's business"
        );
    }

    #[test]
    fn impossible_dates_and_times_are_refused() {
        let p = paths(
            json!({"waktu_mulai": "2026-02-30T09:00", "peserta": {"tanggal_lahir": "2025-02-29"}}),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("$.waktu_mulai is not a real calendar date"));
        assert!(p[1].starts_with("$.peserta.tanggal_lahir is not a real calendar date"));
        let p = paths(json!({"waktu_mulai": "2026-02-03T25:00"}));
        assert!(p[0].contains("not a real time"), "{p:?}");
    }

    #[test]
    fn visits_in_the_future_or_before_satusehat_and_births_after_the_visit_are_refused() {
        let p = paths(json!({"waktu_mulai": "2026-12-09T08:00"}));
        assert!(
            p[0].starts_with("$.waktu_mulai is in the future") && p[0].contains("one day"),
            "{p:?}"
        );
        let p = paths(json!({"waktu_mulai": "2014-06-02T08:00"}));
        assert!(p[0].contains("3 June 2014"), "{p:?}");
        let p = paths(
            json!({"waktu_mulai": "2026-05-12T09:00", "peserta": {"tanggal_lahir": "2026-05-13"}}),
        );
        assert!(
            p[0].starts_with("$.peserta.tanggal_lahir is after the visit"),
            "{p:?}"
        );
        // Without a clock, the future is not judged.
        assert!(check(&json!({"waktu_mulai": "2099-01-01T08:00"}), &fields(), None).is_empty());
    }
}
