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

/// The JSON Schema of the runbook format ([`json_schema`]) as a value, for a validator
/// or a tool that reads or extends it.
///
/// ```
/// let schema = runbook_core::json_schema_value();
/// assert!(schema["properties"]["apiVersion"].is_object());
/// ```
pub fn json_schema_value() -> serde_json::Value {
    schema_value_of::<crate::Runbook>()
}

/// The JSON Schema of a feedback file (`feedback/<time>-<step>.yaml`).
pub fn feedback_json_schema() -> String {
    schema_of::<crate::Feedback>()
}

/// The JSON Schema of a lesson file.
pub fn lesson_json_schema() -> String {
    schema_of::<crate::Lesson>()
}

fn schema_value_of<T: schemars::JsonSchema>() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = serde_json::to_value(&schema).unwrap_or_default();
    finish_schema(&mut value);
    value
}

fn schema_of<T: schemars::JsonSchema>() -> String {
    let value = schema_value_of::<T>();
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// Finishes a schema that schemars generated from this crate's types (or from types that
/// hold them, such as an MCP tool's arguments) the way runbook's own schemas are: plain
/// descriptions, the parser's and the error-level lint rules' constraints (a check has
/// exactly one probe; `kube: null` is no probe), unit enums as `enum`, titled
/// alternatives, and only the formats standard validators know.
///
/// ```
/// let mut schema = serde_json::json!({"type": "integer", "format": "uint16", "minimum": 0});
/// runbook_core::finish_schema(&mut schema);
/// assert_eq!(schema, serde_json::json!({"type": "integer", "minimum": 0, "maximum": 65535}));
/// ```
pub fn finish_schema(value: &mut serde_json::Value) {
    plain_descriptions(value);
    tighten(value);
    unit_enums(value);
    name_alternatives(value, "");
    standard_formats(value);
}

/// schemars names each Rust number type in `format` (`uint16`, `int32`, `double`): JSON
/// Schema defines no such formats, and Ajv's strict mode refuses to compile a schema that
/// uses them. The range they mean becomes `minimum`/`maximum` (kept within what a JSON
/// number holds exactly, so 64-bit types get only their sign).
fn standard_formats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let range: Option<(i64, Option<i64>)> = match map.get("format").and_then(Value::as_str)
            {
                Some("uint8") => Some((0, Some(u8::MAX.into()))),
                Some("uint16") => Some((0, Some(u16::MAX.into()))),
                Some("uint32") => Some((0, Some(u32::MAX.into()))),
                Some("uint" | "uint64" | "uint128") => Some((0, None)),
                Some("int8") => Some((i8::MIN.into(), Some(i8::MAX.into()))),
                Some("int16") => Some((i16::MIN.into(), Some(i16::MAX.into()))),
                Some("int32") => Some((i32::MIN.into(), Some(i32::MAX.into()))),
                Some("int" | "int64" | "int128") => Some((i64::MIN, None)),
                _ => None,
            };
            if let Some((min, max)) = range {
                map.remove("format");
                if min == 0 {
                    map.insert("minimum".into(), Value::from(0));
                } else if max.is_some() {
                    map.insert("minimum".into(), Value::from(min));
                }
                if let Some(max) = max {
                    map.insert("maximum".into(), Value::from(max));
                }
            } else if matches!(
                map.get("format").and_then(Value::as_str),
                Some("float" | "double")
            ) {
                map.remove("format");
            }
            map.values_mut().for_each(standard_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(standard_formats),
        _ => {}
    }
}

// Patterns are written so that ECMA-262 (Ajv) and Python's `re` (Python's `jsonschema`)
// read them the same: `$(?!\n)` ends the text (Python's `$` alone also matches before a
// final newline), and whitespace is an explicit class (`\s` differs between them).

/// A lowercase slug, as `invalid-name` wants it (runbook names, step and lesson ids).
pub const SLUG_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$(?!\\n)";
/// An UPPER_SNAKE variable name, as `invalid-name` wants it.
pub const UPPER_SNAKE_PATTERN: &str = "^(_[A-Z0-9_]*)?[A-Z][A-Z0-9_]*$(?!\\n)";
/// A command with something in it, as `empty-command` wants it: a character that is not
/// white space as Rust's `str::trim` counts it (Unicode `White_Space`).
const NON_BLANK_PATTERN: &str = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// Puts the constraints the parser and the error-level lint rules enforce into the schema,
/// so that a validator in another language accepts what `runbook validate` accepts.
fn tighten(root: &mut serde_json::Value) {
    use serde_json::json;
    let set = |root: &mut serde_json::Value, pointer: &str, key: &str, v: serde_json::Value| {
        if let Some(serde_json::Value::Object(map)) = root.pointer_mut(pointer) {
            map.insert(key.to_owned(), v);
        }
    };
    for pointer in [
        "/$defs/Metadata/properties/name",
        "/$defs/Step/properties/id",
        "/$defs/PreflightCheck/properties/id",
        "/properties/id",
    ] {
        set(root, pointer, "pattern", json!(SLUG_PATTERN));
    }
    // The lesson schema's root `id` is a slug; the runbook's root has no `id`.
    set(
        root,
        "/$defs/Variable/properties/name",
        "pattern",
        json!(UPPER_SNAKE_PATTERN),
    );
    for pointer in [
        "/$defs/Step/properties/run",
        "/$defs/Rollback/properties/run",
    ] {
        set(root, pointer, "pattern", json!(NON_BLANK_PATTERN));
    }
    // A check's `run` is a string with something in it, or absent (null means absent).
    set(
        root,
        "/$defs/Check/properties/run",
        "anyOf",
        json!([{ "type": "string", "pattern": NON_BLANK_PATTERN }, { "type": "null" }]),
    );
    if let Some(serde_json::Value::Object(run)) = root.pointer_mut("/$defs/Check/properties/run") {
        run.remove("type");
    }
    // Lengths and ranges the parser and the error-level lint rules enforce.
    set(
        root,
        "/$defs/Metadata/properties/name",
        "maxLength",
        json!(crate::lint::MAX_NAME),
    );
    for (pointer, min, max) in [
        ("/$defs/Expect/properties/exitCode", 0, 255),
        ("/$defs/HttpProbe/properties/status", 100, 599),
    ] {
        if let Some(serde_json::Value::Object(map)) = root.pointer_mut(pointer) {
            map.remove("format");
            map.insert("minimum".into(), json!(min));
            map.insert("maximum".into(), json!(max));
        }
    }
    if let Some(serde_json::Value::Object(port)) =
        root.pointer_mut("/$defs/TcpProbe/properties/port")
    {
        port.remove("$ref");
        port.insert(
            "anyOf".into(),
            json!([
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string" }
            ]),
        );
    }
    if let Some(serde_json::Value::Object(defs)) = root.pointer_mut("/$defs") {
        defs.remove("StringOrNumber");
    }
    // A variable's name is none that the loader, the shell or the sandbox reads or sets
    // (`reserved-variable`).
    set(
        root,
        "/$defs/Variable/properties/name",
        "not",
        json!({ "anyOf": [
            { "enum": crate::lint::reserved_names() },
            { "pattern": "^(LD_|BASH_FUNC_)" }
        ] }),
    );
    // A credential is a secret or generated (`credential-not-secret`).
    set(
        root,
        "/$defs/Variable",
        "if",
        json!({ "properties": { "category": { "const": "credential" } }, "required": ["category"] }),
    );
    set(
        root,
        "/$defs/Variable",
        "then",
        json!({ "anyOf": [
            { "properties": { "secret": { "type": "object" } }, "required": ["secret"] },
            { "properties": { "generate": { "const": true } }, "required": ["generate"] }
        ] }),
    );
    // What JSON Schema cannot say is said in words, and `runbook validate` reports it.
    for (pointer, words) in [
        (
            "/$defs/Step/properties/id",
            "Unique among the steps: JSON Schema cannot say so; `runbook validate` reports a repeat as `duplicate-step-id`.",
        ),
        (
            "/$defs/PreflightCheck/properties/id",
            "Unique among the pre-flight checks: JSON Schema cannot say so; `runbook validate` reports a repeat as `duplicate-step-id`.",
        ),
        (
            "/$defs/Variable/properties/name",
            "Unique among the variables: JSON Schema cannot say so; `runbook validate` reports a repeat as `duplicate-variable`.",
        ),
        (
            "/$defs/ConfigFile/properties/path",
            "Unique among the config files: JSON Schema cannot say so; `runbook validate` reports a repeat as `config-path`.",
        ),
    ] {
        if let Some(serde_json::Value::Object(map)) = root.pointer_mut(pointer) {
            let base = map
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default();
            let text = if base.is_empty() {
                words.to_owned()
            } else {
                format!("{base} {words}")
            };
            map.insert("description".into(), json!(text));
        }
    }
    // Every step has at least one check (`missing-verification`).
    set(root, "/$defs/Step/properties/verify", "minItems", json!(1));
    if let Some(serde_json::Value::Array(required)) = root.pointer_mut("/$defs/Step/required") {
        required.push(json!("verify"));
    }
    // Exactly one probe key with a value: `kube: null` beside `run` is no second probe.
    // Each alternative is a whole titled object (`CheckWithRun`) holding the common keys,
    // its own probe (required, not null) and the other probes only as null: generators
    // make one typed shape per probe, and a second probe has no room.
    let probes = ["run", "kube", "file", "tcp", "http", "process"];
    if let Some(serde_json::Value::Object(check)) = root.pointer_mut("/$defs/Check") {
        let properties = match check.remove("properties") {
            Some(serde_json::Value::Object(p)) => p,
            _ => serde_json::Map::new(),
        };
        check.remove("additionalProperties");
        let branches: Vec<serde_json::Value> = probes
            .iter()
            .map(|p| {
                let mut own = serde_json::Map::new();
                for (key, schema) in &properties {
                    let schema = if key == "expect" {
                        // A `$ref` with a description of its own is a new type to
                        // generators (`Expect1` … `Expect5`): the definition's describes it.
                        json!({ "$ref": schema.get("$ref").cloned().unwrap_or_default() })
                    } else if key == p {
                        without_null(schema.clone())
                    } else if probes.contains(&key.as_str()) {
                        json!({ "type": "null", "description": "No second probe: only null, which means absent." })
                    } else {
                        schema.clone()
                    };
                    own.insert(key.clone(), schema);
                }
                json!({
                    "title": format!("CheckWith{}", capitalized(p)),
                    "type": "object",
                    "properties": own,
                    "required": [p],
                    "additionalProperties": false,
                })
            })
            .collect();
        check.insert("oneOf".into(), json!(branches));
    }
    // The same for the pre-flight check's `check` (else `Check1` beside `Check`).
    if let Some(serde_json::Value::Object(check)) =
        root.pointer_mut("/$defs/PreflightCheck/properties/check")
    {
        check.remove("description");
    }
    // Values given bare in YAML (`sandbox: 8080`, `version: 1.29`) are read as their text.
    for (list, key, booleans) in crate::format::BARE_SCALARS {
        let pointer = match (list, key.rsplit('/').next()) {
            (Some("variables"), _) => format!("/$defs/Variable/properties/{key}"),
            (Some("prerequisites"), _) => format!("/$defs/Prerequisite/properties/{key}"),
            (None, Some(field)) if key.starts_with("/metadata") => {
                format!("/$defs/Metadata/properties/{field}")
            }
            (None, Some(field)) => format!("/$defs/Target/properties/{field}"),
            _ => continue,
        };
        let nullable = root
            .pointer(&format!("{pointer}/type"))
            .and_then(|t| t.as_array())
            .is_some_and(|t| t.iter().any(|t| t == "null"));
        let mut types = vec!["string", "number"];
        if *booleans {
            types.push("boolean");
        }
        if nullable {
            types.push("null");
        }
        let types = json!(types);
        set(root, &pointer, "type", types);
    }
}

/// The schema without its null alternative: `anyOf: [X, {type: null}]` is X (with the
/// description kept), `type: [string, null]` is `string`.
fn without_null(schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let Value::Object(mut map) = schema else {
        return schema;
    };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(alternatives)) = map.get("anyOf") {
        let kept: Vec<Value> = alternatives
            .iter()
            .filter(|a| a.get("type").is_none_or(|t| t != "null"))
            .cloned()
            .collect();
        if let [only] = kept.as_slice() {
            map.remove("anyOf");
            if let Value::Object(inner) = only {
                for (k, v) in inner {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    Value::Object(map)
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `oneOf` of string `const`s (schemars' form for documented unit variants) becomes an
/// `enum`, whose validation errors name the allowed values; the variants' docs join the
/// description.
fn unit_enums(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let consts: Option<Vec<(String, Option<String>)>> = match map.get("oneOf") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|i| match i.get("const") {
                        Some(Value::String(c))
                            if i.as_object().is_some_and(|o| {
                                o.keys()
                                    .all(|k| matches!(k.as_str(), "const" | "type" | "description"))
                            }) =>
                        {
                            Some((
                                c.clone(),
                                i.get("description")
                                    .and_then(|d| d.as_str())
                                    .map(str::to_owned),
                            ))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            if let Some(consts) = consts {
                map.remove("oneOf");
                map.insert("type".into(), Value::String("string".into()));
                map.insert(
                    "enum".into(),
                    Value::Array(
                        consts
                            .iter()
                            .map(|(c, _)| Value::String(c.clone()))
                            .collect(),
                    ),
                );
                let docs: Vec<String> = consts
                    .iter()
                    .filter_map(|(c, d)| d.as_ref().map(|d| format!("`{c}`: {d}")))
                    .collect();
                if !docs.is_empty() {
                    let base = map
                        .get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    let joined = if base.is_empty() {
                        docs.join(" ")
                    } else {
                        format!("{base} {}", docs.join(" "))
                    };
                    map.insert("description".into(), Value::String(joined));
                }
            }
            map.values_mut().for_each(unit_enums);
        }
        Value::Array(items) => items.iter_mut().for_each(unit_enums),
        _ => {}
    }
}

/// Gives every `oneOf` alternative a title (`TextMatchEquals`), so that types generated
/// from the schema are not `Check1`, `Check2`.
fn name_alternatives(value: &mut serde_json::Value, name: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get_mut("oneOf") {
                for (i, item) in items.iter_mut().enumerate() {
                    let Value::Object(alt) = item else { continue };
                    if alt.contains_key("title") {
                        continue;
                    }
                    let key = alt
                        .get("required")
                        .and_then(|r| r.as_array())
                        .filter(|r| r.len() == 1)
                        .and_then(|r| r[0].as_str())
                        .map(capitalized)
                        .unwrap_or_else(|| format!("Alternative{}", i + 1));
                    alt.insert("title".into(), Value::String(format!("{name}{key}")));
                }
            }
            for (key, v) in map.iter_mut() {
                let child = if key == "$defs" { "" } else { name };
                match v {
                    Value::Object(defs) if key == "$defs" => {
                        for (def, schema) in defs.iter_mut() {
                            name_alternatives(schema, def);
                        }
                    }
                    _ => name_alternatives(v, child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| name_alternatives(v, name)),
        _ => {}
    }
}

/// Descriptions come from the Rust docs: other languages' tools show them as plain text,
/// so intra-doc links (`[`Runbook::builder`]`, `[text](target)`) become their text.
fn plain_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if key == "description" => {
                        *s = unlink(&without_code(s));
                    }
                    _ => plain_descriptions(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// The text without its fenced code blocks (Rust doctests are no description).
fn without_code(text: &str) -> String {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out.join("\n").trim().to_owned()
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
        let inner = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // `steps[2]` is an index, not a link: only `[`X`]` and `[text](…)` are links.
        if !inner.starts_with('`') && !after.starts_with('(') {
            out.push_str(&rest[open..=close]);
            rest = after;
            continue;
        }
        out.push_str(inner.trim_matches('`'));
        rest = after;
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
            super::unlink(
                "See [`Runbook::builder`] and [the docs](https://x.invalid) at `steps[2]`."
            ),
            "See Runbook::builder and the docs at `steps[2]`."
        );
        assert!(!super::json_schema().contains("[`"));
    }
}
