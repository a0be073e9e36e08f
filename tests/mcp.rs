//! `runbook mcp` driven by an MCP client: `rmcp`'s own client (a separate process talking
//! JSON-RPC over the server's stdin/stdout), and for the shutdown case raw JSON-RPC lines.

#![cfg(feature = "mcp")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

type Client = RunningService<RoleClient, ()>;

/// Each tool's output schema, as the server declares it.
static OUTPUT_SCHEMAS: std::sync::OnceLock<std::collections::HashMap<String, Value>> =
    std::sync::OnceLock::new();

/// A server with its state under `dir`, started in `dir` (its root by default).
async fn connect(dir: &Path) -> Client {
    connect_in(dir, dir).await
}

/// A server with its state under `dir`, started in `root`.
async fn connect_in(dir: &Path, root: &Path) -> Client {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
    command
        .args(["mcp", "--state-dir"])
        .arg(dir.join("state"))
        .current_dir(root)
        .env("PATH", common::pg_path())
        .stderr(Stdio::null());
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    if OUTPUT_SCHEMAS.get().is_none() {
        let schemas = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|t| {
                let schema = Value::Object((*t.output_schema?).clone());
                Some((t.name.into_owned(), schema))
            })
            .collect();
        let _ = OUTPUT_SCHEMAS.set(schemas);
    }
    client
}

/// Calls a tool: whether it is a tool error, and its structured content.
async fn call(client: &Client, tool: &str, args: Value) -> (bool, Value) {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: a protocol failure: {e}"));
    if result.is_error == Some(true) {
        // A tool error carries no structured content (it would not match the tool's
        // output schema): the error is JSON text, as every client can read it.
        assert!(result.structured_content.is_none(), "{tool}: {result:?}");
        let text = result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone());
        let error = serde_json::from_str(&text.unwrap_or_default())
            .unwrap_or_else(|e| panic!("{tool}: the error is not JSON text: {e}"));
        return (true, error);
    }
    (false, result.structured_content.unwrap_or(Value::Null))
}

/// Calls a tool that must succeed; its result must match the output schema it declares.
async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let (is_error, value) = call(client, tool, args).await;
    assert!(!is_error, "{tool} failed: {value:#}");
    let schema = &OUTPUT_SCHEMAS.get().unwrap()[tool];
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{tool}: the result does not match its schema: {errors:#?}\n{value:#}"
    );
    value
}

/// The Rust example's runbook as its first draft was (its package is docs/example-package):
/// `create-app-db` without the fix PostgreSQL 15 needs, and without the known issue.
fn first_draft() -> (String, runbook::Step) {
    let (mut rb, _) = runbook::load(repo().join("docs/example-package/runbook.yaml")).unwrap();
    let fixed = rb.step("create-app-db").unwrap().clone();
    let step = rb
        .steps
        .iter_mut()
        .find(|s| s.id == "create-app-db")
        .unwrap();
    step.run = step
        .run
        .lines()
        .filter(|l| !l.contains("OWNER TO"))
        .collect::<Vec<_>>()
        .join("\n");
    step.known_issues.clear();
    assert_ne!(step.run, fixed.run, "the draft differs from the fixed step");
    (runbook::to_yaml_string(&rb), fixed)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_story_through_mcp() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let (draft, fixed) = first_draft();

    let checked = ok(&client, "validate", json!({ "runbook": draft })).await;
    assert_eq!(checked["valid"], true, "{checked:#}");

    let port = common::free_port().to_string();
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": draft, "lifetime": "session", "vars": { "PGPORT": port } }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    assert_eq!(started["nextStep"], "init-cluster", "{started:#}");
    assert_eq!(started["preflightProblems"], json!([]), "{started:#}");
    assert_eq!(started["preflight"].as_array().unwrap().len(), 3);

    // Run until the PostgreSQL 15 error.
    let failed = loop {
        let next = ok(&client, "run_next", json!({ "session": session })).await;
        assert_eq!(next["done"], false, "the draft must fail: {next:#}");
        if next["step"]["status"] == "failed" {
            break next;
        }
    };
    assert_eq!(failed["step"]["id"], "create-app-db", "{failed:#}");
    let text = failed.to_string();
    assert!(
        text.contains("permission denied for schema public"),
        "{failed:#}"
    );

    // The agent amends the step with the fix and records why, then retries.
    let issue = &fixed.known_issues[0];
    let amended = ok(
        &client,
        "amend",
        json!({
            "session": session,
            "step": "create-app-db",
            "run": fixed.run,
            "error": issue.error,
            "cause": issue.cause,
            "fix": issue.fix,
        }),
    )
    .await;
    assert_eq!(amended["nextStep"], "create-app-db", "{amended:#}");
    let retried = ok(&client, "retry", json!({ "session": session })).await;
    assert_eq!(retried["step"]["status"], "passed", "{retried:#}");
    let done = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(done["done"], true, "{done:#}");

    let status = ok(&client, "session_status", json!({ "session": session })).await;
    assert_eq!(status["nextStep"], Value::Null);
    let rollback = ok(&client, "rollback", json!({ "session": session })).await;
    assert_eq!(rollback["rollback"]["verdict"], "passed", "{rollback:#}");

    let out = dir.path().join("handoff-package");
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": out.to_str().unwrap() }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    assert_eq!(finished["rehearsal"], "passed", "{finished:#}");

    // The package is the Rust example's: the same files, the same steps (fix and known
    // issue included); times, ids and the sandbox's values differ.
    let mut expected: Vec<String> = Vec::new();
    list(
        &repo().join("docs/example-package"),
        Path::new(""),
        &mut expected,
    );
    expected.retain(|f| f != "REGENERATE.md");
    let mut files: Vec<String> = finished["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    files.retain(|f| f != ".runbook-package");
    expected.sort();
    files.sort();
    assert_eq!(files, expected);
    let (shipped, _) = runbook::load(out.join("runbook.yaml")).unwrap();
    let (example, _) = runbook::load(repo().join("docs/example-package/runbook.yaml")).unwrap();
    assert_eq!(shipped.steps, example.steps);

    // The session is over.
    let (is_error, gone) = call(&client, "session_status", json!({ "session": session })).await;
    assert!(is_error, "{gone:#}");
    assert_eq!(gone["error"]["argument"], "session");
    client.cancel().await.unwrap();
}

fn list(root: &Path, rel: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(root.join(rel)).unwrap().flatten() {
        let path = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            list(root, &path, out);
        } else {
            let name = path.to_string_lossy().into_owned();
            if name != ".runbook-package" {
                out.push(name);
            }
        }
    }
}

const TINY: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: tiny }
variables:
  - name: API_TOKEN
    category: credential
    secret: { source: vault, reference: secret/tiny#token }
    production: From your secret manager
  - name: MARK
    category: other
    sandbox: tiny
    production: A marker
steps:
  - id: leak
    title: Print the token and fail
    run: |
      echo "token is $API_TOKEN"
      echo "stderr has $API_TOKEN too" >&2
      exit 3
    readOnly: true
    verify:
      - run: echo "$MARK"
        expect: { stdout: { equals: "${MARK}" } }
  - id: wait
    title: Wait
    run: exec -a "rb-mcp-$MARK" sleep 300
    readOnly: true
    verify:
      - run: "true"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_unknown_sessions_and_destroyed_sandboxes_are_tool_errors() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;

    let cases = [
        ("run_next", json!({}), "session"),
        ("run_next", json!({ "session": 5 }), "session"),
        ("run_next", json!({ "sesion": "x" }), "sesion"),
        ("run_next", json!({ "session": "nope" }), "session"),
        (
            "session_start",
            json!({ "lifetime": "forever", "runbook": TINY }),
            "lifetime",
        ),
        ("session_start", json!({}), "runbook"),
        (
            "session_start",
            json!({ "runbook": "apiVersion: runbook/v1\nkind: Nope\n" }),
            "runbook",
        ),
        ("finish", json!({ "session": "nope" }), "out"),
        (
            "validate",
            json!({ "runbook": TINY, "path": "x.yaml" }),
            "runbook",
        ),
    ];
    for (tool, args, argument) in cases {
        let (is_error, value) = call(&client, tool, args.clone()).await;
        assert!(is_error, "{tool} {args}: {value:#}");
        assert_eq!(
            value["error"]["argument"], argument,
            "{tool} {args}: {value:#}"
        );
        let message = value["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("Error(") && !message.contains("{ "),
            "no Debug text: {message}"
        );
    }
    // A value of the wrong type is never echoed (it could be a secret in the wrong place).
    let (_, value) = call(&client, "run_next", json!({ "session": 987654321 })).await;
    assert!(!value.to_string().contains("987654321"), "{value:#}");

    // Secrets are masked in every result.
    let token = "tok-7d1c2e9a5b";
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": TINY, "lifetime": "session", "vars": { "API_TOKEN": token } }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    let failed = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(failed["step"]["status"], "failed", "{failed:#}");
    let text = failed.to_string();
    assert!(!text.contains(token), "{failed:#}");
    assert!(text.contains("token is ***"), "{failed:#}");

    // The sandbox is deleted underneath the session: a tool error, and the server goes on.
    let sandbox_dir = dir.path().join("state/local").join(&session);
    assert!(sandbox_dir.is_dir());
    std::fs::remove_dir_all(&sandbox_dir).unwrap();
    let (is_error, value) = call(&client, "retry", json!({ "session": session })).await;
    assert!(is_error, "{value:#}");
    assert_eq!(value["error"]["kind"], "execution_failed", "{value:#}");
    let listed = ok(&client, "sandbox_list", json!({})).await;
    assert!(listed["sandboxes"].is_array(), "{listed:#}");
    ok(&client, "sandbox_destroy", json!({ "sandbox": session })).await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tool_list_and_argument_schemas() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let tools: Vec<Value> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": Value::Object((*t.input_schema).clone()),
                "outputSchema": t.output_schema.map(|s| Value::Object((*s).clone())),
            })
        })
        .collect();
    client.cancel().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "validate",
            "schema",
            "session_start",
            "run_next",
            "amend",
            "retry",
            "rollback",
            "finish",
            "session_status",
            "session_resume",
            "exec",
            "read_file",
            "sandbox_list",
            "sandbox_destroy"
        ]
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&tools).unwrap());
}

/// Closing the server's stdin while a step runs kills the step and tears the sandbox down.
#[test]
fn stdin_closed_mid_step_tears_the_sandbox_down() {
    stop_mid_step(false);
}

/// So does SIGTERM, and the server exits 128 + 15.
#[test]
fn sigterm_mid_step_tears_the_sandbox_down() {
    stop_mid_step(true);
}

fn stop_mid_step(signal: bool) {
    let dir = common::workdir("runbook-mcp-");
    let mark = format!("stop{}{}", std::process::id(), u8::from(signal));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["mcp", "--state-dir"])
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .env("PATH", common::pg_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let send = |stdin: &mut std::process::ChildStdin, v: Value| writeln!(stdin, "{v}").unwrap();
    let mut read = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}),
    );
    assert!(read()["result"]["serverInfo"]["name"] == "runbook");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    let runbook = TINY.replace(
        "      echo \"token is $API_TOKEN\"\n      echo \"stderr has $API_TOKEN too\" >&2\n      exit 3\n",
        "      echo ok\n",
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "session_start", "arguments": {"runbook": runbook, "lifetime": "session",
        "vars": {"API_TOKEN": "t0k3n-x", "MARK": mark}}}}),
    );
    let started = read();
    let session = started["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{started:#}"))
        .to_owned();
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_next", "arguments": {"session": session}}}),
    );
    assert_eq!(
        read()["result"]["structuredContent"]["step"]["status"],
        "passed"
    );
    // The second step sleeps; close stdin while it runs.
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "run_next", "arguments": {"session": session}}}),
    );
    let pattern = format!("rb-mcp-{mark}");
    let running = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::process::Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .unwrap()
            .status
            .success()
    });
    assert!(running, "the step never started");
    // A signal stops the server while its client still holds stdin open.
    let held = if signal {
        let pid = child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        Some(stdin)
    } else {
        drop(stdin);
        None
    };
    let started_wait = std::time::Instant::now();
    let status = child.wait().unwrap();
    drop(held);
    assert!(
        started_wait.elapsed() < std::time::Duration::from_secs(15),
        "the server took {:?} to stop",
        started_wait.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(if signal { 143 } else { 0 }),
        "{status:?}"
    );
    let alive = std::process::Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap();
    assert!(!alive.status.success(), "the step's process survived");
    assert!(
        !dir.path().join("state/local").join(&session).exists(),
        "the session sandbox was torn down"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_session_outlives_the_server_and_resumes() {
    let dir = common::workdir("runbook-mcp-");
    let runbook = TINY.replace(
        "      echo \"token is $API_TOKEN\"\n      echo \"stderr has $API_TOKEN too\" >&2\n      exit 3\n",
        "      echo ok\n",
    );
    let client = connect(dir.path()).await;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": runbook, "lifetime": "persistent", "vars": { "API_TOKEN": "tok-4f1a9c" } }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    let first = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(first["step"]["status"], "passed", "{first:#}");
    client.cancel().await.unwrap();

    // A new server process: the sandbox is still there, and continues where it stopped.
    let client = connect(dir.path()).await;
    let listed = ok(&client, "sandbox_list", json!({})).await;
    assert!(listed.to_string().contains(&session), "{listed:#}");
    let (is_error, value) = call(&client, "run_next", json!({ "session": session })).await;
    assert!(
        is_error,
        "a new server knows no session until it is resumed: {value:#}"
    );
    // A misspelt variable is refused as `session_start` refuses it; the sandbox stays.
    let (is_error, refused) = call(
        &client,
        "session_resume",
        json!({ "sandbox": session, "vars": { "API_TOKN": "x" } }),
    )
    .await;
    assert!(is_error, "{refused:#}");
    assert_eq!(
        refused["error"]["kind"], "undeclared_variable",
        "{refused:#}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API_TOKEN"),
        "{refused:#}"
    );
    let resumed = ok(&client, "session_resume", json!({ "sandbox": session })).await;
    assert_eq!(resumed["nextStep"], "wait", "{resumed:#}");
    assert_eq!(resumed["steps"][0]["status"], "passed", "{resumed:#}");
    ok(&client, "sandbox_destroy", json!({ "sandbox": session })).await;
    assert!(!dir.path().join("state/local").join(&session).exists());
    client.cancel().await.unwrap();
}

/// The same story through the official Python MCP SDK (`mcp`, installed by the README's
/// test command): an independent client, in another language.
#[test]
#[ignore = "needs the Python venv of the README's test line"]
fn the_postgres_story_through_the_python_sdk() {
    let python = common::python("mcp");
    let dir = common::workdir("runbook-mcp-py-");
    let (draft, fixed) = first_draft();
    let issue = &fixed.known_issues[0];
    let out = dir.path().join("handoff-package");
    let job = json!({
        "server": env!("CARGO_BIN_EXE_runbook"),
        "state": dir.path().join("state"),
        "root": dir.path(),
        "env": { "PATH": common::pg_path(), "HOME": dir.path() },
        "draft": draft,
        "vars": { "PGPORT": common::free_port().to_string() },
        "fixedRun": fixed.run,
        "issue": { "error": issue.error, "cause": issue.cause, "fix": issue.fix },
        "out": out,
    });
    let job_file = dir.path().join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let run = std::process::Command::new(python)
        .arg(repo().join("tests/mcp_client.py"))
        .arg(&job_file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let transcript: Vec<Value> = serde_json::from_slice(&run.stdout).unwrap();
    let tools: Vec<&str> = transcript
        .iter()
        .map(|c| c["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "validate",
            "session_start",
            "run_next",
            "run_next",
            "run_next",
            "amend",
            "retry",
            "run_next",
            "rollback",
            "finish"
        ],
        "{transcript:#?}"
    );
    assert!(transcript.iter().all(|c| c["isError"] == false));
    let failed = &transcript[4]["result"];
    assert_eq!(failed["step"]["id"], "create-app-db");
    assert!(
        failed
            .to_string()
            .contains("permission denied for schema public")
    );
    assert_eq!(transcript[6]["result"]["step"]["status"], "passed");
    let finished = &transcript[9]["result"];
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    assert_eq!(finished["rehearsal"], "passed", "{finished:#}");
    let (shipped, _) = runbook::load(out.join("runbook.yaml")).unwrap();
    let (example, _) = runbook::load(repo().join("docs/example-package/runbook.yaml")).unwrap();
    assert_eq!(shipped.steps, example.steps);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_step_runs_in_a_session_whose_preflight_failed() {
    let dir = common::workdir("runbook-mcp-");
    let runbook = TINY.replace(
        "steps:\n",
        "preflight:\n  - id: port-free\n    title: The port is free\n    check:\n      run: \"false\"\nsteps:\n",
    );
    let client = connect(dir.path()).await;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": runbook, "lifetime": "session", "vars": { "API_TOKEN": "tok-8c2e1d" } }),
    )
    .await;
    let problems = started["preflightProblems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{started:#}");
    assert!(problems[0].as_str().unwrap().contains("port-free"));
    let session = started["session"].as_str().unwrap().to_owned();
    for tool in ["run_next", "retry"] {
        let (is_error, value) = call(&client, tool, json!({ "session": session })).await;
        assert!(is_error, "{tool}: {value:#}");
        assert_eq!(value["error"]["kind"], "preflight_failed", "{value:#}");
    }
    let status = ok(&client, "session_status", json!({ "session": session })).await;
    assert_eq!(
        status["steps"][0]["status"], "pending",
        "nothing ran: {status:#}"
    );
    ok(&client, "sandbox_destroy", json!({ "sandbox": session })).await;
    client.cancel().await.unwrap();
}

/// A one-step runbook that passes at once, for sessions that only need to exist.
const TRIVIAL: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: trivial }
steps:
  - id: look
    title: Look
    run: "true"
    readOnly: true
    verify:
      - run: echo ok
        expect: { stdout: { equals: ok } }
"#;

/// Asserts a tool error of `kind` naming `argument`, and that no line of `secrets` (and
/// no `root:` line of a shadow file) is in the answer.
fn refused(value: &Value, kind: &str, argument: &str, secrets: &[&str]) {
    assert_eq!(value["error"]["kind"], kind, "{value:#}");
    assert_eq!(value["error"]["argument"], argument, "{value:#}");
    let text = value.to_string();
    for secret in secrets {
        for line in secret.lines().filter(|l| !l.trim().is_empty()) {
            assert!(!text.contains(line), "`{line}` leaked: {value:#}");
        }
    }
    assert!(!text.contains("root:"), "{value:#}");
}

/// The server runs as root; its client has the authority of the root directory only:
/// files outside it (`/etc/shadow`, a root-only file next to it), reached by an absolute
/// path, `..` or a link, are refused without a byte of them; a file that is no runbook is
/// never quoted; `finish` writes nothing outside; relative paths inside work.
#[tokio::test(flavor = "multi_thread")]
async fn tool_paths_are_confined_to_the_root() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = common::workdir("runbook-mcp-root-");
    let root = dir.path().join("project");
    std::fs::create_dir(&root).unwrap();
    // A root-only file outside the root whose parse error would quote its key.
    let secret = "apiVersion: runbook/v1\nkind: Runbook\ntok-5ec7e7-a9f3: x\n";
    let outside = dir.path().join("secret.yaml");
    std::fs::write(&outside, secret).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let lessons_outside = dir.path().join("lessons");
    std::fs::create_dir(&lessons_outside).unwrap();
    std::fs::write(lessons_outside.join("x.yaml"), secret).unwrap();
    // Inside: a runbook, a link to it, links out, a file that is no runbook, a FIFO.
    std::fs::write(root.join("good.yaml"), TRIVIAL).unwrap();
    symlink("good.yaml", root.join("alias.yaml")).unwrap();
    symlink("../secret.yaml", root.join("link.yaml")).unwrap();
    symlink(&outside, root.join("abs-link.yaml")).unwrap();
    symlink(dir.path(), root.join("up")).unwrap();
    let notes = "root:$6$n0tarunb00k$Zq:19000:0:99999:7:::\nsecond-line-0d1e\n";
    std::fs::write(root.join("notes.txt"), notes).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("fifo.yaml"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();

    let client = connect_in(dir.path(), &root).await;
    let outside_str = outside.to_str().unwrap();
    let secrets = [
        "tok-5ec7e7-a9f3",
        "n0tarunb00k",
        "second-line-0d1e",
        &shadow,
    ];
    for (tool, args, argument) in [
        ("validate", json!({ "path": "/etc/shadow" }), "path"),
        ("validate", json!({ "path": "../secret.yaml" }), "path"),
        ("validate", json!({ "path": outside_str }), "path"),
        ("validate", json!({ "path": "link.yaml" }), "path"),
        ("validate", json!({ "path": "abs-link.yaml" }), "path"),
        ("validate", json!({ "path": "up/secret.yaml" }), "path"),
        (
            "validate",
            json!({ "path": "good.yaml", "lessons": "../lessons" }),
            "lessons",
        ),
        (
            "validate",
            json!({ "path": "good.yaml", "lessons": "up/lessons" }),
            "lessons",
        ),
        ("session_start", json!({ "path": "../secret.yaml" }), "path"),
        ("session_start", json!({ "path": "/etc/shadow" }), "path"),
        (
            "session_resume",
            json!({ "sandbox": "nope", "path": "link.yaml" }),
            "path",
        ),
    ] {
        let (is_error, value) = call(&client, tool, args.clone()).await;
        assert!(is_error, "{tool} {args}: {value:#}");
        refused(&value, "outside_root", argument, &secrets);
    }
    // Inside the root, a file that is no runbook is not quoted, and a FIFO is no file.
    let (is_error, value) = call(&client, "validate", json!({ "path": "notes.txt" })).await;
    assert!(is_error, "{value:#}");
    refused(&value, "not_a_runbook", "path", &secrets);
    let (is_error, value) = call(&client, "validate", json!({ "path": "fifo.yaml" })).await;
    assert!(is_error, "{value:#}");
    refused(&value, "invalid_argument", "path", &secrets);
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{value:#}"
    );
    // A relative path, and a link that stays inside, still work.
    for path in ["good.yaml", "alias.yaml", "./sub/../good.yaml"] {
        if path.contains("sub") {
            std::fs::create_dir_all(root.join("sub")).unwrap();
        }
        let checked = ok(&client, "validate", json!({ "path": path })).await;
        assert_eq!(checked["valid"], true, "{path}: {checked:#}");
    }

    // `finish` writes only inside the root: refused before the session ends.
    let started = ok(
        &client,
        "session_start",
        json!({ "path": "good.yaml", "lifetime": "session" }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    ok(&client, "run_next", json!({ "session": session })).await;
    let escaped = dir.path().join("escaped");
    for out in [
        "../escaped".to_owned(),
        escaped.to_str().unwrap().to_owned(),
        "up/escaped".to_owned(),
        "/tmp/runbook-mcp-escaped".to_owned(),
    ] {
        let (is_error, value) = call(
            &client,
            "finish",
            json!({ "session": session, "out": out, "rehearse": false }),
        )
        .await;
        assert!(is_error, "{out}: {value:#}");
        refused(&value, "outside_root", "out", &secrets);
    }
    assert!(!escaped.exists());
    assert!(!Path::new("/tmp/runbook-mcp-escaped").exists());
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "out/pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    assert_eq!(finished["package"], "out/pkg", "{finished:#}");
    assert!(root.join("out/pkg/README.md").is_file());
    client.cancel().await.unwrap();
}

/// A request line longer than the server reads (10 MiB) gets a JSON-RPC error with its id,
/// wherever the id is in the line, and the server goes on answering.
#[test]
fn an_oversized_request_gets_an_error_and_the_server_goes_on() {
    let dir = common::workdir("runbook-mcp-big-");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["mcp", "--state-dir"])
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // Answers arrive on a thread, so a missing one fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let read = || {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server did not answer")
    };
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
    )
    .unwrap();
    assert_eq!(read()["id"], 1);
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();
    // 11 MiB (over the server's bound, under rmcp's own) with the id first, 17 MiB (over
    // both) with the id last.
    for (id, size, id_first) in [(2, 11, true), (3, 17, false)] {
        let big = "x".repeat(size * 1024 * 1024);
        let call = json!({"name": "validate", "arguments": {"runbook": big}});
        let line = if id_first {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{call}}}"#)
        } else {
            format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{call},"id":{id}}}"#)
        };
        writeln!(stdin, "{line}").unwrap();
        let answer = read();
        assert_eq!(answer["id"], id, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("10 MiB"), "{answer}");
        // Later requests are served.
        writeln!(
            stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": id + 10, "method": "tools/call", "params": {
            "name": "validate", "arguments": {"runbook": TRIVIAL}}})
        )
        .unwrap();
        let answer = read();
        assert_eq!(answer["id"], id + 10, "{answer}");
        assert_eq!(
            answer["result"]["structuredContent"]["valid"], true,
            "{answer}"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// What a package's file says once the values that differ between any two runs (ids,
/// users, times, durations, hashes, how many attempts a retried check took) are put aside.
fn normalized(text: &str) -> String {
    let hex = regex_lite(text, |c| c.is_ascii_hexdigit(), 8, "H");
    // The quickstart's worker beats on its own clock: a check may need a second attempt.
    regex_lite(&hex, |c| c.is_ascii_digit(), 1, "N").replace(" after N attempts (N ms)", "")
}

/// Replaces every run of at least `min` characters matching `class` with `with`.
fn regex_lite(text: &str, class: impl Fn(char) -> bool, min: usize, with: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars() {
        if class(c) {
            run.push(c);
            continue;
        }
        out.push_str(if run.chars().count() >= min {
            with
        } else {
            &run
        });
        run.clear();
        out.push(c);
    }
    out.push_str(if run.chars().count() >= min {
        with
    } else {
        &run
    });
    out
}

/// The same runbook with the same lessons library, through `runbook run` and through MCP
/// (`session_start`, `run_next` to the end, `finish`), writes the same package: the same
/// files, the same content but for ids, times and durations, the lesson carried by both.
/// A misspelt variable is refused by both before any sandbox exists.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_mcp_write_the_same_package() {
    let dir = common::workdir("runbook-parity-");
    std::fs::copy(
        repo().join("examples/quickstart/runbook.yaml"),
        dir.path().join("runbook.yaml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("lessons")).unwrap();
    std::fs::write(
        dir.path().join("lessons/worker-dir.yaml"),
        "apiVersion: runbook/v1\nkind: Lesson\nid: nohup-present\ntitle: nohup must be on the target\n\
         origin: { runbook: quickstart, step: start-worker }\napplies:\n  tools: [{ tool: nohup }]\n\
         preflight:\n  run: command -v nohup\nknownIssue:\n  error: 'nohup: command not found'\n  \
         cause: A minimal image without coreutils' nohup\n  fix: Install coreutils\n",
    )
    .unwrap();

    let misspelt = common::runbook(
        dir.path(),
        &["run", "runbook.yaml", "--var", "APP_PROT=9999"],
    );
    let stderr = String::from_utf8_lossy(&misspelt.stderr);
    assert_eq!(misspelt.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`APP_PROT` (did you mean `APP_PORT`?)"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state/local").exists(),
        "a sandbox was made: {stderr}"
    );

    let cli = common::runbook(
        dir.path(),
        &[
            "run",
            "runbook.yaml",
            "--lessons",
            "lessons",
            "--lifetime",
            "session",
            "--out",
            "cli-package",
        ],
    );
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(cli.status.success(), "{stderr}");
    assert!(
        stderr.contains("lesson `nohup-present` applies"),
        "{stderr}"
    );

    let client = connect(dir.path()).await;
    let (is_error, refused) = call(
        &client,
        "session_start",
        json!({ "path": "runbook.yaml", "vars": { "APP_PROT": "9999" } }),
    )
    .await;
    assert!(is_error, "{refused:#}");
    assert_eq!(
        refused["error"]["kind"], "undeclared_variable",
        "{refused:#}"
    );
    assert_eq!(refused["error"]["argument"], "vars", "{refused:#}");
    assert!(
        refused.to_string().contains("did you mean `APP_PORT`?"),
        "{refused:#}"
    );

    let started = ok(
        &client,
        "session_start",
        json!({ "path": "runbook.yaml", "lessons": "lessons", "lifetime": "session" }),
    )
    .await;
    assert!(
        started["lessons"][0]
            .as_str()
            .unwrap()
            .contains("nohup-present"),
        "{started:#}"
    );
    let session = started["session"].as_str().unwrap().to_owned();
    loop {
        let next = ok(&client, "run_next", json!({ "session": session })).await;
        assert_ne!(next["step"]["status"], "failed", "{next:#}");
        if next["done"] == true {
            break;
        }
    }
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "mcp-package" }),
    )
    .await;
    assert_eq!(finished["rehearsal"], "passed", "{finished:#}");
    client.cancel().await.unwrap();

    let (mut cli_files, mut mcp_files) = (Vec::new(), Vec::new());
    list(
        &dir.path().join("cli-package"),
        Path::new(""),
        &mut cli_files,
    );
    list(
        &dir.path().join("mcp-package"),
        Path::new(""),
        &mut mcp_files,
    );
    cli_files.sort();
    mcp_files.sort();
    assert_eq!(cli_files, mcp_files);
    for file in cli_files.iter().filter(|f| *f != "SHA256SUMS") {
        let read = |which: &str| {
            normalized(&String::from_utf8_lossy(
                &std::fs::read(dir.path().join(which).join(file)).unwrap(),
            ))
        };
        let (by_cli, by_mcp) = (read("cli-package"), read("mcp-package"));
        if by_cli != by_mcp {
            let first = by_cli
                .lines()
                .zip(by_mcp.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("cli: {a}\nmcp: {b}"))
                .unwrap_or_else(|| "(one is longer)".into());
            panic!("{file} differs:\n{first}");
        }
    }
    let readme = std::fs::read_to_string(dir.path().join("mcp-package/README.md")).unwrap();
    assert!(
        readme.contains("nohup-present"),
        "the lesson is in the package"
    );
}

/// A runbook whose second step fails because of what the first one, which passes, wrote.
const REWIND: &str = include_str!("fixtures/amend/draft.yaml");

/// The fix belongs to a step that passed: `amend` rolls it (and the steps after it) back
/// first, the known issue's error comes from what the sandbox showed, and the package
/// says what failed and how it was fixed.
#[tokio::test(flavor = "multi_thread")]
async fn amend_goes_back_before_a_step_that_passed() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": REWIND, "lifetime": "session" }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    ok(&client, "run_next", json!({ "session": session })).await;
    let failed = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(failed["step"]["status"], "failed", "{failed:#}");
    let amended = ok(
        &client,
        "amend",
        json!({
            "session": session, "step": "write-config", "run": "echo 'mode=new' > app.conf",
            "cause": "the old mode is gone", "fix": "Write mode=new",
        }),
    )
    .await;
    assert_eq!(amended["nextStep"], "write-config", "{amended:#}");
    loop {
        let next = ok(&client, "run_next", json!({ "session": session })).await;
        assert_ne!(next["step"]["status"], "failed", "{next:#}");
        if next["done"] == true {
            break;
        }
    }
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    assert!(
        readme.contains("What failed in the sandbox, and how it was fixed"),
        "{readme}"
    );
    assert!(
        readme.contains("error: mode=old is not supported"),
        "{readme}"
    );
    let summary =
        std::fs::read_to_string(dir.path().join("pkg/test-results/test-summary.yaml")).unwrap();
    assert!(summary.contains("restores:"), "{summary}");
    client.cancel().await.unwrap();
}

/// The issue's PostgreSQL story through MCP: the reason the server refused to start is
/// only in its own log; the fix belongs in the config file of an earlier step that passed.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_of_a_passed_step_is_fixed_through_amend() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let draft = std::fs::read_to_string(repo().join("tests/fixtures/amend/postgres.yaml")).unwrap();
    let port = common::free_port().to_string();
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": draft, "lifetime": "session", "vars": { "PGPORT": port } }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    let first = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(first["step"]["status"], "passed", "{first:#}");
    let failed = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(failed["step"]["id"], "start-server", "{failed:#}");
    let reason = "unrecognized configuration parameter \"wal_keep_segments\"";
    let causes = failed["step"]["attempts"][0]["causes"].as_array().unwrap();
    assert!(
        causes.iter().any(|c| c.as_str().unwrap().contains(reason)),
        "{failed:#}"
    );

    // The agent looks inside before it fixes anything: the server's log, a command.
    let log = ok(
        &client,
        "read_file",
        json!({ "session": session, "path": "server.log" }),
    )
    .await;
    assert!(log["text"].as_str().unwrap().contains(reason), "{log:#}");
    let listed = ok(
        &client,
        "exec",
        json!({ "session": session, "command": "grep -n wal_keep data/runbook.conf" }),
    )
    .await;
    assert_eq!(listed["output"]["exitCode"], 0, "{listed:#}");
    assert!(
        listed["output"]["stdout"]
            .as_str()
            .unwrap()
            .contains("wal_keep_segments = 64"),
        "{listed:#}"
    );
    let (is_error, outside) = call(
        &client,
        "read_file",
        json!({ "session": session, "path": "../../etc/shadow" }),
    )
    .await;
    assert!(is_error, "{outside:#}");
    assert_eq!(outside["error"]["argument"], "path", "{outside:#}");

    let runbook: runbook::Runbook = runbook::from_yaml_str(&draft).unwrap();
    let content = runbook.config_files[0]
        .content
        .replace("wal_keep_segments = 64", "wal_keep_size = 1GB");
    let amended = ok(
        &client,
        "amend",
        json!({
            "session": session, "step": "start-server",
            "configs": [{ "path": "config/postgresql.conf", "content": content }],
            "cause": "wal_keep_segments was removed in PostgreSQL 13",
            "fix": "Keep WAL by size: wal_keep_size = 1GB",
        }),
    )
    .await;
    // The step that wrote the file passed: the session went back before it.
    assert_eq!(amended["nextStep"], "init-cluster", "{amended:#}");
    loop {
        let next = ok(&client, "run_next", json!({ "session": session })).await;
        assert_ne!(next["step"]["status"], "failed", "{next:#}");
        if next["done"] == true {
            break;
        }
    }
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    assert!(readme.contains(reason), "{readme}");
    assert!(readme.contains("+    wal_keep_size = 1GB"), "{readme}");
    let package = std::fs::read_to_string(dir.path().join("pkg/runbook.yaml")).unwrap();
    assert!(package.contains("wal_keep_size = 1GB"), "{package}");
    assert!(package.contains("knownIssues"), "{package}");
    client.cancel().await.unwrap();
}

/// Giving up after a failure: `rollback` restores the sandbox, the failure stays, and the
/// verdict is `failed`, in `session_status` as in `finish` and the package.
#[tokio::test(flavor = "multi_thread")]
async fn giving_up_after_a_failure_through_mcp_is_failed() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": REWIND, "lifetime": "session" }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    ok(&client, "run_next", json!({ "session": session })).await;
    let failed = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(failed["step"]["status"], "failed", "{failed:#}");

    let restored = ok(&client, "rollback", json!({ "session": session })).await;
    assert_eq!(
        restored["rollback"]["purpose"],
        json!({ "kind": "restore", "failed": "serve" }),
        "{restored:#}"
    );
    let status = ok(&client, "session_status", json!({ "session": session })).await;
    assert_eq!(status["verdict"], "failed", "{status:#}");
    assert_eq!(status["failure"]["id"], "serve", "{status:#}");
    assert_eq!(status["steps"][0]["status"], "rolledBack", "{status:#}");

    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "failed", "{finished:#}");
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    assert!(
        readme.contains("1. After step `serve` failed, to restore the sandbox: the rollbacks of `write-config` ran: passed."),
        "{readme}"
    );
    assert!(
        readme.contains("The rollbacks were not exercised in the sandbox."),
        "{readme}"
    );
    client.cancel().await.unwrap();
}

/// Redoing an earlier step by rolling everything back: the package tells that restore
/// apart from the rollback exercise after the successful run, in the order they ran.
#[tokio::test(flavor = "multi_thread")]
async fn redoing_an_earlier_step_through_mcp_tells_restore_and_exercise_apart() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": REWIND, "lifetime": "session" }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    ok(&client, "run_next", json!({ "session": session })).await;
    ok(&client, "run_next", json!({ "session": session })).await;
    ok(&client, "rollback", json!({ "session": session })).await;
    // Rolled back, `write-config` is amended as it is, with no rewind.
    let amended = ok(
        &client,
        "amend",
        json!({
            "session": session, "step": "write-config", "run": "echo 'mode=new' > app.conf",
            "cause": "the old mode is gone", "fix": "Write mode=new",
        }),
    )
    .await;
    assert_eq!(amended["nextStep"], "write-config", "{amended:#}");
    loop {
        let next = ok(&client, "run_next", json!({ "session": session })).await;
        assert_ne!(next["step"]["status"], "failed", "{next:#}");
        if next["done"] == true {
            break;
        }
    }
    let exercise = ok(&client, "rollback", json!({ "session": session })).await;
    assert_eq!(
        exercise["rollback"]["purpose"]["kind"], "exercise",
        "{exercise:#}"
    );
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    let restore = readme
        .find("1. After step `serve` failed, to restore the sandbox: the rollbacks of `write-config` ran: passed.")
        .unwrap_or_else(|| panic!("{readme}"));
    let tested = readme
        .find("**Rollback tested:** after the successful run")
        .unwrap_or_else(|| panic!("{readme}"));
    assert!(restore < tested, "the restore came first: {readme}");
    client.cancel().await.unwrap();
}

/// A client that gives up waiting on a step (its own timeout) cancels the request: the
/// command is killed, the attempt recorded as cancelled, and `retry` runs attempt 2.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_cancelled_through_mcp_is_recorded_and_retried_as_attempt_2() {
    let dir = common::workdir("runbook-mcp-");
    let client = connect(dir.path()).await;
    let runbook = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: hang-once }
steps:
  - id: hang-once
    title: Hang the first time
    run: "if [ -e tried ]; then touch done; else touch tried; sleep 464646; fi"
    verify:
      - run: test -e done
    rollback:
      run: rm -f tried done
"#;
    let started = ok(
        &client,
        "session_start",
        json!({ "runbook": runbook, "lifetime": "session" }),
    )
    .await;
    let session = started["session"].as_str().unwrap().to_owned();
    // Dropping the call sends `notifications/cancelled`.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(1500),
        call(&client, "run_next", json!({ "session": session })),
    )
    .await;
    assert!(gave_up.is_err(), "the step was to hang: {gave_up:?}");

    // The next call gets the cancelled attempt, which its caller never received.
    let late = ok(&client, "run_next", json!({ "session": session })).await;
    assert_eq!(late["late"], true, "{late:#}");
    assert_eq!(
        late["step"]["attempts"][0]["failureKind"]["kind"], "cancelled",
        "{late:#}"
    );
    let status = ok(&client, "session_status", json!({ "session": session })).await;
    assert_eq!(status["failure"]["id"], "hang-once", "{status:#}");

    let retried = ok(&client, "retry", json!({ "session": session })).await;
    assert_eq!(retried["step"]["status"], "passed", "{retried:#}");
    assert_eq!(
        retried["step"]["attempts"].as_array().unwrap().len(),
        2,
        "{retried:#}"
    );
    let finished = ok(
        &client,
        "finish",
        json!({ "session": session, "out": "pkg", "rehearse": false }),
    )
    .await;
    assert_eq!(finished["verdict"], "passed", "{finished:#}");
    client.cancel().await.unwrap();
}
