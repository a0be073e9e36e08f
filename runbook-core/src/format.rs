//! Reading and writing `runbook.yaml` / `runbook.json`, with errors that name the file,
//! line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Runbook;

/// A runbook file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong, naming the field, in plain words.
    pub message: String,
    /// What to change (a "did you mean" for a misspelled key or value).
    pub help: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map_or_else(|| "<input>".to_owned(), |p| p.display().to_string());
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{file}:{l}:{c}: {}", self.message),
            (Some(l), None) => write!(f, "{file}:{l}: {}", self.message),
            _ => write!(f, "{file}: {}", self.message),
        }
    }
}

impl ParseError {
    /// An error at a place, its message put in plain words with a help line.
    fn at(line: Option<u64>, column: Option<u64>, raw: &str) -> Self {
        let (message, help) = crate::plain::explain(&without_values(raw));
        ParseError {
            file: None,
            line,
            column,
            message,
            help,
        }
    }

    /// Attaches the file name.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }
}

/// Limits that keep a hostile file from exhausting memory or time.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_documents: 1,
            max_anchors: 1_000,
            max_aliases: 1_000,
            max_total_scalar_bytes: 256 * 1024 * 1024,
            // A 10,000-step runbook has about 400,000 nodes; leave room for far bigger ones.
            max_nodes: 20_000_000,
            max_events: 40_000_000,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// Reads a runbook from YAML text.
///
/// ```
/// let rb = runbook_core::from_yaml_str(r#"
/// apiVersion: runbook/v1
/// kind: Runbook
/// metadata: { name: hello }
/// steps:
///   - id: say-hello
///     title: Say hello
///     run: echo hello
///     readOnly: true
///     verify:
///       - run: echo hello
///         expect: { stdout: { equals: hello } }
/// "#)?;
/// assert_eq!(rb.steps[0].id, "say-hello");
///
/// let err = runbook_core::from_yaml_str("apiVersion: runbook/v1\nkind: Runbook\nmetadta: {}\n").unwrap_err();
/// assert_eq!(err.line, Some(3));
/// assert!(err.message.contains("metadta"));
/// # Ok::<(), runbook_core::ParseError>(())
/// ```
pub fn from_yaml_str(text: &str) -> Result<Runbook, ParseError> {
    // Most runbooks take the fast path; anything it does not handle exactly, and every
    // error, goes to serde-saphyr, whose answer (and error position) is authoritative.
    if text.len() <= MAX_FAST_BYTES
        && let Some(runbook) = crate::fast_yaml::from_str(text)
    {
        return Ok(runbook);
    }
    careful_from_yaml_str(text)
}

/// Larger inputs go straight to the budgeted parser.
const MAX_FAST_BYTES: usize = 64 * 1024 * 1024;

/// Reads a runbook with `serde-saphyr` alone (budgets, every YAML feature, located errors).
pub fn careful_from_yaml_str(text: &str) -> Result<Runbook, ParseError> {
    // One reading of every scalar: what other YAML and JSON readers read differently is
    // refused, with its place (see `docs/format.md`, "Quoting"). When the parser fails at
    // or after a spelling problem's line (`exitCode: 0.0` fails as "invalid i32"), the
    // spelling, first in the file, is reported, in plain words.
    let runbook = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
        let error = yaml_error(&e);
        match crate::scalars::check(text) {
            Err(spelling)
                if error
                    .line
                    .is_none_or(|l| spelling.line.is_some_and(|s| s <= l)) =>
            {
                spelling
            }
            _ => error,
        }
    })?;
    crate::scalars::check(text)?;
    Ok(runbook)
}

fn yaml_error(e: &serde_saphyr::Error) -> ParseError {
    let e = e.without_snippet();
    let location = e.location().filter(|l| l.line() > 0);
    let mut message = e.to_string();
    // The message ends with its own " at line L, column C"; we print that as a prefix instead.
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    ParseError::at(
        location.map(|l| l.line()),
        location.map(|l| l.column()),
        &message,
    )
}

/// A parser message without the value it quotes: "invalid type: integer `987654321`,
/// expected a string" could be a secret's value. The kind, the place (line and column)
/// and what was expected are enough to fix it.
///
/// ```
/// assert_eq!(
///     runbook_core::without_values("invalid type: integer `987654321`, expected a string"),
///     "invalid type: integer, expected a string"
/// );
/// ```
pub fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(start) = message.find(lead) {
            let from = start + lead.len();
            let end = message[from..]
                .find(", expected")
                .map_or(message.len(), |e| from + e);
            let segment = &message[from..end];
            let kind = segment
                .split(['`', '"'])
                .next()
                .unwrap_or(segment)
                .trim_end();
            return format!("{}{kind}{}", &message[..from], &message[end..]);
        }
    }
    message.to_owned()
}

/// Reads a runbook from JSON text.
///
/// Values that YAML files commonly write bare may be JSON numbers, read as their text
/// (`"sandbox": 8080` is `"8080"`, `1.0` is `"1"`, as every JSON reader reads it): a
/// variable's `sandbox` and `rehearsal` (which also take `true` and `false`),
/// `metadata.version`, `target.kubernetesVersion` and a prerequisite's `version`.
pub fn from_json_str(text: &str) -> Result<Runbook, ParseError> {
    let first = serde_json::from_str(text);
    if first.is_err()
        && let Some(normalized) = values_as_strings(text)
        && let Ok(runbook) = serde_json::from_str(&normalized)
    {
        return Ok(runbook);
    }
    first.map_err(|e| {
        let mut message = e.to_string();
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        ParseError::at(
            (e.line() > 0).then_some(e.line() as u64),
            (e.column() > 0).then_some(e.column() as u64),
            &message,
        )
    })
}

/// A JSON number as JavaScript writes it back: `1.0` is `1`, `1.30` is `1.3`.
fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

/// The JSON text with the number (and, where allowed, boolean) values of [`BARE_SCALARS`]
/// as strings, when there are any.
fn values_as_strings(text: &str) -> Option<String> {
    let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut changed = false;
    let mut text_of = |v: &mut serde_json::Value, booleans: bool| match v {
        serde_json::Value::Number(n) => {
            *v = serde_json::Value::String(number_text(n));
            changed = true;
        }
        serde_json::Value::Bool(b) if booleans => {
            *v = serde_json::Value::String(b.to_string());
            changed = true;
        }
        _ => {}
    };
    for (list, key, booleans) in BARE_SCALARS {
        match list {
            Some(list) => {
                let items = doc.get_mut(*list).and_then(|l| l.as_array_mut());
                for item in items.into_iter().flatten() {
                    if let Some(v) = item.get_mut(*key) {
                        text_of(v, *booleans);
                    }
                }
            }
            None => {
                if let Some(v) = doc.pointer_mut(key) {
                    text_of(v, *booleans);
                }
            }
        }
    }
    changed.then(|| doc.to_string())
}

/// Fields that YAML files commonly write bare (`version: 1.29`, `sandbox: 8080`): a list's
/// item key, or a JSON pointer, and whether a bare `true`/`false` is taken too. The
/// schema allows numbers (and those booleans) there; the YAML reader takes only the bare
/// numbers every reader writes back the same (see `crate::scalars`).
pub(crate) const BARE_SCALARS: &[(Option<&str>, &str, bool)] = &[
    (Some("variables"), "sandbox", true),
    (Some("variables"), "rehearsal", true),
    (Some("prerequisites"), "version", false),
    (None, "/metadata/version", false),
    (None, "/target/kubernetesVersion", false),
];

/// Reads a runbook file; `.json` files as JSON, anything else as YAML.
pub fn load(path: impl AsRef<Path>) -> Result<(Runbook, String), ParseError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        from_json_str(&text)
    } else {
        from_yaml_str(&text)
    };
    parsed.map(|rb| (rb, text)).map_err(|e| e.in_file(path))
}

/// A text file, or an error that says why it cannot be read.
fn read_text(path: &Path) -> Result<String, ParseError> {
    std::fs::read_to_string(path).map_err(|e| ParseError {
        file: Some(path.to_owned()),
        line: None,
        column: None,
        message: format!("cannot read the file: {e}"),
        help: match e.kind() {
            std::io::ErrorKind::NotFound => "check the path: no file by that name exists".into(),
            std::io::ErrorKind::PermissionDenied => {
                "check the file's permissions: this user may not read it".into()
            }
            _ => "check that the path names a readable text file".into(),
        },
    })
}

/// Reads a feedback file (`feedback/<time>-<step>.yaml`) from YAML text.
pub fn feedback_from_yaml_str(text: &str) -> Result<crate::Feedback, ParseError> {
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| yaml_error(&e))
}

/// Reads a feedback file; errors name the file, line and column.
pub fn load_feedback(path: impl AsRef<Path>) -> Result<crate::Feedback, ParseError> {
    let path = path.as_ref();
    feedback_from_yaml_str(&read_text(path)?).map_err(|e| e.in_file(path))
}

/// Reads a lesson from YAML text, and refuses an invalid one (see [`crate::Lesson::problems`]).
pub fn lesson_from_yaml_str(text: &str) -> Result<crate::Lesson, ParseError> {
    let lesson: crate::Lesson =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| yaml_error(&e))?;
    match lesson.problems().into_iter().next() {
        None => Ok(lesson),
        Some(problem) => Err(ParseError {
            file: None,
            line: None,
            column: None,
            message: problem,
            help: "fix the lesson file: see docs/feedback.md for its fields".into(),
        }),
    }
}

/// Reads a lessons library: every `*.yaml` / `*.yml` file of `dir`, sorted by name. A
/// missing directory is an empty library; an unreadable or invalid lesson, or two lessons
/// with one id, is an error naming the file.
pub fn load_lessons(dir: impl AsRef<Path>) -> Result<Vec<crate::Lesson>, ParseError> {
    let dir = dir.as_ref();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ParseError {
                file: Some(dir.to_owned()),
                line: None,
                column: None,
                message: format!("cannot read the lessons directory: {e}"),
                help: "check the path given to --lessons (or $RUNBOOK_LESSONS)".into(),
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    let mut lessons: Vec<crate::Lesson> = Vec::with_capacity(paths.len());
    for path in paths {
        let lesson = lesson_from_yaml_str(&read_text(&path)?).map_err(|e| e.in_file(&path))?;
        if lessons.iter().any(|l| l.id == lesson.id) {
            return Err(ParseError {
                file: Some(path),
                line: None,
                column: None,
                message: format!("a second lesson with id `{}`", lesson.id),
                help: "give every lesson its own id (its file name)".into(),
            });
        }
        lessons.push(lesson);
    }
    Ok(lessons)
}

/// Writes a runbook as YAML.
pub fn to_yaml_string(runbook: &Runbook) -> String {
    // The model holds only strings, numbers, booleans, sequences and maps:
    // serialization cannot fail.
    serde_saphyr::to_string(runbook).unwrap_or_default()
}

/// Writes any serializable value (a report, version metadata) as YAML.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

/// Reads a sandbox report (`test-summary.yaml`).
pub fn report_from_yaml_str(text: &str) -> Result<crate::report::Report, ParseError> {
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| yaml_error(&e))
}

/// Writes a runbook as pretty JSON.
pub fn to_json_string(runbook: &Runbook) -> String {
    serde_json::to_string_pretty(runbook).unwrap_or_default()
}

/// Where each path of a YAML runbook is, so findings can say `file:line:col`.
///
/// Built on demand (only when there are findings to print), from the parser's events.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    /// Where each path starts (the first occurrence of a path a duplicate key repeats).
    /// A map, not a list: a runbook with a finding on each of its 10,000 steps looks up
    /// 10,000 paths (issue 29 measured 11.9 s with a list scan per finding).
    entries: std::collections::HashMap<Vec<crate::lint::PathPart>, (u64, u64)>,
}

impl SourceMap {
    /// Indexes every mapping value and sequence item of `yaml`. Invalid YAML gives an
    /// empty map.
    pub fn new(yaml: &str) -> Self {
        use crate::lint::PathPart;
        use serde_saphyr::granit_parser::{Event, Parser};

        enum Frame {
            Map { key: Option<String> },
            Seq { index: usize },
        }
        let mut entries = std::collections::HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: Vec<PathPart> = Vec::new();

        // Called at the start of every node: records its path, and says whether the node is
        // a mapping key (which has no path of its own).
        fn begin(stack: &mut [Frame], path: &mut Vec<PathPart>) -> Option<bool> {
            match stack.last_mut()? {
                Frame::Map { key } => match key.take() {
                    None => Some(true),
                    Some(k) => {
                        path.push(PathPart::Key(k));
                        Some(false)
                    }
                },
                Frame::Seq { index } => {
                    path.push(PathPart::Index(*index));
                    *index += 1;
                    Some(false)
                }
            }
        }

        for item in Parser::new_from_str(yaml) {
            let Ok((event, span)) = item else {
                return SourceMap::default();
            };
            let (line, col) = (span.start.line() as u64, span.start.col() as u64 + 1);
            match event {
                Event::Scalar(value, ..) => match begin(&mut stack, &mut path) {
                    Some(true) => {
                        if let Some(Frame::Map { key }) = stack.last_mut() {
                            *key = Some(value.into_owned());
                        }
                    }
                    Some(false) => {
                        entries.entry(path.clone()).or_insert((line, col));
                        path.pop();
                    }
                    None => {}
                },
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if begin(&mut stack, &mut path) == Some(false) {
                        entries.entry(path.clone()).or_insert((line, col));
                    }
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { key: None }
                    } else {
                        Frame::Seq { index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if !stack.is_empty() {
                        path.pop();
                    }
                }
                Event::Alias(..) if begin(&mut stack, &mut path) == Some(false) => {
                    entries.entry(path.clone()).or_insert((line, col));
                    path.pop();
                }
                _ => {}
            }
        }
        SourceMap { entries }
    }

    /// The line and column of `path` (`steps[2].verify[0]`), or of its nearest ancestor
    /// that is in the file.
    pub fn locate(&self, path: &str) -> Option<(u64, u64)> {
        let mut parts = crate::lint::FieldPath::parse(path);
        loop {
            if let Some((l, c)) = self.entries.get(&parts) {
                return Some((*l, *c));
            }
            parts.pop()?;
        }
    }
}
