//! The JSON Schema as another language sees it: Python's `jsonschema` (installed by the
//! README's test command into `target/py`) validates every example runbook, rejects every
//! invalid fixture, and agrees with the parser on generated documents.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const VALIDATE: &str = r#"
import json, sys
import jsonschema
job = json.load(sys.stdin)
validator = jsonschema.validators.validator_for(job["schema"])
validator.check_schema(job["schema"])
v = validator(job["schema"])
out = []
for doc in job["docs"]:
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    out.append([len(errors) == 0, errors[0].message if errors else ""])
json.dump(out, sys.stdout)
"#;

/// Validates every document with Python's jsonschema: (valid, first error) each.
fn python_validate(python: &Path, docs: &[Value]) -> Vec<(bool, String)> {
    let schema: Value = serde_json::from_str(&runbook::json_schema()).unwrap();
    let mut child = Command::new(python)
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({ "schema": schema, "docs": docs }).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The document as a YAML tool in another language reads it.
fn as_json(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap()
}

/// What `runbook validate` says: it parses and has no error-level finding.
fn parser_accepts(yaml: &str) -> bool {
    runbook::from_yaml_str(yaml).is_ok_and(|rb| rb.lint().iter().all(|d| !d.is_error()))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
#[ignore = "needs the Python venv of the README's test line"]
fn python_jsonschema_accepts_every_example_and_rejects_every_invalid_fixture() {
    let python = common::python("jsonschema");
    let mut examples = Vec::new();
    yaml_files(&repo().join("examples"), &mut examples);
    yaml_files(&repo().join("tests/fixtures/schema/valid"), &mut examples);
    examples.sort();
    let mut invalid = Vec::new();
    yaml_files(&repo().join("tests/fixtures/schema/invalid"), &mut invalid);
    invalid.sort();
    assert!(examples.len() >= 8 && invalid.len() >= 10);

    let texts: Vec<String> = examples
        .iter()
        .chain(&invalid)
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let docs: Vec<Value> = texts.iter().map(|t| as_json(t)).collect();
    let verdicts = python_validate(&python, &docs);
    for ((path, text), (valid, error)) in examples.iter().chain(&invalid).zip(&texts).zip(verdicts)
    {
        let should = !path.starts_with(repo().join("tests/fixtures/schema/invalid"));
        assert_eq!(valid, should, "{}: python says {error}", path.display());
        assert_eq!(
            parser_accepts(text),
            should,
            "{}: the parser disagrees",
            path.display()
        );
    }
}

/// Documents that vary exactly what the issue found the two disagreeing on.
fn document() -> impl Strategy<Value = String> {
    let step_id = proptest::sample::select(vec![
        "install-config",
        "Install Config",
        "a",
        "a-",
        "-a",
        "UPPER",
        "9lives",
        "a--b",
    ]);
    let run = proptest::sample::select(vec![
        "echo hi",
        "\"\"",
        "\"   \"",
        "|\n      true\n      echo 1",
    ]);
    let verify = proptest::sample::select(vec![
        "    verify:\n      - run: echo hi\n",
        "    verify:\n      - run: echo hi\n        kube: null\n",
        "    verify:\n      - run: echo hi\n        file: { path: x }\n",
        "    verify:\n      - file: { path: x }\n",
        "    verify:\n      - expect: { exitCode: 0 }\n",
        "    verify:\n      - run: \"\"\n",
        "    verify: []\n",
        "",
    ]);
    let variable =
        proptest::sample::select(vec!["PORT", "port", "_P", "_", "P0RT", "1PORT", "A_B"]);
    let value = proptest::sample::select(vec!["8080", "\"8080\"", "app", "true", "127.0.0.1"]);
    let version = proptest::sample::select(vec!["1.29", "\"1.0\"", "2", "1.2.3"]);
    (step_id, run, verify, variable, value, version).prop_map(|(id, run, verify, name, value, version)| {
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: gen, version: {version} }}\n\
             variables:\n  - name: {name}\n    category: other\n    sandbox: {value}\n    production: p\n\
             steps:\n  - id: {id}\n    title: T\n    run: {run}\n    readOnly: true\n{verify}"
        )
    })
}

#[test]
#[ignore = "needs the Python venv of the README's test line"]
fn python_jsonschema_and_the_parser_agree_on_generated_documents() {
    let python = common::python("jsonschema");
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let texts: Vec<String> = (0..400)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let docs: Vec<Value> = texts.iter().map(|t| as_json(t)).collect();
    let verdicts = python_validate(&python, &docs);
    let mut accepted = 0;
    for ((text, doc), (valid, error)) in texts.iter().zip(&docs).zip(verdicts) {
        let parser = parser_accepts(text);
        assert_eq!(
            valid, parser,
            "python says {valid} ({error}), the parser {parser}:\n{text}"
        );
        // The same document as JSON gets the same verdict from the JSON parser.
        let json_parser = runbook::from_json_str(&doc.to_string())
            .is_ok_and(|rb| rb.lint().iter().all(|d| !d.is_error()));
        assert_eq!(json_parser, parser, "YAML and JSON disagree:\n{text}");
        accepted += usize::from(parser);
    }
    // Both outcomes were exercised.
    assert!((10..390).contains(&accepted), "{accepted} of 400 accepted");
}
