//! The file format: round trips, errors with positions, the schema, and no panic on any input.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use runbook_core::{
    Category, Check, ConfigFile, KnownIssue, Limitation, LimitationKind, Prerequisite, Rollback,
    Runbook, SecretSource, Step, Variable, from_json_str, from_yaml_str, json_schema,
    to_json_string, to_yaml_string,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every runbook.yaml under examples/.
fn example_runbooks() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_committed_schemas_are_current() {
    for (file, current) in [
        ("runbook.schema.json", json_schema()),
        ("feedback.schema.json", runbook_core::feedback_json_schema()),
        ("lesson.schema.json", runbook_core::lesson_json_schema()),
    ] {
        let path = repo().join("docs").join(file);
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/{file} is stale: run `UPDATE_SCHEMA=1 cargo test -p runbook-core --test format`"
        );
    }
}

#[test]
fn every_example_parses_lints_clean_and_validates_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let examples = example_runbooks();
    assert!(examples.len() >= 6, "{examples:?}");
    for path in examples {
        let (runbook, text) = runbook_core::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let findings = runbook.lint();
        assert!(findings.is_empty(), "{}: {findings:#?}", path.display());
        let as_json: serde_json::Value = serde_saphyr_value(&text);
        let errors: Vec<String> = validator
            .iter_errors(&as_json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

fn serde_saphyr_value(text: &str) -> serde_json::Value {
    // The schema describes the file as written, so validate the file itself.
    let runbook = from_yaml_str(text).unwrap();
    serde_json::from_str(&to_json_string(&runbook)).unwrap()
}

#[test]
fn parse_errors_name_the_line_column_and_field() {
    let text = "apiVersion: runbook/v1\nkind: Runbook\nmetadata:\n  name: x\nsteps:\n  - id: a\n    title: A\n    run: 'true'\n    verfy: []\n";
    let e = from_yaml_str(text).unwrap_err();
    assert_eq!(e.line, Some(9), "{e}");
    assert!(e.message.contains("verfy"), "{e}");
    let e = e.in_file("runbook.yaml");
    assert!(e.to_string().starts_with("runbook.yaml:9:"), "{e}");
}

#[test]
fn bad_values_are_reported_where_they_are() {
    let cases = [
        (
            "apiVersion: runbook/v2\nkind: Runbook\nmetadata: {name: x}\nsteps: []\n",
            1,
            "runbook/v2",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps:\n  - id: a\n    title: A\n    run: x\n    timeout: 3 weeks\n",
            8,
            "invalid duration",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nmetadata: {name: z}\nsteps: []\n",
            4,
            "duplicate",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps:\n  - id: a\n    title: A\n    run: x\n    verify:\n      - name: no probe\n",
            9,
            "probe",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsandbox:\n  limits:\n    memory: 512MB\nsteps: []\n",
            6,
            "unknown unit `mb`",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsandbox:\n  limits:\n    memory: 1Mi\nsteps: []\n",
            6,
            "at least 6mi",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsandbox:\n  limits:\n    cpus: \"-1\"\nsteps: []\n",
            6,
            "not a decimal number",
        ),
        (
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsandbox:\n  limits:\n    pids: 0\nsteps: []\n",
            6,
            "pids",
        ),
    ];
    for (text, line, needle) in cases {
        let e = from_yaml_str(text).unwrap_err();
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.to_lowercase().contains(needle), "{e}");
    }
}

#[test]
fn json_errors_have_positions_too() {
    let e =
        from_json_str("{\"apiVersion\": \"runbook/v1\",\n \"kind\": \"Runbook\",\n \"bogus\": 1}")
            .unwrap_err();
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("bogus"));
}

fn text() -> impl Strategy<Value = String> {
    // Includes YAML-significant characters, leading/trailing spaces, newlines and unicode.
    prop_oneof![
        "[a-zA-Z0-9 _.:#'\"{}\\[\\],&*!|>%@`-]{0,24}",
        "[ \\t]*[a-z]{1,8}\n[a-z ]{0,8}\n?",
        any::<String>().prop_map(|s| s.chars().filter(|c| *c != '\u{feff}').take(20).collect()),
    ]
}

fn check() -> impl Strategy<Value = Check> {
    (
        text(),
        proptest::option::of(text()),
        0u8..4,
        proptest::option::of(0u64..100_000),
    )
        .prop_map(|(run, name, kind, within)| {
            let mut c = Check::command(run);
            if let Some(n) = name {
                c = c.named(n);
            }
            c = match kind {
                0 => c.stdout_equals("Running"),
                1 => c.stdout_contains("ok"),
                2 => c.stderr_matches("^x+$"),
                _ => c.exit_code(2),
            };
            if let Some(ms) = within {
                c = c.within(std::time::Duration::from_millis(ms));
            }
            c
        })
}

fn step() -> impl Strategy<Value = Step> {
    (
        "[a-z][a-z0-9-]{0,10}",
        text(),
        text(),
        proptest::collection::vec(check(), 0..3),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::collection::vec(text(), 0..2),
    )
        .prop_map(|(id, title, run, checks, rollback, ro, notes)| {
            let mut s = Step::new(id, title).run(run);
            for c in checks {
                s = s.verify(c);
            }
            if let Some(r) = rollback {
                s = s.rollback_with(
                    Rollback::new(r).verify(Check::command("true").stdout_equals("")),
                );
            }
            if ro {
                s = s.read_only();
            }
            for n in notes {
                s = s.note(n).known_issue(KnownIssue::new("e", "c", "f"));
            }
            s
        })
}

fn runbook() -> impl Strategy<Value = Runbook> {
    (
        text(),
        proptest::collection::vec(step(), 0..4),
        proptest::collection::vec(text(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(title, steps, items, secret)| {
            let mut b = Runbook::builder("generated")
                .title(title)
                .prerequisite(
                    Prerequisite::new("bash", ">=4").version_pattern(r"version (\d+\.\d+)"),
                )
                .config_file(ConfigFile::new("config/a.yaml", items.join("\n")))
                .limitation(Limitation::standard(LimitationKind::SingleNode))
                .limitation(Limitation::custom("custom").untested("x"));
            let mut v = Variable::new("DB_PASSWORD", Category::Credential).production("vault");
            if secret {
                v = v.secret(SecretSource::Vault, "secret/x").generated();
            } else {
                v = v.sandbox("value");
            }
            b = b.variable(v);
            for s in steps {
                b = b.step(s);
            }
            for i in items {
                b = b.checklist_item(i);
            }
            b.build_unchecked()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn yaml_round_trip_is_the_identity(rb in runbook()) {
        let yaml = to_yaml_string(&rb);
        let back = from_yaml_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(back, rb);
    }

    #[test]
    fn json_round_trip_is_the_identity(rb in runbook()) {
        let json = to_json_string(&rb);
        prop_assert_eq!(from_json_str(&json).unwrap(), rb);
    }

    #[test]
    fn the_fast_path_agrees_with_serde_saphyr_on_generated_runbooks(rb in runbook()) {
        let yaml = to_yaml_string(&rb);
        prop_assert_eq!(from_yaml_str(&yaml), runbook_core::careful_from_yaml_str(&yaml));
    }

    #[test]
    fn the_fast_path_agrees_with_serde_saphyr_on_arbitrary_documents(doc in yaml_doc()) {
        prop_assert_eq!(from_yaml_str(&doc), runbook_core::careful_from_yaml_str(&doc));
    }

    #[test]
    fn the_fast_path_agrees_with_serde_saphyr_on_mutated_runbooks(rb in runbook(), cut in 0usize..4000, insert in "[ :\n\"'\\-{}\\[\\]#&*!|>a-z0-9~]{0,6}") {
        // Damage a valid file anywhere: both paths must give the same runbook or the same error.
        let mut yaml = to_yaml_string(&rb);
        let mut at = cut % (yaml.len() + 1);
        while !yaml.is_char_boundary(at) {
            at -= 1;
        }
        yaml.insert_str(at, &insert);
        prop_assert_eq!(from_yaml_str(&yaml), runbook_core::careful_from_yaml_str(&yaml));
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser_or_linter(s in any::<String>()) {
        if let Ok(rb) = from_yaml_str(&s) {
            let _ = rb.lint();
        }
        let _ = from_json_str(&s);
        let _ = runbook_core::SourceMap::new(&s).locate("steps[0].run");
    }

    #[test]
    fn arbitrary_yaml_documents_never_panic(doc in yaml_doc()) {
        if let Ok(rb) = from_yaml_str(&doc) {
            let _ = rb.lint();
        }
        let _ = runbook_core::SourceMap::new(&doc).locate("steps[1].verify[0]");
    }
}

/// YAML documents built from runbook-shaped keys, so the parser goes deep into the model.
fn yaml_doc() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("apiVersion"),
        Just("kind"),
        Just("metadata"),
        Just("name"),
        Just("steps"),
        Just("id"),
        Just("title"),
        Just("run"),
        Just("verify"),
        Just("expect"),
        Just("stdout"),
        Just("equals"),
        Just("within"),
        Just("rollback"),
        Just("variables"),
        Just("secret"),
        Just("bogus"),
    ];
    let scalar = prop_oneof![
        Just("runbook/v1".to_owned()),
        Just("Runbook".to_owned()),
        Just("10s".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("~".to_owned()),
        Just("&a x".to_owned()),
        Just("*a".to_owned()),
        "[a-z0-9 ]{0,6}".prop_map(|s| s),
    ];
    let leaf = (key.clone(), scalar).prop_map(|(k, v)| format!("{k}: {v}"));
    leaf.prop_recursive(4, 32, 4, move |inner| {
        (
            key.clone(),
            proptest::collection::vec(inner, 1..4),
            any::<bool>(),
        )
            .prop_map(|(k, items, seq)| {
                let body: Vec<String> = items
                    .iter()
                    .map(|i| {
                        let ind = i.replace('\n', "\n    ");
                        if seq {
                            format!("  - {ind}")
                        } else {
                            format!("  {ind}")
                        }
                    })
                    .collect();
                format!("{k}:\n{}", body.join("\n"))
            })
    })
    .prop_map(|body| format!("apiVersion: runbook/v1\nkind: Runbook\n{body}\n"))
}

#[test]
fn parse_errors_never_echo_a_value() {
    let json = "{\"apiVersion\": \"runbook/v1\", \"kind\": \"Runbook\", \"metadata\": {\"name\": \"x\"},\n \
                \"variables\": [{\"name\": \"DB_PASSWORD\", \"category\": \"credential\", \"production\": 987654321}],\n \
                \"steps\": []}";
    let e = from_json_str(json).unwrap_err();
    assert!(!e.to_string().contains("987654321"), "{e}");
    assert!(e.message.contains("found integer"), "{e}");
    assert_eq!(e.line, Some(2));
    let yaml = "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps:\n  - id: a\n    title: A\n    run: x\n    readOnly: hunter2-s3cret\n";
    let e = from_yaml_str(yaml).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_eq!(e.line, Some(8));
}
