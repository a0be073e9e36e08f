//! The feedback loop end to end: a tested package fails on a target that differs from the
//! sandbox, its script writes a feedback file, `runbook feedback` makes a lesson of it, and
//! a different runbook using the same tool is warned, stopped in pre-flight, and ships the
//! check in its own `deploy.sh`.

mod common;

use common::runbook;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{is_root, pg_path};

/// The check the operator wrote after the failure: nothing listens on the port yet.
const PORT_FREE: &str = r#"! (exec 3<>"/dev/tcp/$PGHOST/$PGPORT") 2>/dev/null"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Gives a directory to `nobody`, who runs the scripts as an operator would (PostgreSQL
/// refuses root).
fn give_to_nobody(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Runs a package script as an operator would, with the operator's values.
fn script(
    package: &Path,
    name: &str,
    args: &[&str],
    work: &Path,
    vars: &BTreeMap<&str, String>,
) -> Output {
    common::operator_script(package, name, args, work, vars, &pg_path())
}

/// Writes `yaml` as a runbook under `root`, passes it in a sandbox with `runbook run`, and
/// returns its package.
fn tested_package(root: &Path, yaml: &str) -> PathBuf {
    std::fs::write(root.join("runbook.yaml"), yaml).unwrap();
    let run = runbook(
        root,
        &["run", "runbook.yaml", "--out", "package", "--no-rehearsal"],
    );
    assert!(run.status.success(), "{}", text(&run));
    root.join("package")
}

fn feedback_files(package: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(package.join("feedback"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn fresh_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    give_to_nobody(&dir);
    dir
}

#[test]
fn a_production_failure_becomes_a_preflight_check_for_a_similar_runbook() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();

    // 1. The PostgreSQL example passes in its sandbox.
    let sandbox_port = common::free_port().to_string();
    let run = runbook(
        root,
        &[
            "run",
            repo()
                .join("examples/postgres/runbook.yaml")
                .to_str()
                .unwrap(),
            "--out",
            "postgres-package",
            "--no-rehearsal",
            "--var",
            &format!("PGPORT={sandbox_port}"),
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    let package = root.join("postgres-package");
    give_to_nobody(&package);

    // 2. On the target, another process already listens on the port the operator chose.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let work = fresh_dir(root, "target-work");
    let secrets = ["fb-super-3f9d2c71", "fb-app-8e41b0aa"];
    let vars = BTreeMap::from([
        ("PGDATA", work.join("main").to_string_lossy().into_owned()),
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", taken_port.clone()),
        ("APP_DB", "shop".to_owned()),
        ("APP_USER", "shop_app".to_owned()),
        ("PG_SUPERUSER_PASSWORD", secrets[0].to_owned()),
        ("APP_PASSWORD", secrets[1].to_owned()),
    ]);
    let deploy = script(&package, "deploy.sh", &[], &work, &vars);
    assert_eq!(deploy.status.code(), Some(1), "{}", text(&deploy));
    let stderr = String::from_utf8_lossy(&deploy.stderr);
    assert!(stderr.contains("FAILED at step start-server"), "{stderr}");
    assert!(stderr.contains("Feedback written to"), "{stderr}");

    // The feedback file: typed, complete, no secret in it.
    let files = feedback_files(&package);
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    for secret in secrets {
        assert!(
            !raw.contains(secret),
            "a secret leaked into feedback:\n{raw}"
        );
    }
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-start-server.yaml"), "{name}");
    let feedback = runbook::load_feedback(&files[0]).unwrap();
    assert_eq!(feedback.phase, runbook::feedback::Phase::Deploy);
    assert_eq!(feedback.step, "start-server");
    assert_eq!(feedback.runbook.name, "postgres");
    assert_eq!(feedback.runbook.version, "1.0.0");
    assert_eq!(feedback.runbook.platform.as_deref(), Some("linux"));
    assert_eq!(feedback.exit_code, Some(1));
    assert!(feedback.command.starts_with("pg_ctl "), "{feedback:#?}");
    assert!(
        feedback.error_excerpt().contains("could not start server"),
        "{feedback:#?}"
    );
    assert_eq!(feedback.package.len(), 64, "the package id: {feedback:#?}");
    let pg_ctl = feedback
        .target
        .tools
        .iter()
        .find(|t| t.tool == "pg_ctl")
        .unwrap();
    assert!(
        pg_ctl.found.as_deref().unwrap().starts_with("15."),
        "{pg_ctl:?}"
    );
    assert!(!feedback.target.kernel.is_empty() && !feedback.target.architecture.is_empty());
    if is_root() {
        assert_eq!(feedback.target.user, "nobody");
    }

    // 3. The operator records what would have caught it.
    let lessons = root.join("lessons");
    let made = runbook(
        root,
        &[
            "feedback",
            files[0].to_str().unwrap(),
            "--lessons",
            lessons.to_str().unwrap(),
            "--id",
            "pg-port-taken",
            "--title",
            "The PostgreSQL port may already be taken on the target",
            "--check",
            PORT_FREE,
            "--cause",
            "Another process listens on the port",
            "--fix",
            "Choose a free port for PGPORT, or stop the other process",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let lesson = runbook::lesson_from_yaml_str(
        &std::fs::read_to_string(lessons.join("pg-port-taken.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(lesson.applies.tools.len(), 1, "{lesson:#?}");
    assert_eq!(lesson.applies.tools[0].tool, "pg_ctl");
    assert_eq!(
        lesson.applies.tools[0].version.as_deref(),
        Some(">=15, <16")
    );
    assert_eq!(lesson.applies.platform.as_deref(), Some("linux"));
    assert_eq!(lesson.origin.step, "start-server");

    // 4. A different runbook that uses pg_ctl is warned...
    let scratch = root.join("pg-scratch.yaml");
    std::fs::copy(
        repo().join("tests/fixtures/feedback/pg-scratch.yaml"),
        &scratch,
    )
    .unwrap();
    let quiet = runbook(root, &["validate", "pg-scratch.yaml"]);
    assert!(quiet.status.success() && !text(&quiet).contains("unaddressed-lesson"));
    let warned = runbook(
        root,
        &[
            "validate",
            "pg-scratch.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
        ],
    );
    assert!(
        warned.status.success(),
        "a warning, not an error: {}",
        text(&warned)
    );
    let out = String::from_utf8_lossy(&warned.stdout);
    assert!(
        out.contains("warning[unaddressed-lesson]") && out.contains("pg-port-taken"),
        "{out}"
    );
    assert!(
        out.contains("pg-scratch.yaml:"),
        "located in the file: {out}"
    );

    // ...and its run stops in pre-flight, naming the lesson, before step 1 changes anything.
    let stopped = runbook(
        root,
        &[
            "run",
            "pg-scratch.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
            "--out",
            "scratch-stopped",
            "--no-rehearsal",
            "--keep",
            "--var",
            &format!("PGPORT={taken_port}"),
        ],
    );
    assert!(!stopped.status.success(), "{}", text(&stopped));
    let all = text(&stopped);
    assert!(all.contains("pg-port-taken"), "{all}");
    assert!(all.contains("pre-flight"), "{all}");
    let sandboxes = runbook(root, &["sandbox", "list"]);
    let id = String::from_utf8_lossy(&sandboxes.stdout)
        .lines()
        .find(|l| l.contains("pg-scratch"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the kept sandbox: {}", text(&sandboxes)));
    let kept_work = root.join("state/local").join(&id).join("work");
    assert!(kept_work.is_dir(), "{}", kept_work.display());
    assert!(
        !kept_work.join("scratch").exists(),
        "step 1 (initdb) must not have run"
    );
    let destroyed = runbook(root, &["sandbox", "destroy", &id]);
    assert!(destroyed.status.success(), "{}", text(&destroyed));

    // 5. With the port free the run passes and its package carries the check.
    let free = common::free_port().to_string();
    let passed = runbook(
        root,
        &[
            "run",
            "pg-scratch.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
            "--out",
            "scratch-package",
            "--no-rehearsal",
            "--var",
            &format!("PGPORT={free}"),
        ],
    );
    assert!(passed.status.success(), "{}", text(&passed));
    let scratch_package = root.join("scratch-package");
    give_to_nobody(&scratch_package);
    let readme = std::fs::read_to_string(scratch_package.join("README.md")).unwrap();
    assert!(
        readme.contains("## Pre-flight checks") && readme.contains("lesson `pg-port-taken`"),
        "{readme}"
    );
    assert!(readme.contains("learnt from postgres 1.0.0"), "{readme}");

    // Its deploy.sh runs the same check on a target whose port is taken: it stops before
    // any change, naming the lesson.
    let target = fresh_dir(root, "scratch-target");
    let scratch_vars = BTreeMap::from([
        ("PGDATA", target.join("data").to_string_lossy().into_owned()),
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", taken_port.clone()),
    ]);
    let refused = script(&scratch_package, "deploy.sh", &[], &target, &scratch_vars);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("lesson `pg-port-taken`"), "{err}");
    assert!(
        err.contains("Pre-flight failed: nothing was changed"),
        "{err}"
    );
    assert!(!target.join("data").exists(), "nothing was created");
    assert!(!target.join(".runbook-journal").exists(), "no step started");
    // The outcome names the pre-flight check that failed, and no step.
    let outcome = std::fs::read_to_string(target.join(".runbook-outcome")).unwrap();
    assert!(
        outcome.starts_with("status=failed\nphase=deploy\nexit=1\ncheck=")
            && outcome.contains("pg-port-taken")
            && outcome.contains("\nreason=expected ")
            && !outcome.contains("step="),
        "{outcome}"
    );

    // On a good target the check passes and the deploy goes through; then roll it back.
    let good_vars = BTreeMap::from([
        ("PGDATA", target.join("data").to_string_lossy().into_owned()),
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", common::free_port().to_string()),
    ]);
    let deployed = script(&scratch_package, "deploy.sh", &[], &target, &good_vars);
    assert!(deployed.status.success(), "{}", text(&deployed));
    assert!(
        String::from_utf8_lossy(&deployed.stdout)
            .contains("ok: The PostgreSQL port may already be taken")
    );
    let rolled_back = script(
        &scratch_package,
        "rollback.sh",
        &["--yes"],
        &target,
        &good_vars,
    );
    assert!(rolled_back.status.success(), "{}", text(&rolled_back));
    drop(taken);

    // 6. `--runbook` amends the runbook itself: the check, the known issue, a minor bump;
    // then validate is quiet.
    std::fs::remove_file(lessons.join("pg-port-taken.yaml")).unwrap();
    let amended = runbook(
        root,
        &[
            "feedback",
            files[0].to_str().unwrap(),
            "--lessons",
            lessons.to_str().unwrap(),
            "--id",
            "pg-port-taken",
            "--check",
            PORT_FREE,
            "--cause",
            "Another process listens on the port",
            "--fix",
            "Choose a free port for PGPORT",
            "--runbook",
            "pg-scratch.yaml",
        ],
    );
    assert!(amended.status.success(), "{}", text(&amended));
    let (rb, _) = runbook::load(&scratch).unwrap();
    assert_eq!(rb.metadata.version, "0.4.0");
    assert_eq!(rb.preflight[0].lesson.as_deref(), Some("pg-port-taken"));
    assert_eq!(
        rb.step("start").unwrap().known_issues[0].lesson.as_deref(),
        Some("pg-port-taken")
    );
    let clean = runbook(
        root,
        &[
            "validate",
            "pg-scratch.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
        ],
    );
    assert!(
        clean.status.success() && !text(&clean).contains("unaddressed-lesson"),
        "{}",
        text(&clean)
    );
    // The same feedback again is refused: the library keeps one lesson per id.
    let again = runbook(
        root,
        &[
            "feedback",
            files[0].to_str().unwrap(),
            "--lessons",
            lessons.to_str().unwrap(),
            "--id",
            "pg-port-taken",
            "--check",
            "true",
        ],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("already has a lesson `pg-port-taken`"));
}

#[test]
fn feedback_masks_secrets_and_survives_hostile_output() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();
    let package = tested_package(
        root,
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: leaky, version: 2.1.0 }
variables:
  - name: API_TOKEN
    category: credential
    generate: true
    production: From your secret manager
  - name: OUT
    category: other
    sandbox: out.txt
    production: Where to write
steps:
  - id: write
    title: Write the file
    run: |
      echo "token=$API_TOKEN" > "$OUT"
      if [ "$OUT" = fail.txt ]; then
        head -c 40000 /dev/zero | tr '\0' 'y'; echo
        head -c 5000 /dev/zero | tr '\0' 'x'; echo
        printf 'quote " backslash \\ tab \t bell \a bad-utf8 \xff\xfe end\n'
        echo "connecting with $API_TOKEN" >&2
        echo "cut short: ${API_TOKEN:0:10} and ${API_TOKEN:3:9}" >&2
        exit 7
      fi
    verify:
      - file: { path: "${OUT}", contains: "token=" }
    rollback:
      run: rm -f "$OUT"
      verify:
        - file: { path: "${OUT}", exists: false }
"#,
    );
    // A read-only package: the feedback goes to the work directory instead.
    std::fs::set_permissions(&package, std::fs::Permissions::from_mode(0o555)).unwrap();
    let work = fresh_dir(root, "work");
    let token = "tok-5b1e9f0c2d";
    let vars = BTreeMap::from([
        ("API_TOKEN", token.to_owned()),
        ("OUT", "fail.txt".to_owned()),
    ]);
    let deploy = script(&package, "deploy.sh", &[], &work, &vars);
    assert_eq!(deploy.status.code(), Some(1), "{}", text(&deploy));
    let files = feedback_files(&work);
    std::fs::set_permissions(&package, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(files.len(), 1, "{}", text(&deploy));
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!raw.contains(token), "{raw}");
    let feedback = runbook::load_feedback(&files[0]).unwrap_or_else(|e| panic!("{e}\n{raw}"));
    assert_eq!(feedback.exit_code, Some(7));
    assert_eq!(feedback.runbook.version, "2.1.0");
    assert_eq!(
        feedback.stderr,
        ["connecting with ***", "cut short: *** and ***"],
        "every piece of 8 characters or more is masked"
    );
    assert_eq!(
        feedback.stdout.len(),
        2,
        "the cut 40 KB line is dropped: {raw}"
    );
    assert_eq!(feedback.stdout[0], "x".repeat(1000), "lines are cut");
    assert!(
        feedback.command.contains("\nif [ \"$OUT\" = fail.txt ]"),
        "{raw}"
    );
    assert!(
        feedback
            .stdout
            .iter()
            .any(|l| l.contains(r#"quote " backslash \"#)),
        "{raw}"
    );
    assert!(feedback.target.tools.is_empty());
}

#[test]
fn a_damaged_feedback_file_is_an_error_with_line_and_column() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();
    std::fs::write(
        root.join("damaged.yaml"),
        "apiVersion: runbook/v1\nkind: Feedback\nrunbook: {name: x}\nphase: deploy\nstep: s\ncommand: c\nexitCode: [oops\n",
    )
    .unwrap();
    std::fs::write(
        root.join("wrong-field.yaml"),
        "apiVersion: runbook/v1\nkind: Feedback\nrunbook: {name: x}\nphase: deplo\nstep: s\ncommand: c\n",
    )
    .unwrap();
    for (file, line) in [("damaged.yaml", ":7:"), ("wrong-field.yaml", ":4:")] {
        let out = runbook(
            root,
            &["feedback", file, "--lessons", "lessons", "--check", "true"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{file}{line}")), "{err}");
        assert!(err.contains("help:"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!root.join("lessons").exists(), "nothing written");
    }
    // No check and no cause/fix: the lesson would change nothing.
    std::fs::write(
        root.join("ok.yaml"),
        "apiVersion: runbook/v1\nkind: Feedback\nrunbook: {name: x}\nphase: verify\nstep: s\ncommand: c\n",
    )
    .unwrap();
    let out = runbook(root, &["feedback", "ok.yaml", "--lessons", "lessons"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("a lesson needs a pre-flight check"),
        "{}",
        text(&out)
    );
    // A misspelt library is said, not taken for an empty one.
    let quickstart = repo().join("examples/quickstart/runbook.yaml");
    let out = runbook(
        root,
        &[
            "validate",
            quickstart.to_str().unwrap(),
            "--lessons",
            "lesons",
        ],
    );
    assert!(out.status.success());
    assert!(
        text(&out).contains("lessons library lesons does not exist"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_daemon_that_keeps_the_step_output_open_does_not_hold_the_script() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();
    let package = tested_package(
        root,
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: daemon }
variables:
  - name: MARK
    category: other
    sandbox: sandbox-mark
    production: A name for the daemon
steps:
  - id: start
    title: Start a daemon that keeps stdout and stderr
    run: |
      (exec -a "rb-daemon-$MARK" sleep 300) &
      echo started
    verify:
      - process: { name: sleep }
    rollback:
      run: pkill -f "rb-daemon-$MARK"
      verify:
        - run: pgrep -f "rb-daemon-$MARK" || echo none
          expect: { stdout: { equals: none } }
"#,
    );
    let work = fresh_dir(root, "work");
    let mark = format!("fb{}", std::process::id());
    // The operator's terminal is a file here: only the script itself is waited for.
    let log = std::fs::File::create(root.join("deploy.log")).unwrap();
    let started = std::time::Instant::now();
    let status = Command::new("bash")
        .arg(package.join("scripts/deploy.sh"))
        .args(if is_root() { &["--as-root"][..] } else { &[] })
        .env_clear()
        .env("PATH", pg_path())
        .env("RUNBOOK_WORK_DIR", &work)
        .env("MARK", &mark)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    let output = std::fs::read_to_string(root.join("deploy.log")).unwrap();
    let _ = Command::new("pkill")
        .args(["-f", &format!("rb-daemon-{mark}")])
        .status();
    assert!(status.success(), "{output}");
    assert!(
        elapsed < std::time::Duration::from_secs(30),
        "deploy.sh waited for the daemon: {elapsed:?}\n{output}"
    );
    assert!(
        output.contains("started"),
        "the step's output is shown: {output}"
    );
}

#[test]
fn a_failing_rollback_writes_feedback_for_its_phase() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();
    let package = tested_package(
        root,
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: plain, version: 0.1.0 }
variables:
  - name: OUT
    category: other
    sandbox: out.txt
    production: Where to write
steps:
  - id: write
    title: Write the file
    run: echo hello > "$OUT"
    verify:
      - file: { path: "${OUT}", contains: hello }
    rollback:
      run: rm -- "$OUT"
      verify:
        - file: { path: "${OUT}", exists: false }
"#,
    );
    give_to_nobody(&package);
    let work = fresh_dir(root, "work");
    let vars = BTreeMap::from([("OUT", "result.txt".to_owned())]);
    let deploy = script(&package, "deploy.sh", &[], &work, &vars);
    assert!(deploy.status.success(), "{}", text(&deploy));
    assert!(
        feedback_files(&package).is_empty(),
        "no failure, no feedback"
    );
    // Somebody removed the file by hand: the rollback's `rm` fails on this target.
    std::fs::remove_file(work.join("result.txt")).unwrap();
    let rollback = script(&package, "rollback.sh", &["--yes"], &work, &vars);
    assert_eq!(rollback.status.code(), Some(1), "{}", text(&rollback));
    let files = feedback_files(&package);
    assert_eq!(files.len(), 1, "{}", text(&rollback));
    let feedback = runbook::load_feedback(&files[0]).unwrap();
    assert_eq!(feedback.phase, runbook::feedback::Phase::Rollback);
    assert_eq!(feedback.step, "write");
    assert_eq!(feedback.command, "rm -- \"$OUT\"");
    assert!(
        feedback.error_excerpt().contains("No such file"),
        "{feedback:#?}"
    );
}

/// A feedback file as `deploy.sh` of the PostgreSQL example writes it when another process
/// holds the port (its stderr ends with the server's log line).
fn port_feedback(root: &Path) -> PathBuf {
    let path = root.join("20261129T172138Z-start-server.yaml");
    std::fs::write(
        &path,
        r#"# What failed on this target, for the runbook's maintainers. Secrets are masked.
apiVersion: runbook/v1
kind: Feedback
package: "787826cb055007d4ba42d57a78f2891f7669c02a0405e6d2082453e4cb25b2f9"
runbook:
  name: "postgres"
  version: "1.0.0"
  platform: "linux"
phase: deploy
step: "start-server"
command: "pg_ctl --pgdata=\"$PGDATA\" --log=\"$PGDATA/server.log\" --wait --timeout=60 start"
exitCode: 1
stderr:
  - "pg_ctl: could not start server"
  - "2026-11-29 17:21:38.197 UTC [6638] FATAL:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
target:
  tools:
    - tool: "pg_ctl"
      required: ">=15, <16"
      found: "15.10"
time: 2026-11-29T17:21:38Z
"#,
    )
    .unwrap();
    path
}

#[test]
fn a_lesson_travels_to_a_runbook_with_other_names_and_is_skipped_where_no_role_fits() {
    let dir = common::workdir("runbook-feedback-");
    let root = dir.path();
    let feedback = port_feedback(root);
    let lessons = root.join("lessons");
    for name in ["pg-other-names.yaml", "pg-socket-only.yaml"] {
        std::fs::copy(
            repo().join("tests/fixtures/feedback").join(name),
            root.join(name),
        )
        .unwrap();
    }

    // 1. The lesson, with the error given and the roles read from the example runbook.
    let made = runbook(
        root,
        &[
            "feedback",
            feedback.to_str().unwrap(),
            "--lessons",
            lessons.to_str().unwrap(),
            "--id",
            "pg-port-taken",
            "--title",
            "The PostgreSQL port may already be taken on the target",
            "--origin",
            repo()
                .join("examples/postgres/runbook.yaml")
                .to_str()
                .unwrap(),
            "--check",
            PORT_FREE,
            "--cause",
            "Another process listens on the port",
            "--fix",
            "Choose a free port for PGPORT, or stop the other process",
            "--error",
            "2026-11-29 17:21:38.197 UTC [6638] FATAL:  could not bind IPv4 address \"127.0.0.1\": Address already in use",
            "--commands",
            r"pg_ctl\b.*\bstart\b",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let out = String::from_utf8_lossy(&made.stdout);
    assert!(
        out.contains("role: `$PGPORT` (TCP port of the server"),
        "{out}"
    );
    let lesson = runbook::lesson_from_yaml_str(
        &std::fs::read_to_string(lessons.join("pg-port-taken.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        lesson.origin.error,
        "FATAL: could not bind IPv4 address \"127.0.0.1\": Address already in use"
    );
    assert_eq!(
        lesson.applies.commands.as_deref(),
        Some(r"pg_ctl\b.*\bstart\b")
    );
    assert_eq!(lesson.roles.len(), 2, "{lesson:#?}");

    // 2. validate names the check with the second runbook's variables.
    let warned = runbook(
        root,
        &[
            "validate",
            "pg-other-names.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
        ],
    );
    assert!(warned.status.success(), "{}", text(&warned));
    let out = String::from_utf8_lossy(&warned.stdout);
    assert!(
        out.contains("warning[unaddressed-lesson]")
            && out.contains("$DB_ADDR/$DB_LISTEN_PORT")
            && !out.contains("$PGPORT\""),
        "{out}"
    );

    // 3. Its run carries the check with its own values: on a taken port it stops in
    // pre-flight (nothing initialised)...
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let stopped = runbook(
        root,
        &[
            "run",
            "pg-other-names.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
            "--out",
            "stopped",
            "--no-rehearsal",
            "--var",
            &format!("DB_LISTEN_PORT={taken_port}"),
        ],
    );
    assert!(!stopped.status.success(), "{}", text(&stopped));
    let all = text(&stopped);
    assert!(
        all.contains("$DB_LISTEN_PORT for $PGPORT") && all.contains("pre-flight"),
        "{all}"
    );
    assert!(!all.contains("undeclared-variable"), "{all}");

    // ...and on a free one it passes, and its package carries the rewritten check.
    let passed = runbook(
        root,
        &[
            "run",
            "pg-other-names.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
            "--out",
            "other-package",
            "--no-rehearsal",
            "--var",
            &format!("DB_LISTEN_PORT={}", common::free_port()),
        ],
    );
    assert!(passed.status.success(), "{}", text(&passed));
    let package = root.join("other-package");
    give_to_nobody(&package);
    let rb = std::fs::read_to_string(package.join("runbook.yaml")).unwrap();
    assert!(rb.contains("$DB_ADDR/$DB_LISTEN_PORT"), "{rb}");
    assert!(rb.contains("free port for DB_LISTEN_PORT"), "{rb}");

    // On a target whose port is taken, deploy.sh refuses before any change and says the
    // lesson's fix.
    let target = fresh_dir(root, "other-target");
    let vars = BTreeMap::from([
        ("DB_DIR", target.join("db").to_string_lossy().into_owned()),
        ("DB_ADDR", "127.0.0.1".to_owned()),
        ("DB_LISTEN_PORT", taken_port.clone()),
    ]);
    let refused = script(&package, "deploy.sh", &[], &target, &vars);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("lesson `pg-port-taken`")
            && err
                .contains("fix: Choose a free port for DB_LISTEN_PORT, or stop the other process")
            && err.contains("Pre-flight failed: nothing was changed"),
        "{err}"
    );
    assert!(!target.join("db").exists());
    drop(taken);

    // 4. A PostgreSQL runbook with no TCP endpoint: validate says the lesson cannot be
    // carried; run skips it with a warning naming it and passes.
    let told = runbook(
        root,
        &[
            "validate",
            "pg-socket-only.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
        ],
    );
    assert!(told.status.success(), "{}", text(&told));
    let out = String::from_utf8_lossy(&told.stdout);
    assert!(
        out.contains("pg-port-taken")
            && out.contains("cannot be carried")
            && out.contains("`$PGPORT`"),
        "{out}"
    );
    let skipped = runbook(
        root,
        &[
            "run",
            "pg-socket-only.yaml",
            "--lessons",
            lessons.to_str().unwrap(),
            "--out",
            "socket-package",
            "--no-rehearsal",
        ],
    );
    assert!(skipped.status.success(), "{}", text(&skipped));
    let err = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        err.contains("warning: lesson `pg-port-taken`") && err.contains("skipped"),
        "{err}"
    );
    let rb = std::fs::read_to_string(root.join("socket-package/runbook.yaml")).unwrap();
    assert!(!rb.contains("pg-port-taken"), "{rb}");

    // 5. A library written before roles still loads: fits by name, skipped elsewhere.
    let old = repo().join("tests/fixtures/feedback/lessons-before-roles");
    let by_name = runbook(
        root,
        &[
            "validate",
            repo()
                .join("tests/fixtures/feedback/pg-scratch.yaml")
                .to_str()
                .unwrap(),
            "--lessons",
            old.to_str().unwrap(),
        ],
    );
    assert!(by_name.status.success(), "{}", text(&by_name));
    assert!(
        text(&by_name).contains("add to `preflight:` an item with `lesson: pg-port-taken`"),
        "{}",
        text(&by_name)
    );
    let elsewhere = runbook(
        root,
        &[
            "validate",
            "pg-other-names.yaml",
            "--lessons",
            old.to_str().unwrap(),
        ],
    );
    assert!(elsewhere.status.success(), "{}", text(&elsewhere));
    assert!(
        text(&elsewhere).contains("states no role"),
        "{}",
        text(&elsewhere)
    );
}
