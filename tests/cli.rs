//! The `runbook` binary: every error says what was wrong and what to do; no panic or
//! debug output reaches the user.

mod common;

use common::runbook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn workdir() -> tempfile::TempDir {
    common::workdir("runbook-cli-")
}

fn assert_no_rust_leak(s: &str) {
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "Os {",
        "ParseError {",
        "Error {",
        "unwrap()",
    ] {
        assert!(!s.contains(bad), "internal detail leaked to the user: {s}");
    }
}

#[test]
fn validate_prints_file_line_column_code_path_and_help() {
    let dir = workdir();
    let fixture = repo().join("runbook-core/tests/fixtures/lint/undeclared-variable/triggers.yaml");
    let out = runbook(dir.path(), &["validate", fixture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, _) = text(&out);
    let line = stdout
        .lines()
        .find(|l| l.contains("error[undeclared-variable]"))
        .unwrap();
    assert!(
        line.starts_with(&format!(
            "{}:13:10: error[undeclared-variable] steps[0].run: ",
            fixture.display()
        )),
        "{line}"
    );
    assert!(stdout.contains("help: declare `KUBE_CONTEXT`"), "{stdout}");

    let json = runbook(
        dir.path(),
        &["validate", "--format", "json", fixture.to_str().unwrap()],
    );
    let findings: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(findings[0]["code"], "undeclared-variable");
    assert_eq!(findings[0]["line"], 13);
    assert_eq!(findings[0]["path"], "steps[0].run");
}

#[test]
fn validate_passes_every_example() {
    let dir = workdir();
    let mut args = vec!["validate".to_owned()];
    for e in [
        "quickstart",
        "postgres",
        "notification-stack",
        "kubernetes",
        "upgrade",
    ] {
        args.push(
            repo()
                .join("examples")
                .join(e)
                .join("runbook.yaml")
                .to_string_lossy()
                .into_owned(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = runbook(dir.path(), &args);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = workdir();
    std::fs::write(dir.path().join("broken.yaml"), "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps:\n  - id: a\n    titel: A\n").unwrap();
    std::fs::write(dir.path().join("binary.yaml"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["validate", "broken.yaml"],
            "broken.yaml:6:5: error[parse]",
        ),
        (
            vec!["validate", "missing.yaml"],
            "missing.yaml: error[parse]: cannot read the file",
        ),
        (vec!["validate", "binary.yaml"], "binary.yaml"),
        (
            vec!["run", "missing.yaml"],
            "missing.yaml: error[parse]: cannot read the file",
        ),
        (
            vec!["run", "broken.yaml"],
            "unknown key `titel`\n    help: did you mean `title`?",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec!["run", "broken.yaml", "--no-such-flag"],
            "unexpected argument",
        ),
        (
            vec!["run", "broken.yaml", "--var", "lower=1"],
            "is not an UPPER_SNAKE variable name",
        ),
        (
            vec!["resume", "no-such-sandbox"],
            "no sandbox `no-such-sandbox`",
        ),
        (
            vec!["sandbox", "destroy", "no-such-sandbox"],
            "no sandbox `no-such-sandbox`",
        ),
        (
            vec!["new", "Not A Slug", "--out", "x.yaml"],
            "cannot be a runbook name",
        ),
        (
            vec!["run", "broken.yaml", "--provider", "kube"],
            "unknown key",
        ),
    ];
    for (args, want) in cases {
        let out = runbook(dir.path(), &args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stdout.contains(want) || stderr.contains(want),
            "{args:?}: wanted {want:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert_no_rust_leak(&stdout);
        assert_no_rust_leak(&stderr);
    }
}

#[test]
fn a_broken_state_directory_is_reported_not_panicked() {
    let dir = workdir();
    // The state root is a file, not a directory.
    std::fs::remove_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = runbook(dir.path(), &["run", quickstart.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: cannot create the directory"),
        "{stderr}"
    );
    assert_no_rust_leak(&stderr);
    // A sandbox whose state file is damaged.
    let dir = workdir();
    let sandbox = dir.path().join("state/local/broken-1234");
    std::fs::create_dir_all(sandbox.join("control")).unwrap();
    std::fs::write(
        sandbox.join("meta.json"),
        r#"{"runbook":"broken","lifetime":"persistent","createdUnix":0}"#,
    )
    .unwrap();
    std::fs::write(sandbox.join("control/state.json"), "{ not json").unwrap();
    let out = runbook(dir.path(), &["resume", "broken-1234"]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("is damaged") && stderr.contains("runbook sandbox destroy"),
        "{stderr}"
    );
    let out = runbook(dir.path(), &["sandbox", "destroy", "broken-1234"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!sandbox.exists());
}

#[test]
fn new_writes_a_starter_that_lints_clean_and_runs() {
    let dir = workdir();
    let out = runbook(dir.path(), &["new", "my-change"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let again = runbook(dir.path(), &["new", "my-change"]);
    assert!(text(&again).1.contains("already exists"));
    let out = runbook(dir.path(), &["validate", "runbook.yaml"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).1.contains("0 error(s), 0 warning(s)"));
    let out = runbook(dir.path(), &["run", "runbook.yaml", "--exercise-rollback"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(dir.path().join("handoff-package/README.md").exists());
}

#[test]
fn schema_prints_the_committed_schema() {
    let dir = workdir();
    let out = runbook(dir.path(), &["schema"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(repo().join("docs/runbook.schema.json")).unwrap()
    );
}

#[test]
fn a_failing_step_prints_the_evidence_and_still_writes_the_package() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("fails.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: fails }
steps:
  - id: write
    title: Write the state
    run: echo pending > state
    verify:
      - name: state is ready
        run: cat state
        expect: { stdout: { equals: ready } }
    rollback: { run: rm state }
"#,
    )
    .unwrap();
    let out = runbook(dir.path(), &["run", "fails.yaml", "--out", "pkg"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("step `write` (Write the state) failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("echo pending > state"),
        "the command is shown: {stderr}"
    );
    assert!(
        stderr.contains("expected exit code 0, stdout equals \"ready\"; saw stdout \"pending\""),
        "{stderr}"
    );
    assert!(stderr.contains("handoff package (failed): pkg"), "{stderr}");
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    assert!(readme.contains("FAILED"));
    let summary =
        std::fs::read_to_string(dir.path().join("pkg/test-results/test-summary.yaml")).unwrap();
    assert!(summary.contains("verdict: failed"), "{summary}");
}

#[test]
fn events_stream_as_json_lines() {
    let dir = workdir();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = runbook(
        dir.path(),
        &["run", quickstart.to_str().unwrap(), "--events", "ndjson"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"sandboxReady"));
    assert!(
        kinds.contains(&"stepStarted")
            && kinds.contains(&"checkPassed")
            && kinds.contains(&"stepFinished")
    );
    assert_eq!(kinds.last(), Some(&"teardown"));
}

#[test]
fn render_writes_an_untested_package_and_one_from_a_report() {
    let dir = workdir();
    let postgres = repo().join("examples/postgres/runbook.yaml");
    let out = runbook(
        dir.path(),
        &["render", postgres.to_str().unwrap(), "--out", "untested"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        std::fs::read_to_string(dir.path().join("untested/README.md"))
            .unwrap()
            .contains("**Not tested.**")
    );
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let tested = runbook(
        dir.path(),
        &["run", quickstart.to_str().unwrap(), "--out", "tested"],
    );
    assert!(tested.status.success(), "{:?}", text(&tested));
    let out = runbook(
        dir.path(),
        &[
            "render",
            quickstart.to_str().unwrap(),
            "--report",
            "tested/test-results/test-summary.yaml",
            "--out",
            "again",
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        std::fs::read_to_string(dir.path().join("again/README.md"))
            .unwrap()
            .contains("Tested in a sandbox: passed")
    );
    let exists = runbook(
        dir.path(),
        &["render", quickstart.to_str().unwrap(), "--out", "again"],
    );
    assert!(text(&exists).1.contains("holds a handoff package already"));
}

/// Spawns `runbook run` on a runbook whose second step hangs, and waits until that step
/// has started (read from the event stream, no sleeping).
fn start_hanging_run(dir: &Path, lifetime: &str, marker: u32) -> (std::process::Child, String) {
    use std::io::BufRead;
    std::fs::write(
        dir.join("hangs.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: hangs }
steps:
  - id: first
    title: First
    run: echo one > one
    verify: [{ run: cat one, expect: { stdout: { equals: one } } }]
    rollback: { run: rm one }
  - id: hang
    title: Hang
    run: (cd / && env -i setsid sleep DAEMON &); sleep MARKER
    verify: [{ run: echo ok, expect: { stdout: { equals: ok } } }]
    rollback: { run: "true" }
"#
        .replace("MARKER", &marker.to_string())
        .replace("DAEMON", &(marker + 1).to_string()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            "hangs.yaml",
            "--lifetime",
            lifetime,
            "--events",
            "ndjson",
        ])
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["event"] == "sandboxReady" {
            id = event["id"].as_str().unwrap().to_owned();
        }
        if event["event"] == "stepStarted" && event["step"] == "hang" {
            break;
        }
    }
    assert!(
        !id.is_empty(),
        "the hanging run never provisioned a sandbox"
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, id)
}

fn sleepers(marker: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(&format!("sleep\0{marker}"))
                && !stat.contains(") Z")
        })
        .count()
}

#[test]
fn a_process_killed_mid_step_leaves_a_resumable_sandbox() {
    let dir = workdir();
    let (mut child, id) = start_hanging_run(dir.path(), "persistent", 919191);
    // The step has started; wait (with a deadline) until its process exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleepers(919191) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the step's process never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL, mid-step
    child.wait().unwrap();
    assert_eq!(
        sleepers(919191),
        1,
        "SIGKILL leaves the step's process orphaned"
    );
    // The state says `first` passed; the lock died with the process.
    let list = runbook(dir.path(), &["sandbox", "list"]);
    let (stdout, _) = text(&list);
    assert!(stdout.contains(&id) && stdout.contains("first"), "{stdout}");
    // Resume with the hanging step fixed: `first` is skipped, `hang` runs again.
    let fixed = std::fs::read_to_string(dir.path().join("hangs.yaml"))
        .unwrap()
        .replace("sleep 919191", "echo fixed")
        .replace("setsid sleep 919192", "true");
    std::fs::write(dir.path().join("fixed.yaml"), fixed).unwrap();
    let out = runbook(dir.path(), &["resume", &id, "fixed.yaml", "--out", "pkg"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Resuming ended what the killed attempt left, the daemon that left its group too.
    assert_eq!(
        sleepers(919191),
        0,
        "the killed attempt survived the resume"
    );
    assert_eq!(
        sleepers(919192),
        0,
        "the killed attempt's daemon survived the resume"
    );
    let out = runbook(dir.path(), &["sandbox", "destroy", &id]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        sleepers(919191),
        0,
        "the orphaned step process died with the sandbox"
    );
}

#[test]
fn ctrl_c_tears_an_ephemeral_sandbox_down_and_exits_130() {
    let dir = workdir();
    let (child, id) = start_hanging_run(dir.path(), "ephemeral", 929292);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("interrupted (SIGINT): sandbox {id} was torn down")),
        "{stderr}"
    );
    assert!(!dir.path().join("state/local").join(&id).exists());
    assert_eq!(sleepers(929292), 0);
}

#[test]
fn ctrl_c_keeps_a_persistent_sandbox_resumable() {
    let dir = workdir();
    let (child, id) = start_hanging_run(dir.path(), "persistent", 939393);
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("runbook resume {id}")), "{stderr}");
    assert!(
        runbook(dir.path(), &["sandbox", "destroy", &id])
            .status
            .success()
    );
}

#[test]
fn reap_destroys_what_a_killed_ephemeral_run_left_behind() {
    let dir = workdir();
    let (mut child, id) = start_hanging_run(dir.path(), "ephemeral", 949494);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleepers(949494) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the step's process never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dir.path().join("state/local").join(&id).exists(),
        "SIGKILL leaves the ephemeral sandbox"
    );
    let out = runbook(dir.path(), &["sandbox", "reap"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).1.contains(&format!("reaped {id}")));
    assert!(!dir.path().join("state/local").join(&id).exists());
    assert_eq!(sleepers(949494), 0);
}

#[test]
fn the_kube_provider_refuses_a_context_that_is_not_a_sandbox() {
    let dir = workdir();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod-eks\nclusters:\n- name: prod\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: prod-eks\n  context:\n    cluster: prod\n    user: admin\nusers:\n- name: admin\n  user:\n    token: x\n",
    )
    .unwrap();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            quickstart.to_str().unwrap(),
            "--provider",
            "kube",
            "--allow-context",
            "kind-*",
        ])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUNBOOK_KUBE_CONTEXTS")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("refusing to use kube context `prod-eks`"),
        "{stderr}"
    );
    assert_no_rust_leak(&stderr);
    assert!(!dir.path().join("handoff-package").exists(), "nothing ran");

    // The environment may widen the list, but the run says so (the server is this
    // machine's, where nothing listens: provisioning then fails, cleanly).
    let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            quickstart.to_str().unwrap(),
            "--provider",
            "kube",
            "--allow-context",
            "kind-*",
        ])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUNBOOK_KUBE_CONTEXTS", "prod-*")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(
            "kube context `prod-eks` (server https://127.0.0.1:1/) allowed by `prod-*` from \
             RUNBOOK_KUBE_CONTEXTS in the environment, not by the caller's list"
        ),
        "{stderr}"
    );
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_no_rust_leak(&stderr);
}

#[test]
fn on_a_terminal_each_step_gets_a_line_with_its_result() {
    // `script` gives the command a pseudo-terminal, as a person's shell would.
    let dir = workdir();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let command = format!(
        "{} run {} --exercise-rollback",
        env!("CARGO_BIN_EXE_runbook"),
        quickstart.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(screen.contains("✓ pre-flight: bash"), "{screen}");
    assert!(
        screen.contains("✓ Install the configuration [install-config] ("),
        "{screen}"
    );
    assert!(
        screen.contains("✓ roll back: Start the worker [start-worker] ("),
        "{screen}"
    );
    assert!(
        screen.contains("handoff package (passed): handoff-package"),
        "{screen}"
    );
}

/// A small runbook of one step running `command`.
fn one_step(dir: &Path, name: &str, command: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: {name} }}
steps:
  - id: only
    title: The only step
    run: {command:?}
    verify: [{{ run: "true", expect: {{ exitCode: 0 }} }}]
    readOnly: true
"#
        ),
    )
    .unwrap();
    path
}

fn sandboxes(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/local")).map_or(0, |d| d.count())
}

#[test]
fn sigterm_and_sighup_tear_down_the_sandbox_and_every_daemon() {
    for (signal, marker, code, said) in [
        ("-TERM", 959590, 143, "terminated (SIGTERM)"),
        ("-HUP", 969690, 129, "hung up (SIGHUP)"),
    ] {
        let dir = workdir();
        let (child, id) = start_hanging_run(dir.path(), "ephemeral", marker);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sleepers(marker) == 0 || sleepers(marker + 1) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the step never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{signal}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{said}: sandbox {id} was torn down")),
            "{stderr}"
        );
        assert!(!dir.path().join("state/local").join(&id).exists());
        assert_eq!(sleepers(marker), 0, "{signal}: the step survived");
        assert_eq!(sleepers(marker + 1), 0, "{signal}: the daemon survived");
    }
}

#[test]
fn out_never_deletes_what_runbook_did_not_write() {
    let dir = workdir();
    let rb = one_step(dir.path(), "tiny", "echo hi");
    let rb = rb.to_str().unwrap();
    // A user's directory that happens to hold a SHA256SUMS.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "my notes").unwrap();
    std::fs::write(mine.join("SHA256SUMS"), "").unwrap();
    for args in [
        vec!["run", rb, "--out", "mine"],
        vec!["run", rb, "--out", "mine", "--force"],
        vec!["render", rb, "--out", "mine", "--force"],
    ] {
        let out = runbook(dir.path(), &args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("is not a handoff package"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
            "my notes"
        );
    }
    assert_eq!(
        sandboxes(dir.path()),
        0,
        "--out is checked before any sandbox exists"
    );
    // A plain file is never moved aside.
    std::fs::write(dir.path().join("file.txt"), "data").unwrap();
    let out = runbook(dir.path(), &["render", rb, "--out", "file.txt", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("it is a file"), "{:?}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("file.txt")).unwrap(),
        "data"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".old") || n.contains(".partial")),
        "{names:?}"
    );
    // A package of ours is replaced only with --force, and that is refused up front.
    assert!(
        runbook(dir.path(), &["run", rb, "--out", "pkg"])
            .status
            .success()
    );
    let again = runbook(dir.path(), &["run", rb, "--out", "pkg"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).1.contains("--force"), "{:?}", text(&again));
    assert!(!text(&again).1.contains("handoff package (passed)"));
    assert!(
        runbook(dir.path(), &["run", rb, "--out", "pkg", "--force"])
            .status
            .success()
    );
    assert!(dir.path().join("pkg/.runbook-package").exists());
}

/// An existing empty directory given as --out (made by an operator: its mode, its owner,
/// perhaps a mount point) is written into, never replaced: the same inode, mode and owner
/// after `run` (which writes the package twice: before and after the rehearsal) and after
/// `render`.
#[test]
fn out_writes_into_an_existing_empty_directory_and_keeps_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = workdir();
    let rb = one_step(dir.path(), "tiny", "echo hi");
    let rb = rb.to_str().unwrap();
    for (name, args) in [
        ("ran", vec!["run", rb, "--out", "ran"]),
        ("rendered", vec!["render", rb, "--out", "rendered"]),
    ] {
        let out_dir = dir.path().join(name);
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        if common::is_root() {
            std::os::unix::fs::chown(&out_dir, Some(65534), Some(65534)).unwrap();
        }
        let before = std::fs::metadata(&out_dir).unwrap();
        let out = runbook(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out).1);
        let after = std::fs::metadata(&out_dir).unwrap();
        assert_eq!(
            (after.ino(), after.mode(), after.uid(), after.gid()),
            (before.ino(), before.mode(), before.uid(), before.gid()),
            "{name}: the directory was replaced"
        );
        assert!(out_dir.join("README.md").is_file(), "{name}");
        assert!(out_dir.join(".runbook-package").is_file(), "{name}");
        let names: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with(".runbook-partial") || n.starts_with(".runbook-old")),
            "{name}: {names:?}"
        );
    }
    // The run's second write (after the rehearsal) replaced its first one in place.
    assert!(dir.path().join("ran/test-results/rehearsal.yaml").is_file());
}

#[test]
fn a_secret_split_across_stdout_and_stderr_is_masked_and_the_package_still_written() {
    let dir = workdir();
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(
        dir.path().join("split.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: split }
variables:
  - name: TOKEN
    category: credential
    secret: { source: vault, reference: secret/app#token }
    production: from the vault
steps:
  - id: print
    title: Print the token in two halves
    run: printf '%s' "${TOKEN:0:16}"; sleep 0.3; printf '%s' "${TOKEN:16}" >&2
    verify: [{ run: "true", expect: { exitCode: 0 } }]
    readOnly: true
"#,
    )
    .unwrap();
    let out = runbook(
        dir.path(),
        &["run", "split.yaml", "--var", &format!("TOKEN={token}")],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let log = std::fs::read_to_string(
        dir.path()
            .join("handoff-package/test-results/sandbox-log.txt"),
    )
    .unwrap();
    assert!(log.contains("***"), "{log}");
    for entry in walk(&dir.path().join("handoff-package")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(token),
            "{} holds the token",
            entry.display()
        );
    }
}

#[test]
fn a_kept_environment_variable_reaches_the_steps_masked() {
    let dir = workdir();
    let key = "AKIA-kept-value-7f3e9c1d";
    std::fs::write(
        dir.path().join("keep.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: keep }
steps:
  - id: use-key
    title: A cloud CLI reads its key from the environment
    run: env | grep '^RB_TEST_CLOUD_KEY='
    verify: [{ run: "env | grep -c '^RB_TEST_CLOUD_KEY=AKIA'", expect: { stdout: { equals: "1" } } }]
    readOnly: true
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            "keep.yaml",
            "--keep-env",
            "RB_TEST_CLOUD_KEY",
            "--no-rehearsal",
        ])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .env("RB_TEST_CLOUD_KEY", key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let log = std::fs::read_to_string(
        dir.path()
            .join("handoff-package/test-results/sandbox-log.txt"),
    )
    .unwrap();
    assert!(log.contains("RB_TEST_CLOUD_KEY=***"), "{log}");
    let (stdout, stderr) = text(&out);
    assert!(!stdout.contains(key) && !stderr.contains(key));
    for entry in walk(&dir.path().join("handoff-package")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key),
            "{} holds the kept value",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn huge_output_ships_as_a_bounded_excerpt() {
    let dir = workdir();
    // Not `yes | head`: under pipefail that step fails, as `yes` dies of SIGPIPE.
    let rb = one_step(
        dir.path(),
        "loud",
        "head -c 50000000 /dev/zero | tr '\\000' y",
    );
    let out = runbook(dir.path(), &["run", rb.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let log = std::fs::read_to_string(
        dir.path()
            .join("handoff-package/test-results/sandbox-log.txt"),
    )
    .unwrap();
    assert!(log.len() < 2 * 1024 * 1024 + 8192, "{}", log.len());
    assert!(log.contains("this command printed 50000000 bytes in all, sha256 "));
}

#[test]
fn absurd_durations_and_outside_workdirs_are_lint_errors_not_panics() {
    let dir = workdir();
    for (field, code) in [
        ("timeout: 400000000h", "duration-limit"),
        ("workdir: ../..", "workdir-outside"),
    ] {
        std::fs::write(
            dir.path().join("bad.yaml"),
            format!(
                "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: bad }}\nsteps:\n  - id: s\n    title: S\n    run: echo hi\n    {field}\n    verify: [{{ run: \"true\", expect: {{ exitCode: 0 }} }}]\n    readOnly: true\n"
            ),
        )
        .unwrap();
        let out = runbook(dir.path(), &["validate", "bad.yaml"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out).0.contains(&format!("error[{code}]")),
            "{:?}",
            text(&out)
        );
        let out = runbook(dir.path(), &["run", "bad.yaml"]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("nothing was run") && stderr.contains(code),
            "{stderr}"
        );
        assert!(!stderr.contains("internal error"), "{stderr}");
    }
}

#[test]
fn destroy_all_goes_past_a_busy_sandbox() {
    let dir = workdir();
    let rb = one_step(dir.path(), "kept", "echo kept");
    let out = runbook(
        dir.path(),
        &["run", rb.to_str().unwrap(), "--keep", "--out", "kept-pkg"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let (mut busy, busy_id) = start_hanging_run(dir.path(), "persistent", 979790);
    let out = runbook(dir.path(), &["sandbox", "destroy", "--all"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: {busy_id}: sandbox `{busy_id}` is in use")),
        "{stderr}"
    );
    assert!(stderr.contains("destroyed kept-"), "{stderr}");
    busy.kill().unwrap();
    busy.wait().unwrap();
    let out = runbook(dir.path(), &["sandbox", "destroy", "--all"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(sandboxes(dir.path()), 0);
    assert_eq!(sleepers(979790) + sleepers(979791), 0);
}

/// Ten typical mistakes, one fixture each (tests/fixtures/errors/), as `validate` and
/// `run` print them: the place, what is wrong in plain words, and what to change.
#[test]
fn typical_mistakes_read_in_plain_words() {
    let fixtures = repo().join("tests/fixtures/errors");
    for name in [
        "misspelled-key",
        "bad-indentation",
        "tab",
        "unclosed-quote",
        "wrong-enum-value",
        "wrong-type",
        "missing-required-key",
        "undeclared-variable",
        "missing-file",
        "empty-file",
    ] {
        let file = format!("{name}.yaml");
        let out = runbook(&fixtures, &["validate", &file]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let (stdout, _) = text(&out);
        assert_no_rust_leak(&stdout);
        insta::assert_snapshot!(name, stdout);
        // `run` refuses with the very same lines, before any sandbox exists.
        let run = runbook(&fixtures, &["run", &file]);
        let (_, stderr) = text(&run);
        assert_eq!(run.status.code(), Some(1), "{name}");
        assert!(stderr.contains(stdout.trim_end()), "{name}: {stderr}");
    }
}

/// docs/cli.md carries every command's `--help`, so the doc cannot drift from the binary.
/// `UPDATE_CLI_DOC=1 cargo test --test cli` rewrites those blocks.
#[test]
fn docs_cli_md_holds_every_commands_help() {
    let doc_path = repo().join("docs/cli.md");
    let mut doc = std::fs::read_to_string(&doc_path).unwrap();
    let mut stale = Vec::new();
    for sub in [
        "", "validate", "run", "resume", "rehearse", "sandbox", "render", "schema", "new",
    ] {
        let mut args: Vec<&str> = sub.split_whitespace().collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(&args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
        let name = if sub.is_empty() { "runbook" } else { sub };
        let start = format!("<!-- help:{name} -->\n```text\n");
        let end = "\n```\n<!-- /help -->";
        let block = format!("{start}{help}{end}");
        match doc.find(&start) {
            Some(a) => {
                let b = doc[a..].find(end).map(|e| a + e + end.len()).unwrap();
                if doc[a..b] != block {
                    stale.push(name);
                    doc.replace_range(a..b, &block);
                }
            }
            None => {
                stale.push(name);
                doc.push_str(&format!("\n### `runbook {sub}`\n\n{block}\n"));
            }
        }
    }
    if std::env::var_os("UPDATE_CLI_DOC").is_some() {
        std::fs::write(&doc_path, &doc).unwrap();
    } else {
        assert!(
            stale.is_empty(),
            "docs/cli.md is stale for {stale:?}: run `UPDATE_CLI_DOC=1 cargo test --test cli`"
        );
    }
}

#[test]
fn an_error_prints_its_cause_once() {
    let dir = workdir();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = runbook(
        dir.path(),
        &[
            "render",
            quickstart.to_str().unwrap(),
            "--out",
            "/proc/sys/nope/pkg",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot create `/proc/sys/nope`: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn deny_promotes_warnings_to_errors() {
    let dir = workdir();
    let fixture = repo().join("runbook-core/tests/fixtures/lint/no-rollback/triggers.yaml");
    let file = fixture.to_str().unwrap();
    assert!(runbook(dir.path(), &["validate", file]).status.success());
    for deny in ["no-rollback", "warnings"] {
        let out = runbook(dir.path(), &["validate", file, "--deny", deny]);
        assert_eq!(out.status.code(), Some(1), "{deny}");
        assert!(
            text(&out).0.contains("error[no-rollback]"),
            "{:?}",
            text(&out)
        );
    }
    let out = runbook(dir.path(), &["validate", file, "--deny", "no-rolback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not a rule"), "{:?}", text(&out));
}

#[test]
fn network_isolation_is_refused_for_the_kube_provider() {
    let dir = workdir();
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = runbook(
        dir.path(),
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--provider",
            "kube",
            "--isolate-network",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("cuts the steps off from the Kubernetes API server"),
        "{:?}",
        text(&out)
    );
}

/// A runbook with a secret `TOKEN` whose step shows it arrived (its length) and then
/// sleeps as a process named after `mark`.
fn secret_runbook(dir: &Path, mark: &str) -> PathBuf {
    let path = dir.join("secret.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: secret }}
variables:
  - name: TOKEN
    category: credential
    secret: {{ source: vault, reference: secret/app#token }}
    production: From the vault
steps:
  - id: use-token
    title: Use the token
    run: printf '%s' "${{#TOKEN}}" > length && (exec -a {mark} sleep 3)
    readOnly: true
    verify:
      - run: cat length
        expect: {{ stdout: {{ equals: "32" }} }}
"#
        ),
    )
    .unwrap();
    path
}

/// Runs `runbook` with `args` (and `env`, and `stdin`) while the step sleeps, reads every
/// `/proc/*/cmdline` as this user and (as root) as `nobody`: the output, and in which of
/// the two scans `secret` was seen.
fn scan_cmdlines_while_running(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    mark: &str,
    secret: &str,
) -> (Output, bool, bool) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .env_remove("RUNBOOK_LESSONS")
        .env_remove("RUNBOOK_VAR_FILE")
        .env_remove("TOKEN")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let running = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        Command::new("pgrep")
            .args(["-f", mark])
            .output()
            .unwrap()
            .status
            .success()
    });
    assert!(running, "the step never ran");
    let mut as_me = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            as_me.extend(cmdline);
            as_me.push(b'\n');
        }
    }
    let seen_by_me = String::from_utf8_lossy(&as_me).contains(secret);
    let seen_by_nobody = common::is_root() && {
        let scan = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sh",
                "-c",
                "cat /proc/[0-9]*/cmdline 2>/dev/null; true",
            ])
            .output()
            .unwrap();
        assert!(scan.status.success() && !scan.stdout.is_empty());
        String::from_utf8_lossy(&scan.stdout).contains(secret)
    };
    (
        child.wait_with_output().unwrap(),
        seen_by_me,
        seen_by_nobody,
    )
}

/// `run` as root with a secret: through `--secret` (from the environment, or a line of
/// stdin) it reaches the step and is in no process's command line, for root or `nobody`;
/// through `--var` it is (the scan finds it), and the CLI warns, naming the variable only.
#[test]
fn a_secret_given_by_secret_is_in_no_command_line() {
    let dir = workdir();
    let token = "5ec7e7a9f3b1c2d4e6f8a0b2c4d6e8f0";
    let mark = format!("rb-secret-{}", std::process::id());
    let rb = secret_runbook(dir.path(), &mark);
    let rb = rb.to_str().unwrap();
    let base = ["run", rb, "--no-rehearsal", "--out"];
    for (out, env, stdin) in [
        ("from-env", vec![("TOKEN", token)], String::new()),
        ("from-stdin", vec![], format!("{token}\n")),
    ] {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain([out, "--secret", "TOKEN"])
            .collect();
        let (output, by_me, by_nobody) =
            scan_cmdlines_while_running(dir.path(), &args, &env, &stdin, &mark, token);
        let (_, stderr) = text(&output);
        assert!(output.status.success(), "{out}: {stderr}");
        assert!(
            !by_me && !by_nobody,
            "{out}: the secret is in a command line"
        );
        assert!(!stderr.contains("warning"), "{stderr}");
        assert!(!stderr.contains(token), "{stderr}");
    }
    // The control: on the command line, every user sees it; the CLI says so.
    let var = format!("TOKEN={token}");
    let args = [base.as_slice(), &["by-var", "--var", &var]].concat();
    let (output, by_me, by_nobody) =
        scan_cmdlines_while_running(dir.path(), &args, &[], "", &mark, token);
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        by_me && (by_nobody || !common::is_root()),
        "the scan sees argv"
    );
    assert!(
        stderr.contains("warning: --var TOKEN") && stderr.contains("--secret TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains(token), "{stderr}");
}

/// `--var-file`: NAME=VALUE lines and `#` comments; mistakes name the file and line and
/// never show a value; a variable given twice names both places.
#[test]
fn var_files_read_name_value_lines_and_point_at_mistakes() {
    let dir = workdir();
    let mark = format!("rb-varfile-{}", std::process::id());
    let rb = secret_runbook(dir.path(), &mark);
    let rb = rb.to_str().unwrap();
    let token = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a";
    std::fs::write(
        dir.path().join("good.env"),
        format!("# the app's token\n\n  TOKEN={token}\n"),
    )
    .unwrap();
    let out = runbook(
        dir.path(),
        &[
            "run",
            rb,
            "--no-rehearsal",
            "--out",
            "pkg",
            "--var-file",
            "good.env",
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains(token) && !stderr.contains("warning"),
        "{stderr}"
    );
    for (file, content, said) in [
        (
            "no-equals.env",
            "# ok\nsecret-without-a-name\n",
            "no-equals.env:2: expected NAME=VALUE",
        ),
        (
            "bad-name.env",
            "token=x-secret-value\n",
            "bad-name.env:1: `token` is not an UPPER_SNAKE",
        ),
        (
            "twice.env",
            "TOKEN=a-secret-value\nTOKEN=b-secret-value\n",
            "`TOKEN` is given twice: twice.env:1 and twice.env:2",
        ),
    ] {
        std::fs::write(dir.path().join(file), content).unwrap();
        let out = runbook(dir.path(), &["run", rb, "--out", "x", "--var-file", file]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(said), "{file}: {stderr}");
        assert!(
            !stderr.contains("secret-without") && !stderr.contains("secret-value"),
            "{file}: {stderr}"
        );
        assert_no_rust_leak(&stderr);
    }
    let out = runbook(
        dir.path(),
        &[
            "run",
            rb,
            "--out",
            "x",
            "--var-file",
            "good.env",
            "--var",
            "TOKEN=y",
        ],
    );
    assert!(
        text(&out)
            .1
            .contains("given twice: good.env:3 and --var TOKEN"),
        "{}",
        text(&out).1
    );
    assert_eq!(sandboxes(dir.path()), 0, "no sandbox for a bad value");
}

/// A runbook whose variables would steer what starts its commands (`PATH` first to a
/// directory of the sandbox's, `LD_PRELOAD`) is refused before any sandbox exists, with
/// the reason, for root and for an unprivileged caller alike.
#[test]
fn variables_named_path_or_ld_preload_are_refused_before_any_sandbox() {
    let dir = workdir();
    let hostile = dir.path().join("hostile.yaml");
    std::fs::write(
        &hostile,
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: hostile }
variables:
  - name: PATH
    category: other
    sandbox: bin:/usr/bin:/bin
    production: the target's own
  - name: LD_PRELOAD
    category: other
    sandbox: /tmp/hook.so
    production: none
steps:
  - id: plant
    title: Plant a bash
    run: mkdir -p bin && printf '#!/bin/sh\nid > /tmp/pwned\n' > bin/bash && chmod +x bin/bash && echo "$LD_PRELOAD"
    verify:
      - run: echo ok
        expect: { stdout: { equals: ok } }
    rollback:
      run: rm -rf bin
"#,
    )
    .unwrap();
    let check = |out: &Output, who: &str| {
        let (stdout, stderr) = text(out);
        assert_eq!(out.status.code(), Some(1), "{who}: {stdout}{stderr}");
        let all = format!("{stdout}{stderr}");
        for (name, line) in [("PATH", 5), ("LD_PRELOAD", 9)] {
            assert!(
                all.contains(&format!(
                    "hostile.yaml:{line}:11: error[reserved-variable] variables[{}].name: variable `{name}` is reserved",
                    if name == "PATH" { 0 } else { 1 }
                )),
                "{who}: {all}"
            );
        }
        assert!(
            !dir.path().join("state/local").exists(),
            "{who}: a sandbox was made"
        );
        assert_no_rust_leak(&all);
    };
    check(&runbook(dir.path(), &["run", "hostile.yaml"]), "this user");
    if common::is_root() {
        let out = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_runbook"))
            .args(["run", "hostile.yaml"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap();
        check(&out, "nobody");
    }
}

/// A first draft sets a parameter PostgreSQL 15 no longer has (`wal_keep_segments`, gone
/// since 13). The server refuses to start and says why only in its own log file; the
/// command says "could not start server". The run names the log's line in its output,
/// in the report and in the package, none of it typed by hand.
#[test]
fn a_server_that_refuses_its_config_is_shown_failing_with_its_own_log_line() {
    let dir = workdir();
    let port = common::free_port().to_string();
    std::fs::write(
        dir.path().join("draft.yaml"),
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: pg-draft }}
variables:
  - name: PGPORT
    category: endpoint
    sandbox: "{port}"
    production: Your server's port
steps:
  - id: init-cluster
    title: Create the cluster with replication settings
    run: |
      initdb --pgdata=data --username=postgres --auth=trust >/dev/null
      printf "port = %s\nunix_socket_directories = '%s'\nwal_keep_segments = 64\n" "$PGPORT" "$PWD" >> data/postgresql.conf
    verify:
      - file: {{ path: data/PG_VERSION }}
    rollback:
      run: rm -rf data
  - id: start-server
    title: Start the server
    run: pg_ctl --pgdata=data --log=data/server.log --wait --timeout=30 start
    diagnose:
      - pg_controldata data | head -n 3
    verify:
      - run: pg_isready -h "$PWD" -p "$PGPORT"
        expect: {{ exitCode: 0 }}
    rollback:
      run: pg_ctl --pgdata=data --mode=fast --wait stop
"#
        ),
    )
    .unwrap();
    let out = runbook(
        dir.path(),
        &[
            "run",
            "draft.yaml",
            "--lifetime",
            "ephemeral",
            "--out",
            "pkg",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let cause = "unrecognized configuration parameter \"wal_keep_segments\"";
    let shown = stderr
        .split("the cause, as the sandbox showed it:")
        .nth(1)
        .unwrap_or_else(|| panic!("no cause section: {stderr}"));
    assert!(shown.contains(cause), "{stderr}");
    assert!(
        stderr.contains("end of data/server.log (changed while the step ran)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("$ pg_controldata data | head -n 3"),
        "{stderr}"
    );
    assert!(stderr.contains("rerun with --keep"), "{stderr}");

    let report = runbook::report_from_yaml_str(
        &std::fs::read_to_string(dir.path().join("pkg/test-results/test-summary.yaml")).unwrap(),
    )
    .unwrap();
    let attempt = &report.steps[1].attempts[0];
    assert!(
        attempt.causes.iter().any(|c| c.contains(cause)),
        "{:#?}",
        attempt.causes
    );
    assert_eq!(attempt.files[0].path, "data/server.log");
    assert!(attempt.files[0].lines.len() <= 40);
    assert_eq!(attempt.diagnose[0].exit_code, Some(0));
    assert!(
        attempt.diagnose[0]
            .output
            .contains("pg_control version number"),
        "{:?}",
        attempt.diagnose
    );
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    assert!(readme.contains(cause), "the package shows the cause");
}

/// After a failed run with `--keep`, the output says where the sandbox is, and `runbook
/// sandbox exec` runs a command in it as its steps ran: its user, its variables (a secret
/// masked in what comes back), the files the steps left. A sandbox that does not exist is
/// refused in plain words.
#[test]
fn a_kept_sandbox_can_be_entered_to_look_around() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("broken.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: broken }
variables:
  - name: GREETING
    category: other
    sandbox: hello
    production: Yours
  - name: API_TOKEN
    category: credential
    generate: true
    production: From your secret manager
steps:
  - id: write
    title: Write a note, then fail
    run: |
      echo "$GREETING from the step" > note.txt
      exit 3
    verify:
      - file: { path: note.txt, contains: "${GREETING}" }
    rollback:
      run: rm -f note.txt
"#,
    )
    .unwrap();
    let out = runbook(
        dir.path(),
        &["run", "broken.yaml", "--keep", "--out", "pkg"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let kept = stderr
        .lines()
        .find_map(|l| l.strip_prefix("sandbox "))
        .filter(|l| l.contains("is kept"))
        .unwrap_or_else(|| panic!("no kept line: {stderr}"));
    let id = kept.split_whitespace().next().unwrap().to_owned();
    let work = dir.path().join("state/local").join(&id).join("work");
    assert!(kept.contains(&format!("({})", work.display())), "{kept}");

    let look = runbook(
        dir.path(),
        &[
            "sandbox",
            "exec",
            &id,
            "--",
            "cat note.txt; echo \"token=$API_TOKEN\"; pwd; exit 4",
        ],
    );
    let (stdout, stderr) = text(&look);
    assert_eq!(look.status.code(), Some(4), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!("hello from the step\ntoken=***\n{}\n", work.display())
    );
    if common::is_root() {
        let who = runbook(dir.path(), &["sandbox", "exec", &id, "--", "id", "-un"]);
        let (stdout, _) = text(&who);
        assert!(
            stdout.starts_with("rb-"),
            "the sandbox's own user: {stdout}"
        );
    }

    let missing = runbook(
        dir.path(),
        &["sandbox", "exec", "nope-12345678", "--", "true"],
    );
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no sandbox `nope-12345678`"), "{stderr}");
    assert_no_rust_leak(&stderr);
    let destroyed = runbook(dir.path(), &["sandbox", "destroy", &id]);
    assert!(destroyed.status.success());
}

/// The loop from the CLI: a kept run fails at a step whose cause is in an earlier one
/// that passed; the person fixes the YAML and resumes with `--amend`; the run goes back
/// before the changed step (rolling back what passed after it) and on to the end; the
/// package says what failed and how it was fixed, none of it typed by hand.
#[test]
fn resume_amend_goes_back_to_the_changed_step_and_records_the_fix() {
    let dir = workdir();
    let draft = include_str!("fixtures/amend/draft.yaml");
    std::fs::write(dir.path().join("draft.yaml"), draft).unwrap();
    std::fs::write(
        dir.path().join("fixed.yaml"),
        draft.replace("echo 'mode=old'", "echo 'mode=new'"),
    )
    .unwrap();
    let out = runbook(
        dir.path(),
        &["run", "draft.yaml", "--keep", "--out", "draft-pkg"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let hint = stderr
        .lines()
        .find(|l| l.contains("--amend FIXED.yaml"))
        .unwrap_or_else(|| panic!("no hint: {stderr}"));
    let id = hint
        .split("runbook resume ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();

    let resumed = runbook(
        dir.path(),
        &["resume", &id, "--amend", "fixed.yaml", "--out", "pkg"],
    );
    let (_, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("amended: the run goes back to step `write-config`"),
        "{stderr}"
    );
    let readme = std::fs::read_to_string(dir.path().join("pkg/README.md")).unwrap();
    for shown in [
        "What failed in the sandbox, and how it was fixed:",
        "error: mode=old is not supported",
        "+  run: echo 'mode=new' > app.conf",
    ] {
        assert!(
            readme.contains(shown),
            "`{shown}` is not in the README:\n{readme}"
        );
    }
    let summary =
        std::fs::read_to_string(dir.path().join("pkg/test-results/test-summary.yaml")).unwrap();
    assert!(summary.contains("restores:"), "{summary}");
    let (shipped, _) = runbook::load(dir.path().join("pkg/runbook.yaml")).unwrap();
    assert_eq!(
        shipped.steps[0].known_issues[0].error,
        "error: mode=old is not supported"
    );
    assert!(
        runbook(dir.path(), &["sandbox", "destroy", &id])
            .status
            .success()
    );
}

/// A sandbox that is not kept (a session's, alive in another process) cannot be entered:
/// the refusal says why and what to do, and the sandbox is left as it was.
#[tokio::test]
async fn a_sandbox_that_is_not_kept_cannot_be_entered() {
    use runbook::exec::Provider;
    let dir = workdir();
    let provider = runbook::exec::LocalProvider::with_root(dir.path().join("state"));
    let request = runbook::exec::ProvisionRequest::new("busy", runbook::Lifetime::Session);
    let sandbox = provider.provision(&request).await.unwrap();
    let id = sandbox.id().to_owned();
    let refused = runbook(dir.path(), &["sandbox", "exec", &id, "--", "true"]);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("sandbox `{id}` is not kept")) && stderr.contains("--keep"),
        "{stderr}"
    );
    assert_no_rust_leak(&stderr);
    assert!(
        provider.sandbox_dir(&id).is_dir(),
        "the sandbox is left as it was"
    );
    drop(sandbox);
}

/// `sandbox exec` for a user without root: the local provider runs the steps as that user
/// (no sandbox user, no cgroup), and `exec` runs as they ran. A kept sandbox is entered;
/// one that is not kept (a run still going) or that does not exist is refused plainly.
/// As root, the CLI runs as `nobody` with a state directory `nobody` owns.
#[test]
fn an_unprivileged_user_enters_a_kept_sandbox_with_exec() {
    let dir = workdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let uid = if common::is_root() {
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
        65534
    } else {
        current_uid()
    };
    std::fs::write(
        home.join("kept.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: unprivileged }
steps:
  - id: write
    title: Write a note
    run: echo "written by $(id -u)" > note.txt
    verify:
      - file: { path: note.txt, contains: written }
    rollback:
      run: rm -f note.txt
"#,
    )
    .unwrap();
    std::fs::write(
        home.join("busy.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: busy }
steps:
  - id: wait
    title: Take a while
    run: touch started && sleep 60
    readOnly: true
    verify:
      - run: "true"
"#,
    )
    .unwrap();
    let as_user = |args: &[&str]| {
        let mut c = if common::is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_runbook"),
            ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_runbook"))
        };
        c.args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env("RUNBOOK_STATE_DIR", home.join("state"))
            .env_remove("RUNBOOK_LESSONS")
            .stdin(std::process::Stdio::null());
        c
    };

    let run = as_user(&[
        "run",
        "kept.yaml",
        "--keep",
        "--no-rehearsal",
        "--out",
        "pkg",
    ])
    .output()
    .unwrap();
    let (_, stderr) = text(&run);
    assert!(run.status.success(), "{stderr}");
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("sandbox "))
        .filter(|l| l.contains("is kept"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kept line: {stderr}"))
        .to_owned();
    let work = home.join("state/local").join(&id).join("work");
    let look = as_user(&[
        "sandbox",
        "exec",
        &id,
        "--",
        "cat note.txt; id -u; pwd; exit 5",
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = text(&look);
    assert_eq!(look.status.code(), Some(5), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!("written by {uid}\n{uid}\n{}\n", work.display()),
        "{stderr}"
    );

    let missing = as_user(&["sandbox", "exec", "nope-12345678", "--", "true"])
        .output()
        .unwrap();
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no sandbox `nope-12345678`"), "{stderr}");
    assert_no_rust_leak(&stderr);

    // A run that is still going has a sandbox that is not kept: it is not entered.
    let mut busy = as_user(&["run", "busy.yaml", "--no-rehearsal", "--out", "busy-pkg"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let busy_id = loop {
        let found = std::fs::read_dir(home.join("state/local"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| {
                name.starts_with("busy-")
                    && home
                        .join("state/local")
                        .join(name)
                        .join("work/started")
                        .exists()
            });
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the busy run did not start its step"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let refused = as_user(&["sandbox", "exec", &busy_id, "--", "true"])
        .output()
        .unwrap();
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("sandbox `{busy_id}` is not kept")) && stderr.contains("--keep"),
        "{stderr}"
    );
    assert_no_rust_leak(&stderr);
    // The interrupted run tears its sandbox down.
    let term = Command::new("kill")
        .args(["-TERM", &busy.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(busy.wait().unwrap().code(), Some(128 + 15));
    assert!(!home.join("state/local").join(&busy_id).exists());

    assert!(
        as_user(&["sandbox", "destroy", &id])
            .output()
            .unwrap()
            .status
            .success()
    );
}

/// This process's user id.
fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

/// A relative `--state-dir` is taken from the working directory once, for every command:
/// as root, each sandbox's user gets a home under it, which `useradd` wants absolute.
#[test]
fn a_relative_state_dir_works_for_run_and_sandbox_list() {
    let dir = common::workdir("runbook-cli-relstate-");
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let run = common::runbook(
        dir.path(),
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--state-dir",
            "relstate",
            "--keep",
            "--out",
            "pkg",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(dir.path().join("relstate/local").is_dir());
    let listed = common::runbook(dir.path(), &["sandbox", "--state-dir", "relstate", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("quickstart"), "{listed}");
    assert!(
        listed.contains(&dir.path().join("relstate").display().to_string()),
        "{listed}"
    );
    // The kept sandbox (its worker, its user) goes, through the same relative root.
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let destroyed = common::runbook(
        dir.path(),
        &["sandbox", "--state-dir", "relstate", "destroy", id],
    );
    assert!(destroyed.status.success(), "{destroyed:?}");
}
