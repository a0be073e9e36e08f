//! The schema is the contract (issue 27): Ajv (the pinned npm package, draft 2020-12,
//! compiled with `strict: true`), Python's `jsonschema` and `runbook validate` give one
//! verdict on every example, every fixture and an edge-case corpus, except for the
//! constraints JSON Schema cannot express, listed below with their reasons. The same
//! document as YAML and as JSON gets the same verdict.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Error-level lint rules whose constraint JSON Schema cannot express: a document the
/// schema accepts may still be refused for these, and only these.
const INEXPRESSIBLE_RULES: &[(&str, &str)] = &[
    (
        "duplicate-step-id",
        "uniqueness of an item's field in a list (`uniqueItems` compares whole items)",
    ),
    (
        "duplicate-variable",
        "uniqueness of an item's field in a list",
    ),
    (
        "undeclared-variable",
        "a reference inside a shell command or template must match a declared variable: a cross-reference",
    ),
    (
        "config-path",
        "a step's `files` must name a declared config file, and paths are unique: cross-references (the path's own form shares the rule)",
    ),
    (
        "secret-literal",
        "a secret's sandbox value must not appear in another text: a cross-reference",
    ),
    (
        "invalid-semver",
        "a semver requirement's grammar is not a regular language worth a pattern",
    ),
    (
        "invalid-regex",
        "whether a text is a valid Rust regex is not a regular language",
    ),
    (
        "removed-api",
        "apiVersion/kind pairs inside manifests in commands, against target.kubernetesVersion",
    ),
    (
        "duration-limit",
        "7 days is a bound on the sum of a duration's units; the pattern bounds each number to 9 digits, as the parser does",
    ),
    (
        "workdir-outside",
        "`a/../..` leaves the work directory only after normalising the path",
    ),
    (
        "nul-byte",
        "would be a pattern on every text of the document; left to the linter",
    ),
];

/// Parser errors about a YAML spelling (`readOnly: yes`, `sandbox: 1.30`, `exitCode: 0.0`,
/// a merge key): the document read into JSON by another YAML reader no longer shows the
/// spelling (`yes` became `true`, `1.30` became 1.3, `0.0` is the integer 0 to JSON
/// Schema), so the schema cannot see what runbook refuses. These are YAML-only errors.
const SPELLING_ERRORS: &[&str] = &[
    "to other YAML and JSON readers",
    "merge key",
    "plain decimal digits",
    "true to some YAML readers",
    "quoted text",
];

/// Why `runbook validate` refuses a document: None when it accepts it.
fn runbook_verdict(yaml: &str) -> Option<String> {
    match runbook::from_yaml_str(yaml) {
        Err(e) => Some(format!("parse: {}", e.message)),
        Ok(rb) => rb
            .lint()
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("lint {}: {}", d.rule, d.message)),
    }
}

fn json_verdict(json: &str) -> Option<String> {
    match runbook::from_json_str(json) {
        Err(e) => Some(format!("parse: {}", e.message)),
        Ok(rb) => rb
            .lint()
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("lint {}: {}", d.rule, d.message)),
    }
}

fn inexpressible(reason: &str) -> bool {
    INEXPRESSIBLE_RULES
        .iter()
        .any(|(code, _)| reason.starts_with(&format!("lint {code}:")))
        || SPELLING_ERRORS.iter().any(|s| reason.contains(s))
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

const BASE: &str = "apiVersion: runbook/v1
kind: Runbook
metadata:
  name: edge
  title: Edge
  version: '1'
target:
  platform: linux
variables:
  - name: PORT
    category: other
    sandbox: '8080'
    production: p
steps:
  - id: one
    title: One
    run: echo \"$PORT\"
    readOnly: true
    timeout: 30s
    verify:
      - run: echo hi
        expect:
          exitCode: 0
";

/// The edge-case corpus: the base document with one line replaced (`from` → `to`).
fn corpus() -> Vec<(String, String)> {
    let edits: &[(&str, &str, &str)] = &[
        ("base", "", ""),
        ("title-number", "  title: Edge", "  title: 123"),
        ("description-bool", "  title: Edge", "  description: true"),
        ("run-number", "    run: echo \"$PORT\"", "    run: 42"),
        ("id-number", "  - id: one", "  - id: 42"),
        (
            "check-name-number",
            "      - run: echo hi",
            "      - name: 5\n        run: echo hi",
        ),
        (
            "exit-code-quoted",
            "          exitCode: 0",
            "          exitCode: \"0\"",
        ),
        (
            "exit-code-float",
            "          exitCode: 0",
            "          exitCode: 0.0",
        ),
        (
            "exit-code-hex",
            "          exitCode: 0",
            "          exitCode: 0x0",
        ),
        (
            "exit-code-256",
            "          exitCode: 0",
            "          exitCode: 256",
        ),
        (
            "exit-code-negative",
            "          exitCode: 0",
            "          exitCode: -1",
        ),
        (
            "exit-code-overflow",
            "          exitCode: 0",
            "          exitCode: 4294967296",
        ),
        ("timeout-zero-bare", "    timeout: 30s", "    timeout: 0"),
        (
            "timeout-zero-quoted",
            "    timeout: 30s",
            "    timeout: '0'",
        ),
        ("timeout-spaces", "    timeout: 30s", "    timeout: ' 30s '"),
        ("timeout-169h", "    timeout: 30s", "    timeout: 169h"),
        (
            "timeout-overflow",
            "    timeout: 30s",
            "    timeout: 99999999999999999999h",
        ),
        (
            "timeout-unordered",
            "    timeout: 30s",
            "    timeout: 30m1h",
        ),
        (
            "timeout-newline",
            "    timeout: 30s",
            "    timeout: \"30s\\n\"",
        ),
        ("read-only-yes", "    readOnly: true", "    readOnly: yes"),
        (
            "read-only-quoted",
            "    readOnly: true",
            "    readOnly: 'true'",
        ),
        ("read-only-number", "    readOnly: true", "    readOnly: 1"),
        ("sandbox-int", "    sandbox: '8080'", "    sandbox: 8080"),
        ("sandbox-true", "    sandbox: '8080'", "    sandbox: true"),
        ("sandbox-no", "    sandbox: '8080'", "    sandbox: no"),
        ("sandbox-octal", "    sandbox: '8080'", "    sandbox: 0o17"),
        ("sandbox-hex", "    sandbox: '8080'", "    sandbox: 0x1F"),
        (
            "sandbox-exponent",
            "    sandbox: '8080'",
            "    sandbox: 1e3",
        ),
        ("sandbox-1.10", "    sandbox: '8080'", "    sandbox: 1.10"),
        ("sandbox-1.5", "    sandbox: '8080'", "    sandbox: 1.5"),
        (
            "sandbox-date",
            "    sandbox: '8080'",
            "    sandbox: 2024-01-31",
        ),
        ("version-1.0", "  version: '1'", "  version: 1.0"),
        ("version-2", "  version: '1'", "  version: 2"),
        ("version-true", "  version: '1'", "  version: true"),
        (
            "k8s-1.30",
            "  platform: linux",
            "  platform: linux\n  kubernetesVersion: 1.30",
        ),
        (
            "k8s-1.29",
            "  platform: linux",
            "  platform: linux\n  kubernetesVersion: 1.29",
        ),
        (
            "name-41",
            "  name: edge",
            "  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        (
            "name-40",
            "  name: edge",
            "  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("name-newline", "  name: edge", "  name: \"edge\\n\""),
        (
            "run-blank",
            "      - run: echo hi",
            "      - run: \" \\u3000\"",
        ),
        (
            "run-nbsp-only",
            "      - run: echo hi",
            "      - run: \"\\u00a0\"",
        ),
        (
            "run-fs-char",
            "      - run: echo hi",
            "      - run: \"\\u001c\"",
        ),
        (
            "variable-newline",
            "  - name: PORT",
            "  - name: \"PORT\\n\"",
        ),
        (
            "tcp-port",
            "      - run: echo hi",
            "      - tcp: { host: 127.0.0.1, port: 5432 }",
        ),
        (
            "tcp-port-70000",
            "      - run: echo hi",
            "      - tcp: { host: 127.0.0.1, port: 70000 }",
        ),
        (
            "tcp-port-float",
            "      - run: echo hi",
            "      - tcp: { host: 127.0.0.1, port: 5432.0 }",
        ),
        (
            "tcp-port-text",
            "      - run: echo hi",
            "      - tcp: { host: 127.0.0.1, port: \"${PORT}\" }",
        ),
        (
            "http-status-quoted",
            "      - run: echo hi",
            "      - http: { url: 'http://x', status: \"200\" }",
        ),
        (
            "http-status-99",
            "      - run: echo hi",
            "      - http: { url: 'http://x', status: 99 }",
        ),
        (
            "pods-count-overflow",
            "      - run: echo hi",
            "      - kube: { podsReady: { selector: a=b, count: 4294967296 } }",
        ),
        (
            "file-mode-bare",
            "      - run: echo hi",
            "      - file: { path: x, mode: 600 }",
        ),
        (
            "file-exists-off",
            "      - run: echo hi",
            "      - file: { path: x, exists: off }",
        ),
        (
            "two-probes",
            "      - run: echo hi",
            "      - run: echo hi\n        file: { path: x }",
        ),
        ("null-title", "  title: Edge", "  title: null"),
        (
            "null-probe",
            "      - run: echo hi",
            "      - run: echo hi\n        kube: null",
        ),
        (
            "merge-key",
            "        expect:\n          exitCode: 0",
            "        expect: &e\n          exitCode: 0\n      - run: echo 2\n        expect:\n          <<: *e",
        ),
        (
            "duplicate-ids",
            "steps:\n",
            "steps:\n  - id: one\n    title: One\n    run: 'true'\n    readOnly: true\n    verify: [{ run: 'true' }]\n",
        ),
        ("unknown-key", "  title: Edge", "  titel: Edge"),
        ("variable-path", "  - name: PORT", "  - name: PATH"),
        ("variable-ld", "  - name: PORT", "  - name: LD_PRELOAD"),
        (
            "variable-bash-func",
            "  - name: PORT",
            "  - name: BASH_FUNC_X",
        ),
        (
            "credential-plain",
            "    category: other",
            "    category: credential",
        ),
        (
            "credential-generated",
            "    category: other",
            "    category: credential\n    generate: true",
        ),
        (
            "credential-not-generated",
            "    category: other",
            "    category: credential\n    generate: false",
        ),
        (
            "credential-secret",
            "    category: other",
            "    category: credential\n    secret: { source: vault, reference: a#b }",
        ),
        (
            "credential-secret-null",
            "    category: other",
            "    category: credential\n    secret: null",
        ),
    ];
    edits
        .iter()
        .map(|(name, from, to)| {
            let text = if from.is_empty() {
                BASE.to_owned()
            } else {
                assert!(BASE.contains(from), "{name}: `{from}` is not in the base");
                BASE.replacen(from, to, 1)
            };
            ((*name).to_owned(), text)
        })
        .collect()
}

/// Every document: (name, YAML text).
fn documents() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    yaml_files(&repo().join("examples"), &mut paths);
    yaml_files(&repo().join("tests/fixtures"), &mut paths);
    yaml_files(&repo().join("runbook-core/tests/fixtures"), &mut paths);
    paths.sort();
    let mut docs: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            (
                p.strip_prefix(repo()).unwrap().display().to_string(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    docs.extend(corpus());
    docs.extend(generated());
    docs
}

/// 400 generated documents, varying what the issue found the readers disagreeing on.
fn generated() -> Vec<(String, String)> {
    use proptest::sample::select;
    use proptest::strategy::{Strategy, ValueTree};
    let strategy = (
        select(vec![
            "install-config",
            "Install Config",
            "a",
            "a-",
            "UPPER",
            "a--b",
            "42",
        ]),
        select(vec!["echo hi", "\"\"", "\"   \"", "yes", "12", "'12'"]),
        select(vec![
            "    verify:\n      - run: echo hi\n",
            "    verify:\n      - run: echo hi\n        kube: null\n",
            "    verify:\n      - run: echo hi\n        file: { path: x }\n",
            "    verify:\n      - tcp: { host: h, port: 80 }\n",
            "    verify:\n      - tcp: { host: h, port: 0 }\n",
            "    verify:\n      - run: 'true'\n        expect: { exitCode: 1 }\n",
            "    verify:\n      - run: 'true'\n        expect: { exitCode: '1' }\n",
            "    verify:\n      - run: 'true'\n        within: 1m30s\n",
            "    verify:\n      - run: 'true'\n        within: 90\n",
            "    verify: []\n",
        ]),
        select(vec!["PORT", "port", "_P", "PATH", "A_B"]),
        select(vec![
            "8080", "\"8080\"", "app", "true", "no", "1.10", "1.5", "0x1F",
        ]),
        select(vec!["1.29", "\"1.0\"", "1.0", "2", "1.2.3", "true"]),
        select(vec!["true", "false", "yes", "'true'"]),
    );
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..400)
        .map(|i| {
            let (id, run, verify, name, value, version, read_only) =
                strategy.new_tree(&mut runner).unwrap().current();
            (
                format!("generated-{i}"),
                format!(
                    "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: gen, version: {version} }}\n\
                     variables:\n  - name: {name}\n    category: other\n    sandbox: {value}\n    production: p\n\
                     steps:\n  - id: {id}\n    title: T\n    run: {run}\n    readOnly: {read_only}\n{verify}"
                ),
            )
        })
        .collect()
}

/// The document as another YAML reader gives it to a JSON Schema validator (None when
/// it is no YAML at all: every validator refuses it).
fn as_json(yaml: &str) -> Option<Value> {
    serde_saphyr::from_str::<Value>(yaml).ok()
}

fn run_validator(program: &Path, args: &[&str], docs: &[Value]) -> Vec<(bool, String)> {
    let schema: Value = serde_json::from_str(&runbook::json_schema()).unwrap();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let input = json!({ "schema": schema, "docs": docs }).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} failed", program.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

const PYTHON: &str = r#"
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

const NODE: &str = r#"
const dir = process.argv[1];
const Ajv2020 = require(dir + "/ajv/dist/2020.js").default;
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const job = JSON.parse(input);
  // strict: true refuses unknown keywords and formats; unions ("type": ["string",
  // "null"]) are the schema's, allowed explicitly.
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: false });
  const validate = ajv.compile(job.schema);
  const out = job.docs.map((d) => {
    const ok = validate(d);
    return [ok, ok ? "" : ajv.errorsText(validate.errors)];
  });
  process.stdout.write(JSON.stringify(out));
});
"#;

#[test]
#[ignore = "needs node with tests/mcp-ts's node_modules (npm install --prefix tests/mcp-ts) and the Python venv of the README's test line"]
fn ajv_python_and_runbook_give_one_verdict_on_every_document() {
    let python = common::python("jsonschema");
    let modules = repo().join("tests/mcp-ts/node_modules");
    assert!(
        modules.join("ajv/dist/2020.js").is_file(),
        "run `npm install --prefix tests/mcp-ts` first (it installs the pinned Ajv)"
    );
    let docs = documents();
    assert!(docs.len() >= 500, "{} documents", docs.len());
    let jsons: Vec<Option<Value>> = docs.iter().map(|(_, y)| as_json(y)).collect();
    let readable: Vec<Value> = jsons.iter().flatten().cloned().collect();
    let py = run_validator(&python, &["-c", PYTHON], &readable);
    let modules = modules.display().to_string();
    let ajv = run_validator(Path::new("node"), &["-e", NODE, &modules], &readable);
    let (mut py, mut ajv) = (py.into_iter(), ajv.into_iter());
    let mut disagreements = Vec::new();
    let (mut accepted, mut refused, mut excepted) = (0, 0, 0);
    for ((name, yaml), json) in docs.iter().zip(&jsons) {
        let runbook = runbook_verdict(yaml);
        let (schema_ok, py_error, ajv_error) = match json {
            None => (false, "not YAML".to_owned(), "not YAML".to_owned()),
            Some(_) => {
                let (p, pe) = py.next().unwrap();
                let (a, ae) = ajv.next().unwrap();
                // The two validators agree on every document, without exception.
                assert_eq!(p, a, "{name}: python says {p} ({pe}), Ajv {a} ({ae})");
                (p, pe, ae)
            }
        };
        match (&runbook, schema_ok) {
            (None, true) => accepted += 1,
            (Some(_), false) => refused += 1,
            // What the schema cannot say may be refused by runbook only; never the reverse.
            (Some(reason), true) if inexpressible(reason) => {
                refused += 1;
                excepted += 1;
            }
            (Some(reason), true) => disagreements.push(format!(
                "{name}: the schema accepts, runbook refuses: {reason}"
            )),
            (None, false) => disagreements.push(format!(
                "{name}: runbook accepts, the schema refuses: python: {py_error}; Ajv: {ajv_error}"
            )),
        }
        // The same document as JSON: the same verdict, except a YAML spelling (which
        // JSON does not have).
        if let Some(json) = json {
            let from_json = json_verdict(&json.to_string());
            let spelling = runbook
                .as_deref()
                .is_some_and(|r| SPELLING_ERRORS.iter().any(|s| r.contains(s)));
            if !spelling && from_json.is_some() != runbook.is_some() {
                disagreements.push(format!(
                    "{name}: YAML says {runbook:?}, the same document as JSON {from_json:?}"
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    eprintln!(
        "{} documents: {accepted} accepted by all, {refused} refused by runbook, of which {excepted} for a listed reason the schema cannot see",
        docs.len()
    );
    assert!(
        accepted >= 50 && refused >= 100,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn every_corpus_edit_applies_and_the_corpus_base_is_valid() {
    let corpus = corpus();
    assert_eq!(runbook_verdict(&corpus[0].1), None);
    let names: std::collections::BTreeSet<_> = corpus.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), corpus.len(), "corpus names are unique");
}

#[test]
fn spelling_errors_name_the_place_and_the_fix() {
    let corpus = corpus();
    let doc = |name: &str| &corpus.iter().find(|(n, _)| n == name).unwrap().1;
    let e = runbook::from_yaml_str(doc("title-number")).unwrap_err();
    assert_eq!((e.line, e.column), (Some(5), Some(10)));
    assert!(e.message.contains("quote it: '123'"), "{}", e.message);
    for (name, words) in [
        ("sandbox-no", "quote it: '…'"),
        ("k8s-1.30", "quote it: '1.30'"),
        ("read-only-yes", "write true or false"),
        ("exit-code-quoted", "without quotes"),
        ("merge-key", "merge key"),
        ("timeout-spaces", "invalid duration"),
        ("tcp-port-70000", "out of range"),
    ] {
        let e = runbook::from_yaml_str(doc(name)).unwrap_err();
        assert!(e.line.is_some(), "{name}: no line");
        assert!(e.message.contains(words), "{name}: {}", e.message);
    }
}
