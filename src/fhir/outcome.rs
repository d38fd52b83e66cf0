//! Issues found anywhere on a record's path, and the OperationOutcome that carries them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The FHIR `IssueType` codes gerbang emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    NotFound,
    TooLong,
    CodeInvalid,
    BusinessRule,
    Conflict,
    Throttled,
    Exception,
    Transient,
    Timeout,
    Informational,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::NotFound => "not-found",
            IssueCode::TooLong => "too-long",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::Conflict => "conflict",
            IssueCode::Throttled => "throttled",
            IssueCode::Exception => "exception",
            IssueCode::Transient => "transient",
            IssueCode::Timeout => "timeout",
            IssueCode::Informational => "informational",
        }
    }
}

/// One finding: what is wrong, where (a FHIRPath-style expression or a JSON path of the
/// input), and the SATUSEHAT rule number when the finding is one of SATUSEHAT's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    /// Human text: what is wrong and what to do about it.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
}

impl Issue {
    pub fn new(severity: Severity, code: IssueCode, text: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            text: text.into(),
            expression: None,
            rule: None,
        }
    }
    pub fn error(code: IssueCode, text: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, text)
    }
    pub fn warning(code: IssueCode, text: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, text)
    }
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
    pub fn rule(mut self, rule: u32) -> Self {
        self.rule = Some(rule);
        self
    }
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error | Severity::Fatal)
    }
    /// The text as SATUSEHAT writes it: the rule number in parentheses at the end, so the
    /// same parser reads gerbang's and the upstream's outcomes.
    pub fn details_text(&self) -> String {
        match self.rule {
            Some(rule) => format!("{} (RuleNumber: {rule})", self.text),
            None => self.text.clone(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.severity.as_str())?;
        if let Some(rule) = self.rule {
            write!(f, " [{rule}]")?;
        }
        if let Some(expr) = &self.expression {
            write!(f, " {expr}")?;
        }
        write!(f, ": {}", self.text)
    }
}

/// An ordered list of issues.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outcome {
    pub issues: Vec<Issue>,
}

impl Outcome {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn one(issue: Issue) -> Self {
        Outcome {
            issues: vec![issue],
        }
    }
    pub fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }
    pub fn extend(&mut self, other: Outcome) {
        self.issues.extend(other.issues);
    }
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(Issue::is_error)
    }
    pub fn error_count(&self) -> usize {
        self.issues.iter().filter(|i| i.is_error()).count()
    }
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }
    /// Prefix every expression, e.g. to place a resource's issues under
    /// `Bundle.entry[3].resource`.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for issue in &mut self.issues {
            issue.expression = Some(match issue.expression.take() {
                Some(e) if !e.is_empty() => format!("{prefix}.{e}"),
                _ => prefix.to_string(),
            });
        }
        self
    }
    /// The FHIR OperationOutcome for these issues. An empty outcome becomes one
    /// `information` issue, as FHIR requires at least one.
    pub fn to_operation_outcome(&self) -> Value {
        super::typed::operation_outcome(&self.issues)
    }
    /// Rebuild issues from an OperationOutcome (an upstream answer, or one of ours), reading
    /// SATUSEHAT's `(RuleNumber: NNNNN)` out of the text.
    pub fn from_operation_outcome(oo: &Value) -> Outcome {
        let issues = oo
            .get("issue")
            .and_then(Value::as_array)
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                let severity = match i.get("severity").and_then(Value::as_str) {
                    Some("fatal") => Severity::Fatal,
                    Some("warning") => Severity::Warning,
                    Some("information") => Severity::Information,
                    _ => Severity::Error,
                };
                let code = serde_json::from_value(i.get("code").cloned().unwrap_or_default())
                    .unwrap_or(IssueCode::Processing);
                let raw = i
                    .pointer("/details/text")
                    .or_else(|| i.get("diagnostics"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let (text, rule) = split_rule_number(&raw);
                let expression = i
                    .get("expression")
                    .and_then(|e| e.get(0))
                    .or_else(|| i.get("location").and_then(|e| e.get(0)))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Issue {
                    severity,
                    code,
                    text,
                    expression,
                    rule,
                }
            })
            .collect();
        Outcome { issues }
    }
    /// Every SATUSEHAT rule number mentioned.
    pub fn rule_numbers(&self) -> Vec<u32> {
        let mut rules: Vec<u32> = self.issues.iter().filter_map(|i| i.rule).collect();
        rules.dedup();
        rules
    }
}

impl From<Vec<Issue>> for Outcome {
    fn from(issues: Vec<Issue>) -> Self {
        Outcome { issues }
    }
}

/// `"text (RuleNumber: 10117)"` → `("text", Some(10117))`.
pub fn split_rule_number(text: &str) -> (String, Option<u32>) {
    if let Some(start) = text.rfind("(RuleNumber:") {
        let rest = &text[start + "(RuleNumber:".len()..];
        if let Some(end) = rest.find(')') {
            if let Ok(n) = rest[..end].trim().parse() {
                return (text[..start].trim_end().to_string(), Some(n));
            }
        }
    }
    (text.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_satusehat_rule_numbers() {
        let oo = json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"value",
            "details":{"text":"Wrong organization ID provided by system URL: http://sys-ids.kemkes.go.id/encounter/100025753 (RuleNumber: 10117)"},
            "expression":["Encounter.identifier[0].system"]}]});
        let o = Outcome::from_operation_outcome(&oo);
        assert_eq!(o.issues[0].rule, Some(10117));
        assert_eq!(
            o.issues[0].expression.as_deref(),
            Some("Encounter.identifier[0].system")
        );
        assert!(o.issues[0].text.starts_with("Wrong organization ID"));
        assert!(!o.issues[0].text.contains("RuleNumber"));
    }

    #[test]
    fn round_trips_through_operation_outcome() {
        let o = Outcome::one(
            Issue::error(IssueCode::Required, "Encounter.subject is required")
                .at("Bundle.entry[1].resource.subject")
                .rule(10118),
        );
        let back = Outcome::from_operation_outcome(&o.to_operation_outcome());
        assert_eq!(back, o);
    }

    #[test]
    fn empty_outcome_is_still_valid_fhir() {
        let oo = Outcome::new().to_operation_outcome();
        assert_eq!(oo["issue"][0]["severity"], "information");
    }
}
