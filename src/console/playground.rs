//! The integrators' playground (`/console/playground`, anyone signed in): choose a record
//! type (and a local format where it has adapters), paste or upload a record or start from
//! one of the mapping's examples, and see the Bundle and the OperationOutcome side by side —
//! each issue linked to the element of the Bundle it names and, where
//! [`crate::mapping::provenance`] finds them, to the fields of the record that produced it.
//! A second mode validates any FHIR JSON (a resource, a Bundle, NDJSON) the same way.
//!
//! **Same engine, no network**: a record runs through [`crate::mapping::trial`] — adapt,
//! input check, map, validate, as `POST /ingest/{record-type}` runs them, with the functions
//! `gerbang map` and `gerbang validate` call — and FHIR JSON through
//! [`crate::profile::Validator::validate_text`], as `gerbang validate` reads it. Nothing is
//! stored, nothing is sent, the store is not touched. A facility's records are mapped for its
//! own organization and location; an operator's for the sandbox's demo organization, as
//! `gerbang map` without `--org` maps them, and the page says so.
//!
//! **Without JavaScript** every part works: examples are loaded by a GET form that fills the
//! text box on the server, the run is a POST form (with the CSRF token), links to elements
//! are fragment links highlighted by CSS `:target`. The script only reads a chosen file into
//! the text box. Input is limited to the API's body limit (`ingest.max_body_bytes`); a
//! record that is not JSON, too deep, or too large is answered as an OperationOutcome, never
//! a server error.

use super::dead_letters::plain_text;
use super::i18n::{Key, Lang, t};
use super::json_view::{self, Target};
use super::layout::{self, Nav, Shell};
use super::session::{Principal, Session};
use super::{Ctx, Failure, Fields, Refusal};
use crate::api::AppState;
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use crate::mapping::trial::{self, Found, Place, Trial};
use crate::mapping::{Mappings, Sender};
use crate::profile::Context;
use actix_web::error::UrlencodedError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// What the form carries beside the text (mode, type, format, the CSRF token), generously.
const FORM_OVERHEAD: usize = 64 * 1024;

/// The two modes of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A record of a record type: mapped and validated.
    #[default]
    Map,
    /// Any FHIR JSON: validated.
    Validate,
}

impl Mode {
    pub fn parse(s: &str) -> Mode {
        if s.trim() == "validate" {
            Mode::Validate
        } else {
            Mode::Map
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Map => "map",
            Mode::Validate => "validate",
        }
    }
}

/// What the form holds.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub mode: Mode,
    pub record_type: String,
    /// A local format (`sikda-generik`); empty for the canonical record.
    pub format: String,
    pub input: String,
    /// The example it was started from (its value in the examples list).
    pub example: String,
}

/// A record type to choose.
#[derive(Debug, Clone)]
pub struct TypeChoice {
    pub name: String,
    pub description: String,
    /// Its local formats: (format, the system that produces it).
    pub formats: Vec<(String, String)>,
}

/// An example to start from: a mapping's `examples/*.input.json` (or, to validate, its
/// `*.bundle.json`).
#[derive(Debug, Clone)]
pub struct Example {
    /// `posyandu.balita/bayi-9-bulan-imunisasi`, `rawat-jalan/pcare/…` for an adapter's.
    pub value: String,
    pub record_type: String,
    pub format: Option<String>,
    pub path: PathBuf,
}

/// Who records are mapped for.
#[derive(Debug, Clone)]
pub struct PlaygroundSender {
    pub organization_id: String,
    pub location_id: String,
    /// The signed-in facility's own; else the playground's (the sandbox's demo
    /// organization).
    pub own: bool,
}

/// What the page offers.
#[derive(Debug, Clone)]
pub struct Choices {
    pub types: Vec<TypeChoice>,
    pub examples: Vec<Example>,
    pub sender: PlaygroundSender,
    /// The largest input (`ingest.max_body_bytes`).
    pub max_bytes: usize,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub enum Run {
    /// A record: the record as parsed (None when it is not JSON) and what became of it.
    Mapped { record: Option<Value>, trial: Trial },
    /// FHIR JSON: the JSON as parsed (None when it is not one JSON document) and its outcome.
    Validated {
        json: Option<Value>,
        outcome: Outcome,
    },
}

impl Run {
    fn outcome(&self) -> Outcome {
        match self {
            Run::Mapped { trial, .. } => trial.outcome(),
            Run::Validated { outcome, .. } => outcome.clone(),
        }
    }
}

/// The record types and examples of the loaded mappings, and the sender of `session`.
pub fn choices(mappings: &Mappings, session: &Session, mode: Mode, max_bytes: usize) -> Choices {
    let types = mappings
        .record_types()
        .map(|rt| TypeChoice {
            name: rt.meta.record_type.clone(),
            description: rt.meta.description.trim().to_string(),
            formats: rt
                .adapters
                .iter()
                .map(|(f, a)| (f.clone(), a.meta.source.clone()))
                .collect(),
        })
        .collect();
    let mut examples = Vec::new();
    for rt in mappings.record_types() {
        let name = rt.meta.record_type.clone();
        match mode {
            Mode::Map => {
                for path in crate::mapping::harness::example_inputs(&rt.dir) {
                    examples.push(example(&name, None, path, ".input.json"));
                }
                for (format, adapter) in &rt.adapters {
                    for path in crate::mapping::harness::example_inputs(&adapter.dir) {
                        examples.push(example(&name, Some(format), path, ".input.json"));
                    }
                }
            }
            Mode::Validate => {
                for path in golden_bundles(&rt.dir) {
                    examples.push(example(&name, None, path, ".bundle.json"));
                }
            }
        }
    }
    let sender = match &session.principal {
        Principal::Facility(f) => PlaygroundSender {
            organization_id: f.organization_id.clone(),
            location_id: f.location_id.clone(),
            own: true,
        },
        Principal::Operator(_) => PlaygroundSender {
            organization_id: crate::sandbox::DEMO_ORGANIZATION.to_string(),
            location_id: crate::sandbox::demo_location(),
            own: false,
        },
    };
    Choices {
        types,
        examples,
        sender,
        max_bytes,
    }
}

fn example(record_type: &str, format: Option<&str>, path: PathBuf, suffix: &str) -> Example {
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let name = file.strip_suffix(suffix).unwrap_or(&file);
    let value = match format {
        Some(f) => format!("{record_type}/{f}/{name}"),
        None => format!("{record_type}/{name}"),
    };
    Example {
        value,
        record_type: record_type.to_string(),
        format: format.map(str::to_string),
        path,
    }
}

/// A record type's reviewed golden Bundles (`examples/*.bundle.json`), sorted.
fn golden_bundles(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| p.to_string_lossy().ends_with(".bundle.json"));
    found.sort();
    found
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    mode: String,
    /// An example to start from (its value in the list).
    #[serde(default)]
    example: String,
}

/// `GET /console/playground?mode=&example=`: the form, filled with an example if one is
/// named.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.signed_in()?;
    let mode = Mode::parse(&query.mode);
    let choices = choices(&state.mappings, session, mode, state.max_body_bytes);
    let mut form = Form {
        mode,
        record_type: choices
            .types
            .first()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    let wanted = query.example.trim();
    if !wanted.is_empty() {
        // Only an example of the list: the query never names a file.
        let ex = choices
            .examples
            .iter()
            .find(|e| e.value == wanted)
            .ok_or_else(|| ctx.fail(Refusal::BadRequest(ctx.t(Key::UnknownExample).into())))?;
        let path = ex.path.clone();
        form.input = web::block(move || std::fs::read_to_string(path))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| ctx.fail(Refusal::BadRequest(ctx.t(Key::UnknownExample).into())))?;
        form.record_type = ex.record_type.clone();
        form.format = ex.format.clone().unwrap_or_default();
        form.example = ex.value.clone();
    }
    Ok(super::html(
        StatusCode::OK,
        render(&ctx.shell(), &choices, &form, None),
    ))
}

/// `POST /console/playground`: run the record (or validate the FHIR JSON) and show the
/// result under the form, which keeps what was sent.
pub async fn run(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.signed_in()?;
    let max = state.max_body_bytes;
    // URL-encoding may triple the text: the form may be that large, the text no larger
    // than the API takes.
    let limit = max.saturating_mul(3).saturating_add(FORM_OVERHEAD);
    let mut payload = payload.into_inner();
    let fields = match actix_web::dev::UrlEncoded::<Fields>::new(&req, &mut payload)
        .limit(limit)
        .await
    {
        Ok(f) => f,
        Err(UrlencodedError::Overflow { .. }) => {
            let choices = choices(&state.mappings, session, Mode::Map, max);
            let form = Form::default();
            let run = too_large(ctx.lang, Mode::Map, max);
            return Ok(super::html(
                StatusCode::PAYLOAD_TOO_LARGE,
                render(&ctx.shell(), &choices, &form, Some(&run)),
            ));
        }
        Err(_) => return Err(ctx.fail(Refusal::BadForm)),
    };
    ctx.check_form(&req, &fields)?;
    let mode = Mode::parse(fields.get("mode").unwrap_or(""));
    let form = Form {
        mode,
        record_type: fields.get("record_type").unwrap_or("").trim().to_string(),
        format: fields.get("format").unwrap_or("").trim().to_string(),
        input: fields.get("input").unwrap_or("").to_string(),
        example: String::new(),
    };
    let choices = choices(&state.mappings, session, mode, max);
    if form.input.len() > max {
        let run = too_large(ctx.lang, mode, max);
        return Ok(super::html(
            StatusCode::PAYLOAD_TOO_LARGE,
            render(&ctx.shell(), &choices, &form, Some(&run)),
        ));
    }
    let validate_org = match &session.principal {
        // As POST /fhir/$validate: the facility's identifier systems are its own.
        Principal::Facility(f) => Some(f.organization_id.clone()),
        // As `gerbang validate` without --org.
        Principal::Operator(_) => None,
    };
    let (mappings, validator) = (state.mappings.clone(), state.validator.clone());
    let (lang, depth) = (ctx.lang, state.limits.max_json_depth);
    let (sender, input) = (choices.sender.clone(), form.input.clone());
    let (record_type, format) = (form.record_type.clone(), form.format.clone());
    // Mapping, validating and finding fields are CPU work: off the request threads.
    let run = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now();
        match mode {
            Mode::Map => {
                let sender = Sender {
                    organization_id: &sender.organization_id,
                    location_id: &sender.location_id,
                };
                let format = (!format.is_empty()).then_some(format.as_str());
                map_run(lang, &input, depth, |record| {
                    trial::run(
                        &mappings,
                        &validator,
                        &record_type,
                        format,
                        record,
                        &sender,
                        now,
                    )
                })
            }
            Mode::Validate => {
                let ctx = Context {
                    organization_id: validate_org.as_deref(),
                    now,
                };
                validate_run(lang, &input, depth, |text| {
                    validator.validate_text(text, &ctx, None)
                })
            }
        }
    })
    .await
    .unwrap_or_else(|_| failed(ctx.lang, mode));
    Ok(super::html(
        StatusCode::OK,
        render(&ctx.shell(), &choices, &form, Some(&run)),
    ))
}

/// A record's run: refused as input when it is not JSON or too deep, else `trial`.
pub fn map_run(
    lang: Lang,
    input: &str,
    max_depth: usize,
    trial: impl FnOnce(&Value) -> Trial,
) -> Run {
    match parse(lang, input, max_depth) {
        Ok(record) => Run::Mapped {
            trial: trial(&record),
            record: Some(record),
        },
        Err(issue) => one_issue(Mode::Map, issue),
    }
}

/// FHIR JSON's run: `validate` reads the text as `gerbang validate` does (NDJSON too); the
/// JSON is shown when it is one document.
pub fn validate_run(
    lang: Lang,
    input: &str,
    max_depth: usize,
    validate: impl FnOnce(&str) -> Outcome,
) -> Run {
    if crate::profile::ndjson::too_deep(input.as_bytes(), max_depth) {
        return Run::Validated {
            json: None,
            outcome: Outcome::one(too_deep(lang, max_depth)),
        };
    }
    Run::Validated {
        json: serde_json::from_str(input).ok(),
        outcome: validate(input),
    }
}

fn parse(lang: Lang, input: &str, max_depth: usize) -> Result<Value, Issue> {
    if input.trim().is_empty() {
        return Err(Issue::error(IssueCode::Required, t(lang, Key::EmptyInput)));
    }
    if crate::profile::ndjson::too_deep(input.as_bytes(), max_depth) {
        return Err(too_deep(lang, max_depth));
    }
    serde_json::from_str(input).map_err(|e| {
        // serde names the line and column; there is no field to point at.
        Issue::error(
            IssueCode::Structure,
            format!("{} {e}", t(lang, Key::NotJson)),
        )
    })
}

fn too_deep(lang: Lang, max_depth: usize) -> Issue {
    Issue::error(
        IssueCode::TooLong,
        format!("{} {max_depth}.", t(lang, Key::TooDeep)),
    )
}

fn too_large(lang: Lang, mode: Mode, max: usize) -> Run {
    let issue = Issue::error(
        IssueCode::TooLong,
        format!("{} {max} bytes.", t(lang, Key::TooLarge)),
    );
    one_issue(mode, issue)
}

/// The engine panicked (a bug): said as an outcome, not a server error.
fn failed(lang: Lang, mode: Mode) -> Run {
    one_issue(
        mode,
        Issue::error(IssueCode::Exception, t(lang, Key::EngineFailed)),
    )
}

fn one_issue(mode: Mode, issue: Issue) -> Run {
    match mode {
        Mode::Map => Run::Mapped {
            record: None,
            trial: Trial {
                issues: vec![Found {
                    place: Place::Record,
                    issue,
                    record_fields: Vec::new(),
                }],
                ..Default::default()
            },
        },
        Mode::Validate => Run::Validated {
            json: None,
            outcome: Outcome::one(issue),
        },
    }
}

// ------------------------------------------------------------------------------ rendering

/// The page: the mode tabs, the examples, the form, and the result of a run.
pub fn render(shell: &Shell, choices: &Choices, form: &Form, run: Option<&Run>) -> Markup {
    let lang = shell.lang;
    let mode = form.mode;
    let body = html! {
        h1 { (t(lang, Key::PlaygroundTitle)) }
        p.muted { (t(lang, Key::PlaygroundHelp)) }
        nav.tabs aria-label=(t(lang, Key::PlaygroundTitle)) {
            a href="/console/playground" data-testid="playground-map"
                aria-current=[(mode == Mode::Map).then_some("page")] { (t(lang, Key::ModeMap)) }
            a href="/console/playground?mode=validate" data-testid="playground-validate"
                aria-current=[(mode == Mode::Validate).then_some("page")] { (t(lang, Key::ModeValidate)) }
        }
        @if mode == Mode::Validate {
            p.small.muted { (t(lang, Key::ValidateHelp)) }
        }
        form.card.filters #playground-examples method="get" action="/console/playground" {
            @if mode == Mode::Validate { input type="hidden" name="mode" value="validate"; }
            div {
                label for="playground-example" { (t(lang, Key::StartFromExample)) }
                select #playground-example name="example" data-testid="playground-example" {
                    option value="" { (t(lang, Key::ChooseExample)) }
                    @for ex in &choices.examples {
                        option value=(ex.value) selected[ex.value == form.example] { (ex.value) }
                    }
                }
            }
            div { button.button type="submit" data-testid="playground-load-example" { (t(lang, Key::LoadExample)) } }
        }
        // The answer opens at the result.
        form.card #playground-form method="post" action="/console/playground#playground-result" {
            @if let Some(s) = shell.session { (layout::csrf_field(s)) }
            input type="hidden" name="mode" value=(mode.as_str());
            @if mode == Mode::Map {
                div.filters {
                    div {
                        label for="playground-record-type" { (t(lang, Key::RecordType)) }
                        select #playground-record-type name="record_type" data-testid="playground-record-type" {
                            @for rt in &choices.types {
                                option value=(rt.name) title=(rt.description) selected[rt.name == form.record_type] {
                                    (rt.name) " — " (rt.description)
                                }
                            }
                        }
                    }
                    div {
                        label for="playground-format" { (t(lang, Key::LocalFormat)) }
                        select #playground-format name="format" data-testid="playground-format" {
                            option value="" { (t(lang, Key::CanonicalFormat)) }
                            @for rt in choices.types.iter().filter(|rt| !rt.formats.is_empty()) {
                                optgroup label=(rt.name) {
                                    @for (f, source) in &rt.formats {
                                        option value=(f) selected[*f == form.format && rt.name == form.record_type] {
                                            (f) " (" (source) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p.small.muted data-testid="playground-sender" {
                    @if choices.sender.own { (t(lang, Key::SenderOwn)) } @else { (t(lang, Key::SenderPlayground)) }
                    ": " (t(lang, Key::Organization)) " " span.mono { (choices.sender.organization_id) }
                    ", " (t(lang, Key::Location)) " " span.mono { (choices.sender.location_id) }
                }
            }
            label for="playground-input" {
                @if mode == Mode::Map { (t(lang, Key::RecordJson)) } @else { (t(lang, Key::FhirJson)) }
            }
            textarea #playground-input.code name="input" rows="16" spellcheck="false"
                autocapitalize="off" autocomplete="off" data-testid="playground-input" { (form.input) }
            p.small.muted data-testid="playground-limit" {
                (t(lang, Key::SizeLimit)) " " (kib(choices.max_bytes)) " KiB " (t(lang, Key::SizeLimitWhy))
            }
            label for="playground-file" { (t(lang, Key::UploadFile)) }
            input #playground-file type="file" accept=".json,.ndjson,application/json,application/fhir+json"
                data-testid="playground-file" data-fill="playground-input"
                data-max-bytes=(choices.max_bytes) data-too-large=(t(lang, Key::FileTooLarge));
            p.small.muted { (t(lang, Key::UploadNeedsScript)) }
            button.button.primary type="submit" data-testid="playground-run" {
                @if mode == Mode::Map { (t(lang, Key::RunMap)) } @else { (t(lang, Key::RunValidate)) }
            }
        }
        @if let Some(run) = run { (result(lang, run)) }
    };
    layout::page(
        shell,
        t(lang, Key::PlaygroundTitle),
        Some(Nav::Playground),
        body,
    )
}

fn kib(bytes: usize) -> String {
    format!("{}", bytes.div_ceil(1024))
}

/// The documents a run's issues point into, with the prefixes of their ids.
struct Docs<'a> {
    fhir: Option<(&'a Value, String)>,
    record: Option<&'a Value>,
    canonical: Option<&'a Value>,
}

/// The result: the FHIR side by side with the outcome and the record.
fn result(lang: Lang, run: &Run) -> Markup {
    let (fhir, record, canonical) = match run {
        Run::Mapped { record, trial } => (
            trial.bundle.as_ref(),
            record.as_ref(),
            trial.canonical.as_ref(),
        ),
        Run::Validated { json, .. } => (json.as_ref(), None, None),
    };
    let docs = Docs {
        fhir: fhir.map(|v| (v, json_view::fhir_prefix(v))),
        record,
        canonical,
    };
    let outcome = run.outcome();
    let count = |s: &[Severity]| {
        outcome
            .issues
            .iter()
            .filter(|i| s.contains(&i.severity))
            .count()
    };
    let errors = count(&[Severity::Fatal, Severity::Error]);
    let warnings = count(&[Severity::Warning]);
    let notes = count(&[Severity::Information]);
    let issues: Vec<(Option<Place>, &Issue, &[String])> = match run {
        Run::Mapped { trial, .. } => trial
            .issues
            .iter()
            .map(|f| (Some(f.place), &f.issue, f.record_fields.as_slice()))
            .collect(),
        Run::Validated { outcome, .. } => outcome
            .issues
            .iter()
            .map(|i| (None, i, &[] as &[String]))
            .collect(),
    };
    html! {
        div.side-by-side #playground-result data-testid="playground-result" data-errors=(errors) {
            section.card.pane {
                @match run {
                    Run::Mapped { .. } => { h2 { "Bundle" } }
                    Run::Validated { .. } => { h2 { (t(lang, Key::FhirJsonTitle)) } }
                }
                @match &docs.fhir {
                    Some((v, prefix)) => {
                        pre.json.jv data-testid="playground-bundle" { (json_view::render(v, prefix)) }
                    }
                    None => {
                        p.muted data-testid="playground-no-bundle" {
                            @match run {
                                Run::Mapped { .. } => { (t(lang, Key::NoBundle)) }
                                Run::Validated { .. } => { (t(lang, Key::NoSingleJson)) }
                            }
                        }
                    }
                }
            }
            section.card.pane {
                h2 { "OperationOutcome" }
                p data-testid="playground-verdict" {
                    @if errors == 0 {
                        span.badge.status-delivered { (t(lang, Key::Passes)) }
                    } @else {
                        span.badge.status-dead { (t(lang, Key::Fails)) }
                    }
                    " " (errors) " " (t(lang, Key::ErrorsWord)) ", " (warnings) " " (t(lang, Key::WarningsWord))
                    ", " (notes) " " (t(lang, Key::NotesWord))
                }
                div data-testid="playground-outcome" {
                    @if issues.is_empty() {
                        p.muted { (t(lang, Key::NoIssues)) }
                    } @else {
                        ol.issues {
                            @for (place, issue, fields) in &issues {
                                (issue_item(lang, &docs, *place, issue, fields))
                            }
                        }
                    }
                }
                details {
                    summary { (t(lang, Key::OutcomeJson)) }
                    pre.json data-testid="playground-outcome-json" {
                        (serde_json::to_string_pretty(&outcome.to_operation_outcome()).unwrap_or_default())
                    }
                }
                @if let Some(r) = docs.record {
                    h2 { (t(lang, Key::PlaygroundRecord)) }
                    pre.json.jv data-testid="playground-record" { (json_view::render(r, json_view::RECORD)) }
                }
                @if let Some(c) = docs.canonical {
                    h2 { (t(lang, Key::CanonicalRecord)) }
                    pre.json.jv data-testid="playground-canonical" { (json_view::render(c, json_view::CANONICAL)) }
                }
            }
        }
    }
}

/// One issue: severity, rule, text, the element it names and the record's fields.
fn issue_item(
    lang: Lang,
    docs: &Docs,
    place: Option<Place>,
    issue: &Issue,
    bundle_fields: &[String],
) -> Markup {
    let severity = issue.severity.as_str();
    let expression = issue.expression.as_deref().filter(|e| !e.trim().is_empty());
    // The element of the FHIR JSON an issue on it names.
    let element: Option<Target> = match (place, expression, &docs.fhir) {
        (Some(Place::Bundle) | None, Some(e), Some((doc, prefix))) => {
            json_view::fhirpath_target(doc, prefix, e)
        }
        _ => None,
    };
    // The fields of the record (or of the canonical record) behind the issue.
    let fields: Vec<(String, Option<Target>, bool)> = match place {
        Some(Place::Bundle) => bundle_fields
            .iter()
            .map(|p| {
                let target = docs
                    .record
                    .map(|r| json_view::pointer_target(r, json_view::RECORD, p));
                (p.clone(), target, false)
            })
            .collect(),
        Some(Place::Record) | Some(Place::Canonical) => {
            let canonical = place == Some(Place::Canonical);
            let doc = if canonical {
                docs.canonical
            } else {
                docs.record
            };
            let prefix = if canonical {
                json_view::CANONICAL
            } else {
                json_view::RECORD
            };
            expression
                .and_then(json_view::pointer_of_json_path)
                .map(|p| {
                    let target = doc.map(|d| json_view::pointer_target(d, prefix, &p));
                    let shown = if p.is_empty() { "/".to_string() } else { p };
                    vec![(shown, target, canonical)]
                })
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    // An expression that is neither an element link nor a field is still shown.
    let plain_expression = element.is_none() && fields.is_empty();
    html! {
        li class={ "issue severity-" (severity) } data-testid="playground-issue" data-severity=(severity) {
            span.severity { (severity_label(lang, issue.severity)) }
            @if let Some(rule) = issue.rule {
                " · " span.rule data-testid="rule" { (t(lang, Key::Rule)) " " (rule) }
            }
            " · " span data-testid="issue-text" { (plain_text(&issue.text)) }
            @if let (Some(target), Some(e)) = (&element, expression) {
                br;
                span.small.muted { (t(lang, Key::Element)) ": " }
                a href={ "#" (target.id) } data-testid="playground-issue-element"
                    data-exact=(target.exact) { code { (e) } }
            }
            @if !fields.is_empty() {
                br;
                span.small.muted {
                    @if fields.iter().any(|f| f.2) { (t(lang, Key::CanonicalField)) } @else { (t(lang, Key::RecordField)) }
                    ": "
                }
                @for (i, (pointer, target, _)) in fields.iter().enumerate() {
                    @if i > 0 { ", " }
                    @match target {
                        Some(target) => {
                            a href={ "#" (target.id) } data-testid="playground-issue-field"
                                data-field=(pointer) data-exact=(target.exact) { code { (pointer) } }
                        }
                        None => { code data-testid="playground-issue-field" data-field=(pointer) { (pointer) } }
                    }
                }
            }
            @if plain_expression {
                @if let Some(e) = expression {
                    br;
                    span.small.muted { (t(lang, Key::Element)) ": " }
                    code { (e) }
                }
            }
        }
    }
}

fn severity_label(lang: Lang, s: Severity) -> &'static str {
    match s {
        Severity::Fatal | Severity::Error => t(lang, Key::SeverityError),
        Severity::Warning => t(lang, Key::SeverityWarning),
        Severity::Information => t(lang, Key::SeverityInformation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Facility;
    use serde_json::json;
    use std::collections::HashSet;

    fn session() -> Session {
        Session {
            token_hash: "h".into(),
            principal: Principal::Operator("ops".into()),
            csrf: "c".into(),
        }
    }

    fn sample_choices() -> Choices {
        Choices {
            types: vec![TypeChoice {
                name: "posyandu.balita".into(),
                description: "Kunjungan balita".into(),
                formats: vec![],
            }],
            examples: vec![],
            sender: PlaygroundSender {
                organization_id: "100".into(),
                location_id: "loc".into(),
                own: false,
            },
            max_bytes: 1024 * 1024,
        }
    }

    fn html_of(run: &Run) -> String {
        let s = session();
        let shell = Shell {
            lang: Lang::En,
            path: "/console/playground",
            session: Some(&s),
        };
        render(&shell, &sample_choices(), &Form::default(), Some(run)).into_string()
    }

    /// Every `id="…"` of a page.
    fn ids(html: &str) -> Vec<String> {
        html.split(r#" id=""#)
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_string())
            .collect()
    }

    /// The `href="#…"` targets of links with `data-testid="{testid}"`.
    fn link_targets(html: &str, testid: &str) -> Vec<String> {
        html.split("<a ")
            .skip(1)
            .filter(|a| a[..a.find('>').unwrap()].contains(&format!(r#"data-testid="{testid}""#)))
            .map(|a| {
                let at = a.find(r##"href="#"##).unwrap() + r##"href="#"##.len();
                a[at..at + a[at..].find('"').unwrap()].to_string()
            })
            .collect()
    }

    #[test]
    fn ids_are_valid_and_unique_and_every_issue_links_to_an_element_on_the_page() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Observation",
             "valueQuantity": {"value": 8.10}, "subject": {"reference": "urn:uuid:b"}}}]});
        let record = json!({"id_kunjungan": "K-1", "pengukuran": {"berat_badan": 8.10}});
        let run = Run::Mapped {
            record: Some(record),
            trial: Trial {
                canonical: None,
                bundle: Some(bundle),
                issues: vec![
                    Found {
                        place: Place::Bundle,
                        issue: Issue::error(IssueCode::Value, "too heavy <b>")
                            .at("Bundle.entry[0].resource.valueQuantity.value")
                            .rule(10103),
                        record_fields: vec!["/pengukuran/berat_badan".into()],
                    },
                    Found {
                        place: Place::Bundle,
                        issue: Issue::warning(IssueCode::Required, "no performer")
                            .at("Bundle.entry[0].resource.performer"),
                        record_fields: vec![],
                    },
                ],
            },
        };
        let html = html_of(&run);
        let all = ids(&html);
        assert!(
            all.iter().all(|i| !i.is_empty()
                && i.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))),
            "{all:?}"
        );
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            all.len(),
            "unique"
        );
        let elements = link_targets(&html, "playground-issue-element");
        assert_eq!(
            elements,
            vec![
                "el-Bundle.entry-0.resource.valueQuantity.value",
                "el-Bundle.entry-0.resource"
            ]
        );
        let fields = link_targets(&html, "playground-issue-field");
        assert_eq!(fields, vec!["rec.pengukuran.berat_badan"]);
        for target in elements.iter().chain(&fields) {
            assert!(all.contains(target), "{target} is on the page");
        }
        assert!(html.contains(r#"data-testid="rule">Rule 10103<"#));
        assert!(html.contains("too heavy &lt;b&gt;"));
        assert!(html.contains(r#"data-testid="playground-bundle""#));
        assert!(html.contains(r#"data-testid="playground-record""#));
        assert!(html.contains(r#"data-errors="1""#));
    }

    #[test]
    fn input_problems_are_an_outcome_naming_the_field() {
        let record = json!({"id_kunjungan": "K-1", "pengukuran": {}});
        let run = Run::Mapped {
            record: Some(record),
            trial: Trial {
                issues: vec![Found {
                    place: Place::Record,
                    issue: Issue::error(IssueCode::Required, "$.pengukuran.berat_badan is missing")
                        .at("$.pengukuran.berat_badan"),
                    record_fields: vec![],
                }],
                ..Default::default()
            },
        };
        let html = html_of(&run);
        assert!(html.contains(r#"data-testid="playground-no-bundle""#));
        // The field is named; the link leads to where it belongs.
        assert!(
            html.contains(r##"href="#rec.pengukuran" data-testid="playground-issue-field" data-field="/pengukuran/berat_badan" data-exact="false""##),
            "{html}"
        );
        assert!(ids(&html).contains(&"rec.pengukuran".to_string()));
    }

    #[test]
    fn what_is_not_json_is_said_so_plainly() {
        let run = map_run(Lang::En, "{\"a\": ", 64, |_| unreachable!());
        let html = html_of(&run);
        assert!(html.contains("This is not JSON"), "{html}");
        assert!(html.contains(r#"data-testid="playground-issue""#));
        let run = map_run(Lang::Id, &"[".repeat(100), 64, |_| unreachable!());
        let Run::Mapped { trial, .. } = run else {
            panic!()
        };
        assert_eq!(trial.issues[0].issue.code, IssueCode::TooLong);
        let run = map_run(Lang::Id, "  ", 64, |_| unreachable!());
        let Run::Mapped { trial, .. } = run else {
            panic!()
        };
        assert_eq!(trial.issues[0].issue.code, IssueCode::Required);
    }

    #[test]
    fn a_facility_maps_for_itself_an_operator_for_the_playground_sender() {
        let mappings =
            Mappings::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings"))
                .unwrap();
        let op = choices_for(&mappings, &session());
        assert!(!op.sender.own);
        assert_eq!(op.sender.organization_id, crate::sandbox::DEMO_ORGANIZATION);
        let fac = Session {
            principal: Principal::Facility(Facility {
                id: "pkm".into(),
                name: "P".into(),
                organization_id: "777".into(),
                location_id: "L-1".into(),
            }),
            ..session()
        };
        let own = choices_for(&mappings, &fac);
        assert!(own.sender.own);
        assert_eq!(own.sender.organization_id, "777");
        // Examples of every record type, adapters' named by their format.
        assert!(
            op.examples
                .iter()
                .any(|e| e.value == "posyandu.balita/bayi-9-bulan-imunisasi")
        );
        assert!(
            op.examples
                .iter()
                .any(|e| e.format.as_deref() == Some("pcare")
                    && e.value.starts_with("rawat-jalan/pcare/"))
        );
        let bundles = choices(&mappings, &session(), Mode::Validate, 1);
        assert!(
            bundles
                .examples
                .iter()
                .all(|e| e.path.to_string_lossy().ends_with(".bundle.json"))
        );
        assert!(!bundles.examples.is_empty());
    }

    fn choices_for(mappings: &Mappings, s: &Session) -> Choices {
        choices(mappings, s, Mode::Map, 1024)
    }
}
