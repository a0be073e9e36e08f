//! Variable references: `"$NAME"` in shell commands, `${NAME}` in config templates.

use std::collections::BTreeMap;

/// A reference to a variable found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarRef<'a> {
    /// The variable name.
    pub name: &'a str,
    /// Byte offset of the `$` in the text.
    pub offset: usize,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `name` is UPPER_SNAKE (`NAMESPACE`, `DB_PASSWORD`, `K8S_VERSION`).
pub fn is_upper_snake(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// The UPPER_SNAKE variables a shell command expands: `$NAME` and `${NAME…}`.
///
/// Single-quoted text and backslash-escaped dollars are skipped, as bash does.
/// Lowercase names are left alone: they are the command's own shell variables.
///
/// ```
/// use runbook_core::template::shell_references;
/// let refs: Vec<_> = shell_references(r#"psql -h "$DB_HOST" -c 'SELECT $1' \$NOT ${PORT:-5432} $lower"#)
///     .into_iter().map(|r| r.name).collect();
/// assert_eq!(refs, ["DB_HOST", "PORT"]);
/// ```
pub fn shell_references(command: &str) -> Vec<VarRef<'_>> {
    let b = command.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_double = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if !in_double => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                in_double = !in_double;
                i += 1;
            }
            b'$' => {
                let start = i;
                i += 1;
                let braced = b.get(i) == Some(&b'{');
                if braced {
                    i += 1;
                }
                let name_start = i;
                if i < b.len() && is_name_start(b[i]) {
                    while i < b.len() && is_name_byte(b[i]) {
                        i += 1;
                    }
                    let name = &command[name_start..i];
                    if is_upper_snake(name) {
                        out.push(VarRef {
                            name,
                            offset: start,
                        });
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Names a shell command assigns itself (`NAME=…`, `export NAME=…`, `for NAME in`, `read NAME`).
pub fn shell_assignments(command: &str) -> Vec<&str> {
    let b = command.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word_start =
            i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(');
        if at_word_start && is_name_start(b[i]) {
            let start = i;
            while i < b.len() && is_name_byte(b[i]) {
                i += 1;
            }
            let word = &command[start..i];
            if b.get(i) == Some(&b'=') {
                out.push(word);
            } else if matches!(word, "for" | "read" | "export" | "local" | "declare") {
                // The next word is the assigned name (`for NAME in`, `read NAME`).
                let mut j = i;
                while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                    j += 1;
                }
                let s = j;
                while j < b.len() && is_name_byte(b[j]) {
                    j += 1;
                }
                if j > s && (word == "for" || word == "read") {
                    out.push(&command[s..j]);
                }
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The `${NAME}` placeholders (UPPER_SNAKE) in a config template.
///
/// ```
/// use runbook_core::template::template_references;
/// let refs: Vec<_> = template_references("ns: ${NAMESPACE}\nliteral: $HOME ${lower}")
///     .into_iter().map(|r| r.name).collect();
/// assert_eq!(refs, ["NAMESPACE"]);
/// ```
pub fn template_references(template: &str) -> Vec<VarRef<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut base = 0;
    while let Some(pos) = rest.find("${") {
        let after = &rest[pos + 2..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if is_upper_snake(name) {
                out.push(VarRef {
                    name,
                    offset: base + pos,
                });
            }
        }
        base += pos + 2;
        rest = &rest[pos + 2..];
    }
    out
}

/// Fills the `${NAME}` placeholders whose name is in `values`; others stay as written.
///
/// ```
/// use std::collections::BTreeMap;
/// use runbook_core::template::fill_template;
/// let values = BTreeMap::from([("NAMESPACE".to_string(), "sandbox-test".to_string())]);
/// assert_eq!(fill_template("ns: ${NAMESPACE} ${OTHER}", &values), "ns: sandbox-test ${OTHER}");
/// ```
pub fn fill_template(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for r in template_references(template) {
        if let Some(value) = values.get(r.name) {
            out.push_str(&template[last..r.offset]);
            out.push_str(value);
            last = r.offset + r.name.len() + 3;
        }
    }
    out.push_str(&template[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cmd: &str) -> Vec<&str> {
        shell_references(cmd).into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn finds_plain_braced_and_quoted_references() {
        assert_eq!(
            names(r#"kubectl -n "$NAMESPACE" get ${KIND}s"#),
            ["NAMESPACE", "KIND"]
        );
        assert_eq!(names(r#"echo "${A:-x}" "${B?}""#), ["A", "B"]);
    }

    #[test]
    fn skips_single_quotes_escapes_and_lowercase() {
        assert!(names(r#"echo '$NOPE' \$NOPE $lower $1 $$"#).is_empty());
        assert_eq!(names(r#"echo "it's $YES""#), ["YES"]);
    }

    #[test]
    fn finds_assignments() {
        assert_eq!(
            shell_assignments("X=1; export Y=2 && for Z in a b; do read W; done"),
            ["X", "Y", "Z", "W"]
        );
    }

    #[test]
    fn fills_only_known_placeholders() {
        let values = BTreeMap::from([("A".to_string(), "${B}".to_string())]);
        // A value that looks like a placeholder is not expanded again.
        assert_eq!(fill_template("${A}-${B}-${", &values), "${B}-${B}-${");
    }

    proptest::proptest! {
        #[test]
        fn scanning_never_panics(s in ".*") {
            let _ = shell_references(&s);
            let _ = shell_assignments(&s);
            let _ = template_references(&s);
            let _ = fill_template(&s, &BTreeMap::new());
        }
    }
}
