//! Findings: parse errors and lint diagnostics located in their file, in the one format the
//! CLI prints and the MCP server returns.

use runbook_core::{Diagnostic, Lesson, ParseError, Runbook, SourceMap};

/// One finding, parse error or lint, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// The file (or `<input>` for text given inline).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// `error` or `warning`.
    pub severity: String,
    /// The rule's code (`missing-verification`), or `parse`.
    pub code: String,
    /// The path in the runbook (`steps[2].verify[0]`); absent for a parse error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl Finding {
    /// A parse error as a finding.
    pub fn parse(e: &ParseError, file: &str) -> Finding {
        Finding {
            file: file.to_owned(),
            line: e.line,
            column: e.column,
            severity: "error".into(),
            code: "parse".into(),
            path: String::new(),
            message: e.message.clone(),
            help: e.help.clone(),
        }
    }

    /// A lint diagnostic as a finding, located with `map`.
    pub fn lint(d: Diagnostic, file: &str, map: &SourceMap) -> Finding {
        let (line, column) = map
            .locate(&d.path)
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        Finding {
            file: file.to_owned(),
            line,
            column,
            severity: if d.is_error() { "error" } else { "warning" }.into(),
            code: d.code().to_owned(),
            path: d.path,
            message: d.message,
            help: d.help,
        }
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }

    /// `FILE:LINE:COL: severity[code] path: message`, then `    help: …`.
    pub fn text(&self) -> String {
        let pos = match (self.line, self.column) {
            (Some(l), Some(c)) => format!(":{l}:{c}"),
            _ => String::new(),
        };
        let path = if self.path.is_empty() {
            String::new()
        } else {
            format!(" {}", self.path)
        };
        format!(
            "{}{pos}: {}[{}]{path}: {}\n    help: {}",
            self.file, self.severity, self.code, self.message, self.help
        )
    }
}

/// Every lint finding of a parsed runbook (and the `unaddressed-lesson` warnings of
/// `lessons`), located in its `text`, in file order.
pub fn of(runbook: &Runbook, text: &str, file: &str, lessons: &[Lesson]) -> Vec<Finding> {
    let mut diags = runbook.lint();
    diags.extend(runbook_core::unaddressed_lessons(runbook, lessons));
    let map = if diags.is_empty() {
        SourceMap::default()
    } else {
        SourceMap::new(text)
    };
    let mut findings: Vec<Finding> = diags
        .into_iter()
        .map(|d| Finding::lint(d, file, &map))
        .collect();
    findings.sort_by_key(|f| (f.line, f.column));
    findings
}
