//! Time as SATUSEHAT wants it: every dateTime in UTC, written `YYYY-MM-DDThh:mm:ss+00:00`.
//!
//! Facilities record local wall-clock time in one of Indonesia's three zones: WIB (UTC+7),
//! WITA (UTC+8) and WIT (UTC+9). No clock is read here; callers pass "now" in.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// How far in the future a time may lie and still be taken for now: facility PCs' clocks are
/// rarely exact. Shared by the input check (`mapping::dates`) and the validator's
/// `not-future`, so a time one lets through the other does not refuse.
pub const FUTURE_TOLERANCE_SECS: i64 = 300;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TimeError {
    #[error(
        "`{0}` is not a date-time; write it as YYYY-MM-DDThh:mm[:ss] with an optional offset such as +07:00"
    )]
    BadDateTime(String),
    #[error("`{0}` is not a time zone; use WIB, WITA, WIT or an offset such as +08:00")]
    BadZone(String),
}

/// The UTC offset of an Indonesian zone name or of an explicit `±hh:mm` offset.
pub fn zone_offset(zone: &str) -> Result<FixedOffset, TimeError> {
    let hours = match zone.trim().to_ascii_uppercase().as_str() {
        "WIB" => 7,
        "WITA" => 8,
        "WIT" => 9,
        "UTC" | "Z" | "+00:00" => 0,
        other => {
            return parse_offset(other).ok_or_else(|| TimeError::BadZone(zone.to_string()));
        }
    };
    Ok(FixedOffset::east_opt(hours * 3600).expect("valid offset"))
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':')?;
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// Parse a local or offset date-time. A string with its own offset (`+07:00`, `Z`) keeps it;
/// one without is read in `zone`.
pub fn parse_local(s: &str, zone: &str) -> Result<DateTime<FixedOffset>, TimeError> {
    let bad = || TimeError::BadDateTime(s.to_string());
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt);
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(bad)?;
    zone_offset(zone)?
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(bad)
}

/// Local time → SATUSEHAT's UTC form.
pub fn to_utc(s: &str, zone: &str) -> Result<String, TimeError> {
    Ok(format_utc(parse_local(s, zone)?.with_timezone(&Utc)))
}

/// `2026-05-12T01:30:00+00:00` (seconds, no fraction, explicit `+00:00`).
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A FHIR dateTime or date, for comparisons. Dates count from their first instant in UTC.
pub fn parse_fhir(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    let date = match s.len() {
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?,
        7 => NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?,
        4 => NaiveDate::parse_from_str(&format!("{s}-01-01"), "%Y-%m-%d").ok()?,
        _ => return None,
    };
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?))
}

/// Whether `s` is written exactly as SATUSEHAT requires: `YYYY-MM-DDThh:mm:ss+00:00`
/// (fractions of a second allowed).
pub fn is_satusehat_utc(s: &str) -> bool {
    s.len() >= 25
        && s.ends_with("+00:00")
        && s.as_bytes()[10] == b'T'
        && DateTime::parse_from_rfc3339(s).is_ok()
}

/// A full date-time written with another offset than `+00:00` (`+07:00`, `Z`), rewritten as
/// the same instant in SATUSEHAT's UTC form, fractions of a second kept; `None` for anything
/// else (already UTC, a date, not a date-time).
pub fn as_satusehat_utc(s: &str) -> Option<String> {
    if s.len() < 20 || s.as_bytes()[10] != b'T' || is_satusehat_utc(s) {
        return None;
    }
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    let precision = if s[19..].starts_with('.') {
        SecondsFormat::AutoSi
    } else {
        SecondsFormat::Secs
    };
    Some(t.to_rfc3339_opts(precision, false))
}

/// An instant given by a person or a client (`2026-11-03T00:00:00+07:00`, RFC 3339), as
/// milliseconds since the epoch. In a URL query an unencoded `+` of the offset arrives as a
/// space; it is taken back.
pub fn parse_instant(text: &str) -> Result<i64, chrono::ParseError> {
    DateTime::parse_from_rfc3339(&query_instant(text)).map(|t| t.timestamp_millis())
}

/// An instant as it arrived in a URL query, with the `+` of its offset taken back from the
/// space form decoding made of it.
pub fn query_instant(text: &str) -> String {
    text.trim_start().replace(' ', "+")
}

pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn millis_to_utc(ms: i64) -> String {
    format_utc(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_indonesian_zones_to_utc() {
        assert_eq!(
            to_utc("2026-05-12T08:30", "WIB").unwrap(),
            "2026-05-12T01:30:00+00:00"
        );
        assert_eq!(
            to_utc("2026-05-12T08:30:00", "WITA").unwrap(),
            "2026-05-12T00:30:00+00:00"
        );
        assert_eq!(
            to_utc("2026-05-12T08:30:00", "WIT").unwrap(),
            "2026-05-11T23:30:00+00:00"
        );
        // An explicit offset wins over the zone.
        assert_eq!(
            to_utc("2026-05-12T08:41:00+07:00", "WIT").unwrap(),
            "2026-05-12T01:41:00+00:00"
        );
    }

    #[test]
    fn rejects_garbage_with_a_useful_message() {
        let e = to_utc("12-05-2026", "WIB").unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD"));
        assert!(matches!(
            to_utc("2026-05-12T08:30", "CET"),
            Err(TimeError::BadZone(_))
        ));
    }

    #[test]
    fn other_offsets_become_the_same_instant_in_utc() {
        assert_eq!(
            as_satusehat_utc("2026-05-12T08:30:00+07:00").as_deref(),
            Some("2026-05-12T01:30:00+00:00")
        );
        assert_eq!(
            as_satusehat_utc("2026-05-12T01:30:00Z").as_deref(),
            Some("2026-05-12T01:30:00+00:00")
        );
        assert_eq!(
            as_satusehat_utc("2026-05-12T01:30:00.250Z").as_deref(),
            Some("2026-05-12T01:30:00.250+00:00")
        );
        assert_eq!(as_satusehat_utc("2026-05-12T01:30:00+00:00"), None);
        assert_eq!(as_satusehat_utc("2026-05-12"), None);
        assert_eq!(as_satusehat_utc("Jl. Merdeka 2026-05-12T01:30:00Z"), None);
    }

    #[test]
    fn recognises_satusehat_utc_form() {
        assert!(is_satusehat_utc("2026-05-12T01:30:00+00:00"));
        assert!(!is_satusehat_utc("2026-05-12T08:30:00+07:00"));
        assert!(!is_satusehat_utc("2026-05-12T01:30:00Z"));
        assert!(!is_satusehat_utc("2026-05-12"));
    }
}
