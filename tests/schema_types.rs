//! Types generated from the schema work (issue 27): `json-schema-to-typescript` (pinned in
//! `tests/schema-types/package.json`) makes types under which every example compiles with
//! `tsc --strict` and the invalid fixtures whose fault is a shape (two probes, no probe, an
//! unknown key or value, no checks) do not; `datamodel-code-generator` (pinned in the
//! README's test line) makes pydantic models, named from the schema's titles, that accept
//! every example and refuse every invalid fixture, two probes in one check included.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// Documents by file, as JSON.
type Documents = Vec<(PathBuf, Value)>;

/// (valid documents: the examples and the valid fixtures; invalid fixtures), as JSON.
fn documents() -> (Documents, Documents) {
    let read = |dir: &str| {
        let mut paths = Vec::new();
        yaml_files(&repo().join(dir), &mut paths);
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let json: Value = serde_saphyr::from_str(&text).unwrap();
                (p, json)
            })
            .collect::<Vec<_>>()
    };
    let mut valid = read("examples");
    valid.extend(read("tests/fixtures/schema/valid"));
    let invalid = read("tests/fixtures/schema/invalid");
    assert!(valid.len() >= 6 && invalid.len() >= 10);
    (valid, invalid)
}

fn schema_file(dir: &Path) -> PathBuf {
    let path = dir.join("runbook.schema.json");
    std::fs::write(&path, runbook::json_schema()).unwrap();
    path
}

/// Invalid fixtures whose fault a TypeScript type can carry (patterns, lengths and
/// uniqueness it cannot).
const SHAPE_FAULTS: &[&str] = &[
    "two-probes.yaml",
    "no-probe.yaml",
    "no-verify.yaml",
    "empty-verify.yaml",
    "unknown-key.yaml",
    "unknown-category.yaml",
];

#[test]
#[ignore = "needs node with tests/schema-types's node_modules (npm ci --prefix tests/schema-types)"]
fn typescript_types_compile_every_example_and_refuse_shape_faults() {
    let modules = repo().join("tests/schema-types/node_modules");
    let tsc = modules.join(".bin/tsc");
    assert!(
        tsc.is_file(),
        "run `npm ci --prefix tests/schema-types` first (it installs the pinned generator and TypeScript)"
    );
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let status = Command::new("node")
        .arg(repo().join("tests/schema-types/generate.mjs"))
        .arg(&schema)
        .arg(dir.path().join("runbook.ts"))
        .status()
        .unwrap();
    assert!(status.success(), "json-schema-to-typescript failed");
    let types = std::fs::read_to_string(dir.path().join("runbook.ts")).unwrap();
    for name in [
        "export interface Runbook",
        "export interface CheckWithRun",
        "export interface CheckWithFile",
    ] {
        assert!(types.contains(name), "no `{name}` in:\n{types}");
    }
    // Names come from titles and definitions, not counters (`Check1`, `Expect2`).
    let numbered: Vec<&str> = types
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split([' ', '<']).nth(1))
        .filter(|n| n.ends_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(numbered.is_empty(), "numbered type names: {numbered:?}");
    let file = |name: &str, doc: &Value| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("import type {{ Runbook }} from \"./runbook\";\nexport const doc: Runbook = {doc};\n"),
        )
        .unwrap();
        path
    };
    let tsc_run = |files: &[PathBuf]| {
        Command::new(&tsc)
            .args([
                "--strict",
                "--noEmit",
                "--target",
                "es2022",
                "--moduleResolution",
                "node",
            ])
            .args(files)
            .output()
            .unwrap()
    };
    let (valid, invalid) = documents();
    let files: Vec<PathBuf> = valid
        .iter()
        .enumerate()
        .map(|(i, (_, doc))| file(&format!("valid{i}.ts"), doc))
        .collect();
    let out = tsc_run(&files);
    assert!(
        out.status.success(),
        "tsc --strict refuses a valid document ({:?}):\n{}",
        valid
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout)
    );
    let mut refused = 0;
    for (i, (path, doc)) in invalid.iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap();
        if !SHAPE_FAULTS.contains(&name) {
            continue;
        }
        let out = tsc_run(&[file(&format!("invalid{i}.ts"), doc)]);
        assert!(!out.status.success(), "tsc --strict accepts {name}");
        refused += 1;
    }
    assert_eq!(refused, SHAPE_FAULTS.len());
}

const PYDANTIC: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import models
out = []
for doc in json.load(sys.stdin):
    try:
        models.Runbook.model_validate(doc)
        out.append([True, ""])
    except Exception as e:
        out.append([False, str(e).splitlines()[0]])
json.dump(out, sys.stdout)
"#;

#[test]
#[ignore = "needs the Python venv of the README's test line"]
fn pydantic_models_accept_every_example_and_refuse_every_invalid_fixture() {
    let python = common::python("datamodel_code_generator");
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let status = Command::new(&python)
        .args(["-m", "datamodel_code_generator", "--input"])
        .arg(&schema)
        .args([
            "--input-file-type",
            "jsonschema",
            "--output-model-type",
            "pydantic_v2.BaseModel",
            "--use-title-as-name",
            "--output",
        ])
        .arg(dir.path().join("models.py"))
        .status()
        .unwrap();
    assert!(status.success(), "datamodel-code-generator failed");
    let models = std::fs::read_to_string(dir.path().join("models.py")).unwrap();
    for name in [
        "class Runbook(",
        "class CheckWithRun(",
        "class CheckWithTcp(",
    ] {
        assert!(models.contains(name), "no `{name}` in the models");
    }
    let numbered: Vec<&str> = models
        .lines()
        .filter_map(|l| l.strip_prefix("class "))
        .filter_map(|l| l.split('(').next())
        .filter(|n| n.ends_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(numbered.is_empty(), "numbered model names: {numbered:?}");
    let (valid, invalid) = documents();
    let docs: Vec<&Value> = valid.iter().chain(&invalid).map(|(_, d)| d).collect();
    let mut child = Command::new(&python)
        .args(["-c", PYDANTIC])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&docs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the pydantic script failed");
    let verdicts: Vec<(bool, String)> = serde_json::from_slice(&out.stdout).unwrap();
    for ((path, _), (ok, error)) in valid.iter().chain(&invalid).zip(verdicts) {
        let should = valid.iter().any(|(p, _)| p == path);
        assert_eq!(ok, should, "{}: pydantic says {ok} {error}", path.display());
    }
}
