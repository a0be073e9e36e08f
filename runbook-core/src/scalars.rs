//! One reading of every scalar of a YAML runbook: the spellings that YAML and JSON tools
//! read differently (`yes`, `0o17`, `1.30`, `title: 123`, `exitCode: "0"`, `<<: *base`)
//! are refused with their place and the plain fix, so that a tool that loads and re-saves
//! the runbook cannot change what a step sees, and the JSON Schema's verdict is runbook's.
//!
//! The rule per field (the schema says the same, see `docs/format.md`):
//! - text fields take text; a bare number, boolean, date or YAML 1.1 word must be quoted;
//! - `exitCode`, `status`, `count`, `pids` take a number written in plain decimal digits, unquoted;
//! - `readOnly`, `exists`, `generate` take `true` or `false`, unquoted;
//! - a variable's `sandbox` and `rehearsal`, the `version`s and `target.kubernetesVersion`
//!   also take a bare number (`8080`, `1.29`) read as its text, when every reader writes
//!   it back the same (not `1.30`, `1.0`, `0x1F`, `1e3`, `010`); variables also take a
//!   bare `true` or `false`;
//! - a tcp `port` also takes a bare whole number.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use crate::ParseError;

/// What a key's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text only.
    Text,
    /// A whole number, unquoted.
    Integer,
    /// `true` or `false`, unquoted.
    Boolean,
    /// Text, or a bare number read as its text (and a bare boolean, when `true`).
    BareText { booleans: bool },
    /// Text, or a bare whole number.
    Port,
}

fn kind_of(key: &str) -> Kind {
    match key {
        "exitCode" | "status" | "count" | "pids" => Kind::Integer,
        "readOnly" | "exists" | "generate" => Kind::Boolean,
        "sandbox" | "rehearsal" => Kind::BareText { booleans: true },
        "version" | "kubernetesVersion" => Kind::BareText { booleans: false },
        "port" => Kind::Port,
        _ => Kind::Text,
    }
}

/// The keys whose values are texts (or enums, durations): a key that is none of the
/// runbook's is left alone, for the parser to report as unknown.
const TEXT_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "architecture",
    "bodyContains",
    "category",
    "cause",
    "cloud",
    "contains",
    "content",
    "description",
    "equals",
    "error",
    "fix",
    "host",
    "id",
    "image",
    "context",
    "expect",
    "reason",
    "cpus",
    "interval",
    "lesson",
    "lifetime",
    "matches",
    "memory",
    "mode",
    "name",
    "origin",
    "path",
    "platform",
    "production",
    "reference",
    "run",
    "scenario",
    "selector",
    "source",
    "timeout",
    "title",
    "tool",
    "url",
    "versionCommand",
    "versionPattern",
    "within",
    "workdir",
];

fn is_known(key: &str) -> bool {
    kind_of(key) != Kind::Text || TEXT_KEYS.contains(&key) || TEXT_LISTS.contains(&key)
}

/// Lists whose items are texts (`notes: [...]`): their bare items are checked as text.
const TEXT_LISTS: &[&str] = &[
    "requirements",
    "successCriteria",
    "checklist",
    "files",
    "notes",
    "diagnose",
    "untested",
    "production",
];

/// A plain scalar that YAML (1.2 core schema, or 1.1's extras, as PyYAML and js-yaml read
/// them) may read as something other than text: null, a boolean, a number, a date.
pub(crate) fn is_special_plain(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
        "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    WORDS.contains(&s) || looks_numeric(s) || looks_like_date(s)
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Integers (decimal, `0x`, `0o`, `0b`, with `_` or `:` separators), floats (`1.5`,
/// `.5`, `1e3`, `.inf`, `.nan`).
pub(crate) fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), ".inf" | ".nan") {
        return true;
    }
    for prefix in ["0x", "0o", "0b"] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            return !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit() || c == '_');
        }
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    let mut dots = 0;
    let mut digits = 0;
    for c in mantissa.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            '_' | ':' => {}
            _ => return false,
        }
    }
    exponent_ok && digits > 0 && dots <= 1
}

/// `2024-01-31` (and a timestamp that starts so): PyYAML and js-yaml read it as a date.
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 8 || !digits(0..4) || b[4] != b'-' {
        return false;
    }
    // YYYY-M[M]-D[D], then the end or a time.
    let rest = &s[5..];
    let mut parts = rest.splitn(2, '-');
    let (Some(month), Some(tail)) = (parts.next(), parts.next()) else {
        return false;
    };
    let day_len = tail.bytes().take_while(u8::is_ascii_digit).count();
    (1..=2).contains(&month.len())
        && month.bytes().all(|c| c.is_ascii_digit())
        && (1..=2).contains(&day_len)
        && matches!(
            tail.as_bytes().get(day_len),
            None | Some(b'T' | b't' | b' ' | b'\t')
        )
}

/// A whole number in plain decimal digits: `0`, `42`, `-1` (not `+1`, `007`, `1_000`).
pub(crate) fn is_plain_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && (s != "-0")
}

/// The largest whole number every JSON reader holds exactly (2^53 - 1).
const MAX_EXACT: u64 = (1 << 53) - 1;

/// A bare number that every YAML and JSON reader reads and writes back as written: a
/// plain whole number up to 2^53 - 1, or a decimal such as `1.29` that is its own
/// shortest form (not `1.30`, `1.0`, `0.0000001`, `1e3`).
fn is_stable_number(s: &str) -> bool {
    if is_plain_integer(s) {
        return s
            .trim_start_matches('-')
            .parse::<u64>()
            .is_ok_and(|n| n <= MAX_EXACT);
    }
    let Some((whole, fraction)) = s.split_once('.') else {
        return false;
    };
    if !is_plain_integer(whole)
        || fraction.is_empty()
        || !fraction.bytes().all(|c| c.is_ascii_digit())
    {
        return false;
    }
    s.parse::<f64>()
        .is_ok_and(|f| f.abs() >= 1e-6 && f.abs() < MAX_EXACT as f64 && f.to_string() == s)
}

/// Why a scalar must be written otherwise, and how: (message, help).
fn problem(key: &str, kind: Kind, text: &str, style: ScalarStyle) -> Option<(String, String)> {
    let plain = style == ScalarStyle::Plain;
    if plain && is_null(text) {
        // Null is "not given" for an optional field and an error for a required one.
        return None;
    }
    let what = || {
        if looks_like_date(text) {
            "a date"
        } else if looks_numeric(text) {
            "a number"
        } else {
            "a boolean"
        }
    };
    // A variable's values may be secrets: their errors do not echo them.
    let shown = if matches!(key, "sandbox" | "rehearsal" | "production" | "reference") {
        "…"
    } else {
        text
    };
    let quote = || {
        (
            format!(
                "`{key}` is text, but the bare `{shown}` is {} to other YAML and JSON readers: quote it: '{shown}'",
                what()
            ),
            if matches!(key, "timeout" | "within" | "interval") && is_plain_integer(text) {
                format!("a duration has a unit: write `{key}: {text}s` (or `{key}: '0'` for none)")
            } else {
                format!("write `{key}: '{shown}'`")
            },
        )
    };
    const BOOLEANS: &[&str] = &["true", "True", "TRUE", "false", "False", "FALSE"];
    match kind {
        Kind::Text if plain && is_special_plain(text) => Some(quote()),
        Kind::Text => None,
        // Texts that are no number at all get the parser's own error, which echoes nothing.
        Kind::Integer if !plain && !is_plain_integer(text.trim()) => None,
        Kind::Integer if plain && !is_special_plain(text) => None,
        Kind::Boolean if !plain && !BOOLEANS.contains(&text.trim()) => None,
        Kind::Boolean if plain && !is_special_plain(text) => None,
        Kind::Integer if !plain => Some((
            format!(
                "`{key}` is a number, but `{text}` is quoted text: write the number without quotes"
            ),
            format!("write `{key}: {}`", text.trim()),
        )),
        Kind::Integer if !is_plain_integer(text) => Some((
            format!(
                "`{key}` is a whole number in plain decimal digits, not `{text}` (other readers read `0x`, `0o`, leading zeros, `_` and decimals differently)"
            ),
            format!("write `{key}:` followed by digits only, such as `{key}: 0`"),
        )),
        Kind::Integer => None,
        Kind::Boolean if !plain => Some((
            format!("`{key}` is true or false, but `{text}` is quoted text"),
            format!("write `{key}: true` or `{key}: false`, without quotes"),
        )),
        Kind::Boolean if !BOOLEANS.contains(&text) => Some((
            format!(
                "`{key}: {text}` is true to some YAML readers and text to others: write true or false"
            ),
            format!("write `{key}: true` or `{key}: false`"),
        )),
        Kind::Boolean => None,
        Kind::BareText { booleans } if plain && is_special_plain(text) => {
            if is_stable_number(text) || (booleans && matches!(text, "true" | "false")) {
                None
            } else {
                Some(quote())
            }
        }
        Kind::Port if plain && is_special_plain(text) => {
            if is_plain_integer(text) {
                None
            } else {
                Some(quote())
            }
        }
        Kind::BareText { .. } | Kind::Port => None,
    }
}

/// The first scalar of `yaml` that other readers read differently, as a located error.
/// YAML the parser cannot read is no finding here: `serde-saphyr` reports it.
pub(crate) fn check(yaml: &str) -> Result<(), ParseError> {
    enum Frame {
        /// A mapping; the key whose value comes next, if a key was read.
        Map { key: Option<String> },
        /// A sequence, and the key it is the value of.
        Seq { key: Option<String> },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let error = |span: &serde_saphyr::granit_parser::Span, (message, help): (String, String)| {
        Err(ParseError {
            file: None,
            line: Some(span.start.line() as u64),
            column: Some(span.start.col() as u64 + 1),
            message,
            help,
        })
    };
    for item in Parser::new_from_str(yaml) {
        let Ok((event, span)) = item else {
            return Ok(());
        };
        // The key this node is the value of (None for a key itself, a root, or an item of
        // a list whose items are not texts), and whether the node is a mapping key.
        let (context, is_key) = match stack.last_mut() {
            Some(Frame::Map { key }) => match key.take() {
                None => (None, true),
                Some(k) => (Some(k), false),
            },
            Some(Frame::Seq { key }) => (
                key.clone().filter(|k| TEXT_LISTS.contains(&k.as_str())),
                false,
            ),
            None => (None, false),
        };
        match event {
            Event::Scalar(value, style, _, tag) => {
                if is_key {
                    if style == ScalarStyle::Plain && value == "<<" {
                        return error(
                            &span,
                            (
                                "a merge key (`<<: *anchor`) is read differently by YAML tools (YAML 1.2 has none)".into(),
                                "write the keys out in each place".into(),
                            ),
                        );
                    }
                    if let Some(Frame::Map { key }) = stack.last_mut() {
                        *key = Some(value.into_owned());
                    }
                } else if let Some(key) = context
                    && tag.is_none()
                    && is_known(&key)
                    && let Some(found) = problem(&key, kind_of(&key), &value, style)
                {
                    return error(&span, found);
                }
            }
            Event::MappingStart(..) => {
                if is_key {
                    return Ok(()); // a complex key: serde-saphyr reports it
                }
                stack.push(Frame::Map { key: None });
            }
            Event::SequenceStart(..) => {
                if is_key {
                    return Ok(());
                }
                stack.push(Frame::Seq { key: context });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Alias(..) => {}
            _ => {
                // Stream and document markers: not a node; undo the key taken above.
                if let (Some(Frame::Map { key }), Some(k)) = (stack.last_mut(), context) {
                    *key = Some(k);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(yaml: &str) -> String {
        check(yaml).unwrap_err().message
    }

    #[test]
    fn bare_numbers_and_words_in_text_fields_must_be_quoted() {
        let m = message("metadata:\n  title: 123\n");
        assert!(m.contains("quote it: '123'"), "{m}");
        let e = check("steps:\n  - id: a\n    run: yes\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(10)));
        assert!(message("notes: [1.5]\n").contains("'1.5'"));
        assert!(message("a:\n  mode: 600\n").contains("'600'"));
        assert!(message("a:\n  timeout: 0\n").contains("'0'"));
        assert!(message("a:\n  title: 2024-01-31\n").contains("a date"));
        check("a:\n  title: '123'\n  run: 1m30s\n  x: 127.0.0.1\n  y: null\n").unwrap();
    }

    #[test]
    fn numbers_and_booleans_are_written_one_way() {
        assert!(message("expect:\n  exitCode: \"0\"\n").contains("without quotes"));
        for odd in ["0x1F", "0o17", "007", "+1", "1.0", "1e3", "1_000"] {
            assert!(
                check(&format!("expect:\n  exitCode: {odd}\n")).is_err(),
                "{odd}"
            );
        }
        check("expect:\n  exitCode: 0\n").unwrap();
        for odd in ["yes", "off", "'true'"] {
            assert!(check(&format!("s:\n  readOnly: {odd}\n")).is_err(), "{odd}");
        }
        check("s:\n  readOnly: true\n").unwrap();
    }

    #[test]
    fn bare_versions_and_values_only_when_every_reader_keeps_them() {
        for ok in ["8080", "1.29", "15", "true", "1.2.3", "v1"] {
            check(&format!("v:\n  sandbox: {ok}\n")).unwrap();
        }
        for odd in [
            "1.30", "1.0", "0x1F", "0o17", "1e3", "no", "on", "010", ".inf",
        ] {
            let m = message(&format!("v:\n  sandbox: {odd}\n"));
            // A variable's value may be a secret: the error does not echo it.
            assert!(m.contains("quote it") && !m.contains(odd), "{m}");
        }
        assert!(message("metadata:\n  version: 1.30\n").contains("quote it: '1.30'"));
        assert!(check("metadata:\n  version: true\n").is_err());
        check("tcp:\n  port: 5432\n").unwrap();
        assert!(check("tcp:\n  port: 5432.0\n").is_err());
    }

    #[test]
    fn merge_keys_are_refused() {
        let m = message("a: &b {x: hello}\nc:\n  <<: *b\n");
        assert!(m.contains("merge key"), "{m}");
    }

    #[test]
    fn stable_numbers() {
        for n in ["0", "1", "1.29", "0.5", "9007199254740991"] {
            assert!(is_stable_number(n), "{n}");
        }
        for n in [
            "1.30",
            "1.0",
            "9007199254740992",
            "0.0000001",
            "-0",
            "01",
            "1.",
        ] {
            assert!(!is_stable_number(n), "{n}");
        }
    }
}
