//! The `runbook` binary: every error says what was wrong and what to do; no panic or
//! debug output reaches the user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runbook(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .env(
            "PATH",
            format!(
                "/usr/lib/postgresql/15/bin:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn workdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("runbook-cli-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(d.path().join("state")).unwrap();
    std::fs::set_permissions(
        d.path().join("state"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    d
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
            "error: missing.yaml: cannot read the file",
        ),
        (vec!["run", "broken.yaml"], "unknown field `titel`"),
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
            "unknown field",
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
    assert!(
        runbook(
            dir.path(),
            &["run", quickstart.to_str().unwrap(), "--out", "tested"]
        )
        .status
        .success()
    );
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
    run: sleep MARKER
    verify: [{ run: echo ok, expect: { stdout: { equals: ok } } }]
    rollback: { run: "true" }
"#
        .replace("MARKER", &marker.to_string()),
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
        .replace("sleep 919191", "echo fixed");
    std::fs::write(dir.path().join("fixed.yaml"), fixed).unwrap();
    let out = runbook(dir.path(), &["resume", &id, "fixed.yaml", "--out", "pkg"]);
    assert!(out.status.success(), "{:?}", text(&out));
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
