//! NIK (Nomor Induk Kependudukan): 16 digits — province (2), regency (2), district (2),
//! day of birth (+40 for women), month, year (2 digits), serial (4).
//!
//! The checks only warn: SATUSEHAT's own sandbox identities break them (ilp-domain.md §5),
//! and refusing a real patient's record over an unusual NIK would lose care data. One is an
//! error, [`impossible`]: a NIK no one can have (province code 00, which includes the
//! all-zero placeholder some systems write when the NIK is unknown).

use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq)]
pub struct NikInfo {
    pub female: bool,
    pub day: u32,
    pub month: u32,
    pub year_2: u32,
}

/// Why `nik` cannot be anyone's NIK, or None. Only the province code (digits 1–2) is judged
/// here: 00 is no province, so `0000000000000000` and its kin are placeholders, never a
/// person. Everything else unusual is for [`parse`], whose findings only warn.
pub fn impossible(nik: &str) -> Option<&'static str> {
    (nik.len() == 16 && nik.bytes().all(|b| b.is_ascii_digit()) && nik.starts_with("00"))
        .then_some("digits 1–2 of a NIK are the province code and 00 is no province (an all-zero NIK is a placeholder, not a person's NIK)")
}

/// Parse the structure of a NIK. `Err` says what is wrong, without repeating the NIK.
pub fn parse(nik: &str) -> Result<NikInfo, &'static str> {
    if nik.len() != 16 || !nik.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a NIK has exactly 16 digits");
    }
    let num = |r: std::ops::Range<usize>| nik[r].parse::<u32>().unwrap_or(0);
    let (dd, mm, yy) = (num(6..8), num(8..10), num(10..12));
    let (female, day) = if dd > 40 {
        (true, dd - 40)
    } else {
        (false, dd)
    };
    if !(1..=31).contains(&day) {
        return Err("digits 7–8 of a NIK are the day of birth (01–31, or 41–71 for women)");
    }
    if !(1..=12).contains(&mm) {
        return Err("digits 9–10 of a NIK are the month of birth (01–12)");
    }
    if num(12..16) == 0 {
        return Err("the last 4 digits of a NIK are a serial number starting at 0001");
    }
    Ok(NikInfo {
        female,
        day,
        month: mm,
        year_2: yy,
    })
}

/// Differences between what a NIK encodes and the recorded sex and birth date.
pub fn disagreements(nik: &str, gender: Option<&str>, birth_date: Option<&str>) -> Vec<String> {
    let Ok(info) = parse(nik) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match gender {
        Some("female") if !info.female => out
            .push("the NIK encodes a man (day of birth below 41) but gender is female".to_string()),
        Some("male") if info.female => out
            .push("the NIK encodes a woman (day of birth above 40) but gender is male".to_string()),
        _ => {}
    }
    if let Some(bd) = birth_date.and_then(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").ok()) {
        use chrono::Datelike;
        if bd.day() != info.day
            || bd.month() != info.month
            || bd.year().rem_euclid(100) as u32 != info.year_2
        {
            out.push("the birth date encoded in the NIK differs from birthDate".to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_structure() {
        let i = parse("3273015008250002").unwrap();
        assert!(i.female);
        assert_eq!((i.day, i.month, i.year_2), (10, 8, 25));
        assert!(parse("327301500825000").is_err());
        assert!(parse("3273011013250002").is_err()); // month 13
        assert!(parse("3273017208250002").is_err()); // day 72
        assert!(parse("3273011008250000").is_err()); // serial 0000
    }

    #[test]
    fn only_province_00_is_impossible() {
        assert!(impossible("0000000000000000").is_some());
        assert!(impossible("0073011008250001").is_some());
        assert!(impossible("3273015008250002").is_none());
        assert!(impossible("9271060312000001").is_none()); // SATUSEHAT's sandbox dummy
        assert!(impossible("000").is_none()); // not a NIK at all: the pattern says so
    }

    #[test]
    fn disagreements_are_reported() {
        assert!(disagreements("3273015008250002", Some("female"), Some("2025-08-10")).is_empty());
        assert_eq!(
            disagreements("3273015008250002", Some("male"), Some("2025-08-11")).len(),
            2
        );
        // SATUSEHAT's own sandbox dummy: encodes 03-12-(20)00 male, record born 1992-01-09.
        assert_eq!(
            disagreements("9271060312000001", Some("male"), Some("1992-01-09")).len(),
            1
        );
    }
}
