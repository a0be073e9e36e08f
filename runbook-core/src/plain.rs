//! Parser messages in plain words: what to change at that line, and "did you mean"
//! for a misspelled key or value.

/// The generic advice, when nothing more precise is known.
pub(crate) const GENERIC_HELP: &str =
    "fix the file so it matches the format (docs/format.md, `runbook schema`)";

/// Rewrites a YAML/JSON parser or serde message as `(message, help)` for a person.
pub(crate) fn explain(message: &str) -> (String, String) {
    let lower = message.to_lowercase();
    if let Some((bad, expected)) = unknown("unknown field `", message) {
        let help = match closest(&bad, &expected) {
            Some(m) => format!(
                "did you mean `{m}`? The keys allowed here: {}",
                expected.join(", ")
            ),
            None => format!("the keys allowed here: {}", expected.join(", ")),
        };
        return (format!("unknown key `{bad}`"), help);
    }
    if let Some((bad, expected)) = unknown("unknown variant `", message) {
        let help = match closest(&bad, &expected) {
            Some(m) => format!("did you mean `{m}`? One of: {}", expected.join(", ")),
            None => format!("use one of: {}", expected.join(", ")),
        };
        return (format!("`{bad}` is not an allowed value here"), help);
    }
    if let Some(field) = between(message, "missing field `", "`") {
        return (
            format!("`{field}` is missing here"),
            format!(
                "add `{field}:` at this level; if it is there, line it up with the other keys of \
                 this item (YAML nests by indentation, spaces only)"
            ),
        );
    }
    if lower.contains("tab") && (lower.contains("found a tab") || lower.contains("tabs")) {
        return (
            "a tab character in the indentation or between tokens".into(),
            "YAML allows only spaces here: replace the tab on this line with spaces".into(),
        );
    }
    if lower.contains("unclosed quote")
        || lower.contains("found unexpected end of stream")
        || lower.contains("while scanning a quoted scalar")
    {
        return (
            "a quoted string is not closed".into(),
            "add the closing quote on this line, or write the text as a `|` block without quotes"
                .into(),
        );
    }
    if lower.contains("did not find expected '-' indicator") || lower.contains("expected '-'") {
        return (
            "a list item is not lined up with the others".into(),
            "start the item with `- ` at the same indentation as the items before it".into(),
        );
    }
    if lower.contains("mapping values are not allowed") {
        return (
            "a `key: value` appears where a plain value was expected".into(),
            "check this line's indentation against the line above; if a value itself contains `: `, \
             quote it"
                .into(),
        );
    }
    if lower.contains("did not find expected key") || lower.contains("block mapping") {
        return (
            "this line does not fit the indentation around it".into(),
            "line the key up with its siblings (same number of spaces) or nest it under a key ending in `:`"
                .into(),
        );
    }
    if lower.contains("invalid boolean") {
        return (
            "expected `true` or `false` here".into(),
            "write `true` or `false`".into(),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        return (
            format!("expected {expected} here, found {found}"),
            format!("write {expected} (quote a value to make it a string)"),
        );
    }
    if lower.contains("unexpected end of input")
        || lower.contains("eof while parsing a value")
        || lower == "empty document"
    {
        return (
            "the file is empty".into(),
            "a runbook starts with `apiVersion: runbook/v1` and `kind: Runbook`; `runbook new NAME` writes a starter"
                .into(),
        );
    }
    (message.to_owned(), GENERIC_HELP.to_owned())
}

/// `PREFIX bad`, expected one of a, b, c` → (bad, [a, b, c]).
fn unknown(prefix: &str, message: &str) -> Option<(String, Vec<String>)> {
    let bad = between(message, prefix, "`")?;
    let expected = message
        .split_once("expected one of ")
        .map(|(_, rest)| {
            rest.split(", ")
                .map(|s| s.trim_matches('`').trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .or_else(|| {
            message
                .split_once("expected ")
                .map(|(_, rest)| vec![rest.trim_matches('`').trim().to_owned()])
        })
        .unwrap_or_default();
    Some((bad.to_owned(), expected))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// The candidate nearest to `word`, if near enough to be a likely misspelling.
pub(crate) fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_find_their_word() {
        let keys: Vec<String> = ["id", "title", "verify", "rollback", "readOnly"]
            .map(String::from)
            .to_vec();
        assert_eq!(closest("verfy", &keys), Some("verify"));
        assert_eq!(closest("rolback", &keys), Some("rollback"));
        assert_eq!(closest("readonly", &keys), Some("readOnly"));
        assert_eq!(closest("tilte", &keys), Some("title"));
        assert_eq!(closest("banana", &keys), None);
    }

    #[test]
    fn unknown_keys_and_values_get_a_suggestion() {
        let (m, h) = explain("unknown field `verfy`, expected one of id, title, verify");
        assert_eq!(m, "unknown key `verfy`");
        assert!(h.starts_with("did you mean `verify`?"), "{h}");
        let (m, h) = explain("unknown variant `credentail`, expected one of namespace, credential");
        assert!(
            m.contains("credentail") && h.starts_with("did you mean `credential`?"),
            "{h}"
        );
    }
}
