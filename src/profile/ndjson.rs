//! NDJSON validated as it is read, for `gerbang validate` and `POST /fhir/$validate`: each
//! line is validated on its own and forgotten, and the answer is a tally — the same issue on
//! many lines is one issue with its number of lines and the first few of them. Memory and
//! answer grow with the kinds of problem found, not with the input. The [`Reader`] also
//! decides, from the first lines, whether a text is NDJSON at all or one JSON document (a
//! resource, a Bundle, a Parameters), which the caller validates whole, as before.

use super::{Context, Validator};
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use serde_json::Value;
use std::collections::HashMap;

/// Line numbers named with an issue found on many lines; the others are counted.
pub const LINES_SHOWN: usize = 5;
/// Kinds of issue the answer lists; issues of further kinds are only counted, so a stream
/// whose every line says something new still has a bounded answer and a bounded tally.
pub const KINDS_KEPT: usize = 1000;

/// An issue's identity across lines: the same severity, code, element, rule and text.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    severity: Severity,
    code: IssueCode,
    expression: Option<String>,
    rule: Option<u32>,
    text: String,
}

struct Kind {
    /// Place in the answer: the order the kinds were first seen in.
    order: usize,
    /// The first lines it was found on (at most [`LINES_SHOWN`]).
    lines: Vec<usize>,
    last: usize,
    count: usize,
}

/// Issues of kinds past [`KINDS_KEPT`], of one severity: counted, not listed.
#[derive(Default)]
struct Unlisted {
    issues: usize,
    lines: usize,
    first: usize,
    last: usize,
}

/// What NDJSON lines were found to have, summarised.
#[derive(Default)]
pub struct Tally {
    kinds: HashMap<Key, Kind>,
    lines: usize,
    with_errors: usize,
    /// Errors, warnings, notes of kinds not kept.
    unlisted: [Unlisted; 3],
}

impl Tally {
    /// The issues of line `n` (1-based, counting blank lines too).
    pub fn line(&mut self, n: usize, outcome: Outcome) {
        self.lines += 1;
        if outcome.has_errors() {
            self.with_errors += 1;
        }
        for issue in outcome.issues {
            let key = Key {
                severity: issue.severity,
                code: issue.code,
                expression: issue.expression,
                rule: issue.rule,
                text: issue.text,
            };
            let order = self.kinds.len();
            if let Some(kind) = self.kinds.get_mut(&key) {
                if kind.last != n {
                    kind.last = n;
                    kind.count += 1;
                    if kind.lines.len() < LINES_SHOWN {
                        kind.lines.push(n);
                    }
                }
            } else if order < KINDS_KEPT {
                let kind = Kind {
                    order,
                    lines: vec![n],
                    last: n,
                    count: 1,
                };
                self.kinds.insert(key, kind);
            } else {
                let u = &mut self.unlisted[match key.severity {
                    Severity::Fatal | Severity::Error => 0,
                    Severity::Warning => 1,
                    Severity::Information => 2,
                }];
                u.issues += 1;
                if u.last != n {
                    if u.lines == 0 {
                        u.first = n;
                    }
                    u.lines += 1;
                    u.last = n;
                }
            }
        }
    }

    /// The answer: how many lines were read and how many had errors, then each kind of issue
    /// once, in the order first found, named by its lines.
    pub fn finish(self) -> Outcome {
        let mut out = Outcome::new();
        out.push(Issue::new(
            Severity::Information,
            IssueCode::Informational,
            format!(
                "NDJSON: {} read, {} valid, {} with errors; an issue found on several lines is listed once, with its lines",
                counted(self.lines, "line", "lines"),
                grouped(self.lines - self.with_errors),
                grouped(self.with_errors),
            ),
        ));
        let mut kinds: Vec<(Key, Kind)> = self.kinds.into_iter().collect();
        kinds.sort_by_key(|(_, k)| k.order);
        for (key, kind) in kinds {
            out.push(Issue {
                severity: key.severity,
                code: key.code,
                text: format!("{}: {}", lines_named(&kind.lines, kind.count), key.text),
                expression: key.expression,
                rule: key.rule,
            });
        }
        let what = [
            (Severity::Error, "error", "errors"),
            (Severity::Warning, "warning", "warnings"),
            (Severity::Information, "note", "notes"),
        ];
        for (u, (severity, one, many)) in self.unlisted.iter().zip(what) {
            if u.issues == 0 {
                continue;
            }
            out.push(Issue::new(
                severity,
                IssueCode::TooLong,
                format!(
                    "{} more on {} from line {} not listed: the answer lists the first {} kinds of issue; validate those lines apart to see them",
                    counted(u.issues, one, many),
                    counted(u.lines, "line", "lines"),
                    u.first,
                    grouped(KINDS_KEPT),
                ),
            ));
        }
        out
    }
}

/// `line 3`, `lines 3, 7 and 12`, `lines 3, 7, 12, 15, 20 and 4,995 more (5,000 in all)`.
fn lines_named(shown: &[usize], count: usize) -> String {
    let list: Vec<String> = shown.iter().map(usize::to_string).collect();
    match (list.split_last(), count) {
        (Some((only, [])), 1) => format!("line {only}"),
        (Some((last, rest)), n) if n == list.len() => {
            format!("lines {} and {last}", rest.join(", "))
        }
        _ => format!(
            "lines {} and {} more ({} in all)",
            list.join(", "),
            grouped(count - list.len()),
            grouped(count)
        ),
    }
}

/// `1 line`, `4,997 lines`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// `4997` → `4,997`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a [`Reader`] may hold and read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One JSON document (not NDJSON) is held whole to be parsed: at most this many bytes.
    pub whole: Option<usize>,
    /// One NDJSON line: a longer line is reported and skipped as it arrives, never held.
    pub line: usize,
    /// All of an NDJSON stream.
    pub total: Option<usize>,
    /// How deep one NDJSON line may nest, checked before parsing it.
    pub depth: Option<usize>,
    /// The setting behind `line`, named in the issue of a line too long.
    pub line_setting: &'static str,
}

impl Limits {
    /// No limit: for text already in memory.
    pub const NONE: Limits = Limits {
        whole: None,
        line: usize::MAX,
        total: None,
        depth: None,
        line_setting: "",
    };
}

/// A limit of [`Limits`] was passed; the limit is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    Whole(usize),
    Total(usize),
}

/// What the text turned out to be.
pub enum Read {
    /// One JSON document (or something that is not JSON): every byte, to validate whole.
    Whole(Vec<u8>),
    /// NDJSON, validated: the tally.
    Ndjson(Outcome),
}

enum Mode {
    /// Not known yet: everything read so far is in `buf`.
    Undecided(Sniff),
    /// NDJSON: `buf` holds the part of the current line read so far.
    Lines,
}

/// Deciding NDJSON from its first lines, as [`Validator::validate_text`] decides on the
/// whole text: a text that parses as one JSON value is one document; one that does not and
/// has two non-blank lines or more is NDJSON. Both can be known early: a first non-blank line
/// that is a whole JSON value cannot be followed by anything in one document; one that is
/// not can be (a pretty-printed Bundle), and the text stays one document until it can no
/// longer be one (see [`Scan`]). So NDJSON whose first line is cut outside a string (`{"a":
/// {"b": 1`) is held whole, within [`Limits::whole`], and tallied only at its end: the one
/// case that is not read line by line.
#[derive(Default)]
struct Sniff {
    /// Where the first non-blank line starts.
    start: Option<usize>,
    /// Where it ends, and whether it is a whole JSON value.
    first: Option<(usize, bool)>,
    /// How far `buf` was searched.
    pos: usize,
    scan: Scan,
}

/// A byte-level look at a text that might be one JSON value: it cannot be once a string
/// holds a raw newline (JSON strings cannot), or once anything follows the value's end.
#[derive(Default)]
struct Scan {
    depth: usize,
    in_string: bool,
    escaped: bool,
    closed: bool,
    impossible: bool,
}

impl Scan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.impossible {
                return;
            }
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    b'\n' => self.impossible = true,
                    _ => {}
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if self.closed => self.impossible = true,
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => match self.depth {
                    0 => self.impossible = true,
                    1 => {
                        self.depth = 0;
                        self.closed = true;
                    }
                    _ => self.depth -= 1,
                },
                _ => {}
            }
        }
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Reads a text in pieces as they arrive — a file, stdin, an HTTP body — and validates it
/// as NDJSON line by line, holding one line at a time; or, if it turns out to be one JSON
/// document, gives it back whole ([`Read::Whole`]).
pub struct Reader<'a> {
    validator: &'a Validator,
    ctx: Context<'a>,
    profile: Option<&'a str>,
    limits: Limits,
    mode: Mode,
    buf: Vec<u8>,
    /// Bytes pushed so far.
    read: usize,
    /// Lines ended so far (blank ones too): the current line is `line_no + 1`.
    line_no: usize,
    /// The current line passed the line limit: its bytes are dropped up to its end.
    skipping: bool,
    tally: Tally,
}

impl<'a> Reader<'a> {
    /// A reader that decides whether the text is NDJSON.
    pub fn new(
        validator: &'a Validator,
        ctx: Context<'a>,
        profile: Option<&'a str>,
        limits: Limits,
    ) -> Self {
        Reader {
            validator,
            ctx,
            profile,
            limits,
            mode: Mode::Undecided(Sniff::default()),
            buf: Vec::new(),
            read: 0,
            line_no: 0,
            skipping: false,
            tally: Tally::default(),
        }
    }

    /// A reader of what is known to be NDJSON (say, by its `Content-Type`).
    pub fn ndjson(
        validator: &'a Validator,
        ctx: Context<'a>,
        profile: Option<&'a str>,
        limits: Limits,
    ) -> Self {
        let mut r = Reader::new(validator, ctx, profile, limits);
        r.mode = Mode::Lines;
        r
    }

    /// The next piece of the text.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        self.read += chunk.len();
        match self.mode {
            Mode::Lines => {
                if let Some(limit) = self.limits.total.filter(|l| self.read > *l) {
                    return Err(TooLarge::Total(limit));
                }
                self.lines(chunk);
            }
            Mode::Undecided(_) => {
                self.buf.extend_from_slice(chunk);
                if self.decide() {
                    // NDJSON after all: what was held is its first lines.
                    self.mode = Mode::Lines;
                    if let Some(limit) = self.limits.total.filter(|l| self.read > *l) {
                        return Err(TooLarge::Total(limit));
                    }
                    let head = std::mem::take(&mut self.buf);
                    self.lines(&head);
                } else if let Some(limit) = self.limits.whole.filter(|l| self.read > *l) {
                    return Err(TooLarge::Whole(limit));
                }
            }
        }
        Ok(())
    }

    /// All the rest of the text, in memory, as NDJSON; no limit is checked.
    pub fn validate_all(mut self, text: &[u8]) -> Outcome {
        self.mode = Mode::Lines;
        self.lines(text);
        self.finish_lines()
    }

    /// The end of the text.
    pub fn finish(self) -> Read {
        match self.mode {
            Mode::Undecided(_) => Read::Whole(self.buf),
            Mode::Lines => Read::Ndjson(self.finish_lines()),
        }
    }

    fn finish_lines(mut self) -> Outcome {
        if !self.buf.is_empty() || self.skipping {
            self.end_line();
        }
        self.tally.finish()
    }

    /// Whether what is held is now known to be NDJSON.
    fn decide(&mut self) -> bool {
        let Mode::Undecided(s) = &mut self.mode else {
            return true;
        };
        let buf = &self.buf;
        let searched = s.pos;
        let start = match s.start {
            Some(start) => start,
            None => match buf[s.pos..].iter().position(|b| !is_blank(*b)) {
                Some(i) => {
                    let start = s.pos + i;
                    s.start = Some(start);
                    s.pos = start;
                    start
                }
                None => {
                    s.pos = buf.len();
                    return false;
                }
            },
        };
        let (end, impossible) = match s.first {
            Some((end, whole_value)) => {
                // Only a first line that is not a whole value needs the scan.
                if !whole_value && !s.scan.impossible {
                    let from = start.max(s.pos).min(buf.len());
                    s.scan.feed(&buf[from..]);
                }
                (end, whole_value || s.scan.impossible)
            }
            None => {
                let Some(i) = memchr::memchr(b'\n', &buf[s.pos..]) else {
                    s.pos = buf.len();
                    return false;
                };
                let end = s.pos + i;
                let line = buf[start..end].trim_ascii_end();
                let whole_value = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
                if !whole_value {
                    if matches!(buf[start], b'{' | b'[') {
                        s.scan.feed(&buf[start..]);
                    } else {
                        // Not an object or array, and not a whole value on its line: no
                        // JSON value of that kind spans lines.
                        s.scan.impossible = true;
                    }
                }
                s.first = Some((end, whole_value));
                (end, whole_value || s.scan.impossible)
            }
        };
        s.pos = buf.len();
        // One document no longer possible: NDJSON if a second non-blank line has begun.
        impossible && buf[end.max(searched)..].iter().any(|b| !is_blank(*b))
    }

    /// NDJSON bytes: complete lines are validated, the rest is held for the next piece.
    fn lines(&mut self, mut rest: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if self.buf.is_empty() && !self.skipping && i <= self.limits.line {
                // The whole line is in this piece: validated where it is.
                self.line_no += 1;
                self.check_line(self.line_no, &rest[..i]);
            } else {
                self.take(&rest[..i]);
                self.end_line();
            }
            rest = &rest[i + 1..];
        }
        self.take(rest);
    }

    /// Part of the current line.
    fn take(&mut self, part: &[u8]) {
        if self.skipping || part.is_empty() {
            return;
        }
        if self.buf.len() + part.len() > self.limits.line {
            self.skipping = true;
            self.buf = Vec::new();
            let too_long = Issue::error(
                IssueCode::TooLong,
                format!(
                    "longer than {} bytes ({}), the most one resource may take; not validated",
                    grouped(self.limits.line),
                    self.limits.line_setting
                ),
            );
            self.tally.line(self.line_no + 1, Outcome::one(too_long));
            return;
        }
        self.buf.extend_from_slice(part);
    }

    fn end_line(&mut self) {
        self.line_no += 1;
        if !self.skipping {
            let line = std::mem::take(&mut self.buf);
            self.check_line(self.line_no, &line);
            self.buf = line;
            self.buf.clear();
        }
        self.skipping = false;
    }

    fn check_line(&mut self, n: usize, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let outcome = match self.limits.depth {
            Some(max) if too_deep(line, max) => Outcome::one(Issue::error(
                IssueCode::TooLong,
                format!(
                    "nested more than {max} levels deep (limits.max_json_depth); a FHIR resource never needs that; not validated"
                ),
            )),
            _ => match serde_json::from_slice::<Value>(line) {
                Err(e) => {
                    Outcome::one(Issue::error(IssueCode::Structure, format!("not JSON: {e}")))
                }
                Ok(v) => self.validator.validate_as(&v, &self.ctx, self.profile),
            },
        };
        self.tally.line(n, outcome);
    }
}

/// JSON nested deeper than `max` objects and arrays (counted outside strings), scanned
/// before parsing so that thousands of levels cannot exhaust the parser's stack. The HTTP
/// body check (`api::body::check_depth`) uses it too.
pub fn too_deep(line: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_named_then_counted() {
        assert_eq!(lines_named(&[3], 1), "line 3");
        assert_eq!(lines_named(&[3, 7], 2), "lines 3 and 7");
        assert_eq!(lines_named(&[3, 7, 12], 3), "lines 3, 7 and 12");
        assert_eq!(
            lines_named(&[3, 7, 12, 15, 20], 5000),
            "lines 3, 7, 12, 15, 20 and 4,995 more (5,000 in all)"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn the_same_issue_on_many_lines_is_one_issue() {
        let mut t = Tally::default();
        let subject = || {
            Outcome::one(
                Issue::error(IssueCode::Required, "subject is required")
                    .at("Encounter.subject")
                    .rule(10118),
            )
        };
        for n in 1..=5000 {
            if n % 2 == 0 {
                t.line(n, subject());
            } else {
                t.line(n, Outcome::new());
            }
        }
        let out = t.finish();
        assert_eq!(out.issues.len(), 2, "{:?}", out.issues);
        assert_eq!(
            out.issues[0].text,
            "NDJSON: 5,000 lines read, 2,500 valid, 2,500 with errors; an issue found on several lines is listed once, with its lines"
        );
        assert_eq!(
            out.issues[1].text,
            "lines 2, 4, 6, 8, 10 and 2,495 more (2,500 in all): subject is required"
        );
        assert_eq!(out.issues[1].rule, Some(10118));
        assert_eq!(out.issues[1].code, IssueCode::Required);
        assert_eq!(
            out.issues[1].expression.as_deref(),
            Some("Encounter.subject")
        );
    }

    #[test]
    fn kinds_past_the_cap_are_counted_not_listed() {
        let mut t = Tally::default();
        for n in 1..=KINDS_KEPT + 10 {
            let e = Issue::error(IssueCode::Value, format!("value {n} is wrong"));
            t.line(n, Outcome::one(e));
        }
        let out = t.finish();
        assert_eq!(out.issues.len(), 1 + KINDS_KEPT + 1);
        let last = out.issues.last().unwrap();
        assert!(last.is_error());
        assert_eq!(
            last.text,
            "10 errors more on 10 lines from line 1001 not listed: the answer lists the first 1,000 kinds of issue; validate those lines apart to see them"
        );
    }

    #[test]
    fn one_document_or_ndjson_is_known_from_the_first_lines() {
        let scan = |text: &str| {
            let mut s = Scan::default();
            s.feed(text.as_bytes());
            s.impossible
        };
        // A pretty-printed document stays possible; a string cut at a line's end, or
        // anything after the value, is not one document.
        assert!(!scan(
            "{\n  \"resourceType\": \"Bundle\",\n  \"entry\": [\n {\"a\": \"}\"}\n]\n}\n"
        ));
        assert!(scan(
            "{\"resourceType\": \"Pat\n{\"resourceType\": \"Patient\"}\n"
        ));
        assert!(scan("{\"a\": 1}\n{\"b\": 2}"));
        assert!(scan("{\"a\": 1}}"));
        assert!(!scan("{\"a\": \"x\\\"\\\\\"}  \n"));
    }

    // ------------------------------------------------------------ the reader, with the validator

    use std::sync::OnceLock;

    fn validator() -> &'static Validator {
        static V: OnceLock<Validator> = OnceLock::new();
        V.get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
            Validator::load(&dir).unwrap()
        })
    }

    fn ctx() -> Context<'static> {
        Context {
            organization_id: Some("1000000001"),
            now: chrono::Utc::now(),
        }
    }

    /// The example Encounter, valid on its own, as one line.
    fn encounter() -> Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mappings/posyandu.balita/examples/balita-wita-minimal.bundle.json");
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        bundle["entry"][2]["resource"].clone()
    }

    const LIMITS: Limits = Limits {
        whole: Some(100_000),
        line: 4_000,
        total: Some(1_000_000),
        depth: Some(20),
        line_setting: "ingest.max_body_bytes",
    };

    /// `text` pushed in pieces of `size` bytes.
    fn read(text: &[u8], size: usize, limits: Limits) -> Result<Read, TooLarge> {
        let mut r = Reader::new(validator(), ctx(), None, limits);
        for piece in text.chunks(size) {
            r.push(piece)?;
        }
        Ok(r.finish())
    }

    fn tally(text: &[u8], size: usize) -> Outcome {
        match read(text, size, LIMITS) {
            Ok(Read::Ndjson(out)) => out,
            Ok(Read::Whole(_)) => panic!("taken for one document"),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn one_document_is_given_back_whole_however_it_arrives() {
        let enc = encounter();
        let pretty = serde_json::to_string_pretty(&enc).unwrap();
        let compact = format!("\n  {enc}\n\n");
        for text in [
            pretty.as_str(),
            compact.as_str(),
            "{\"resourceType\": \"Encounter\"",
        ] {
            for size in [1, 7, 4096] {
                match read(text.as_bytes(), size, LIMITS).unwrap() {
                    Read::Whole(bytes) => assert_eq!(bytes, text.as_bytes()),
                    Read::Ndjson(out) => panic!("{text:?} taken for NDJSON: {out:?}"),
                }
            }
        }
        // One document past the limit of one document.
        let big = format!(
            "{{\"resourceType\": \"Basic\", \"x\": \"{}\"}}",
            "a".repeat(200_000)
        );
        assert_eq!(
            read(big.as_bytes(), 4096, LIMITS).err(),
            Some(TooLarge::Whole(100_000))
        );
    }

    #[test]
    fn ndjson_is_tallied_alike_however_it_arrives() {
        let enc = encounter();
        let mut no_subject = enc.clone();
        no_subject.as_object_mut().unwrap().remove("subject");
        let mut text = String::new();
        for n in 1..=40 {
            match n {
                // A line cut short; a blank line; a line too long for the line limit.
                10 => text.push_str(r#"{"resourceType": "Encounter", "status": "fini"#),
                11 => {}
                12 => text.push_str(&format!(
                    r#"{{"resourceType": "Basic", "x": "{}"}}"#,
                    "a".repeat(5_000)
                )),
                _ if n % 3 == 0 => text.push_str(&no_subject.to_string()),
                _ => text.push_str(&enc.to_string()),
            }
            text.push('\n');
        }
        let whole = tally(text.as_bytes(), text.len());
        for size in [1, 3, 100, 1500] {
            assert_eq!(tally(text.as_bytes(), size), whole, "pieces of {size}");
        }
        let texts: Vec<&str> = whole.issues.iter().map(|i| i.text.as_str()).collect();
        // 39 lines (the blank one is not counted): lines 3, 6 … 39 but 12 (12 lines) without
        // subject, 10 not JSON, 12 too long.
        assert_eq!(whole.issues.len(), 4, "{texts:#?}");
        assert_eq!(
            texts[0],
            "NDJSON: 39 lines read, 25 valid, 14 with errors; an issue found on several lines is listed once, with its lines"
        );
        assert!(
            texts[1].starts_with(
                "lines 3, 6, 9, 15, 18 and 7 more (12 in all): Encounter.subject is required"
            ),
            "{texts:#?}"
        );
        assert!(texts[2].starts_with("line 10: not JSON: "), "{texts:#?}");
        assert_eq!(
            texts[3],
            "line 12: longer than 4,000 bytes (ingest.max_body_bytes), the most one resource may take; not validated"
        );
        // A text in memory is tallied the same.
        let in_memory = validator().validate_text(&text, &ctx(), None);
        assert_eq!(in_memory.issues[1..3], whole.issues[1..3]);
    }

    #[test]
    fn a_cut_first_line_does_not_hold_the_rest() {
        // Not a whole value on its first line, but a string broken by the line's end: no
        // one document can be like that, so the lines are read as NDJSON from the start.
        let enc = encounter();
        let text = format!("{{\"resourceType\": \"Enc\n{enc}\n{enc}\n");
        let out = tally(text.as_bytes(), 16);
        assert!(
            out.issues[0]
                .text
                .starts_with("NDJSON: 3 lines read, 2 valid, 1 with errors")
        );
        assert!(
            out.issues[1].text.starts_with("line 1: not JSON"),
            "{out:?}"
        );
    }

    #[test]
    fn ndjson_past_its_limits() {
        let enc = encounter().to_string();
        let many = format!("{enc}\n").repeat(1_000);
        assert_eq!(
            read(many.as_bytes(), 65_536, LIMITS).err(),
            Some(TooLarge::Total(1_000_000))
        );
        let deep = format!("{enc}\n{}{}\n", "[".repeat(30), "]".repeat(30));
        let out = tally(deep.as_bytes(), 4096);
        assert!(
            out.issues[1]
                .text
                .starts_with("line 2: nested more than 20 levels deep"),
            "{out:?}"
        );
    }
}
