//! The JSON Schemas of `runbook.yaml`, feedback files and lessons, for editors and
//! downstream tools.

/// The JSON Schema (draft 2020-12) of the runbook format, pretty-printed.
///
/// ```
/// let schema = runbook_core::json_schema();
/// assert!(schema.contains("\"apiVersion\""));
/// ```
pub fn json_schema() -> String {
    schema_of::<crate::Runbook>()
}

/// The JSON Schema of a feedback file (`feedback/<time>-<step>.yaml`).
pub fn feedback_json_schema() -> String {
    schema_of::<crate::Feedback>()
}

/// The JSON Schema of a lesson file.
pub fn lesson_json_schema() -> String {
    schema_of::<crate::Lesson>()
}

fn schema_of<T: schemars::JsonSchema>() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = serde_json::to_value(&schema).unwrap_or_default();
    plain_descriptions(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// Descriptions come from the Rust docs: other languages' tools show them as plain text,
/// so intra-doc links (`[`Runbook::builder`]`, `[text](target)`) become their text.
fn plain_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if key == "description" => *s = unlink(s),
                    _ => plain_descriptions(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// `[`X`]`, `[`X`](…)` and `[text](…)` → `X` / `text`.
fn unlink(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(rest[open + 1..close].trim_matches('`'));
        rest = &rest[close + 1..];
        if rest.starts_with('(')
            && let Some(end) = rest.find(')')
        {
            rest = &rest[end + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptions_read_as_plain_text() {
        assert_eq!(
            super::unlink("See [`Runbook::builder`] and [the docs](https://x.invalid)."),
            "See Runbook::builder and the docs."
        );
        assert!(!super::json_schema().contains("[`"));
    }
}
