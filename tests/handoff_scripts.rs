//! The scripts of a handoff package actually work: a package produced from a real
//! sandbox run is deployed, verified and rolled back by its own scripts in a fresh
//! directory, with the variables set as a human would set them.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runbook::exec::{LocalProvider, RunMode, RunOptions, run_all};
use runbook::{Lifetime, Runbook};

use common::{PG_BIN, is_root};

fn example(name: &str) -> Runbook {
    runbook::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name)
            .join("runbook.yaml"),
    )
    .unwrap()
    .0
}

fn open_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("runbook-handoff-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Runs a real sandbox test of `runbook` and writes its package under `dir`.
async fn tested_package(runbook: Runbook, vars: BTreeMap<String, String>, dir: &Path) -> PathBuf {
    let provider = LocalProvider::with_root(dir.join("state")).path(common::pg_path());
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        vars,
        ..RunOptions::default()
    };
    let outcome = run_all(
        &provider,
        runbook,
        options,
        RunMode {
            exercise_rollback: true,
            ..RunMode::default()
        },
    )
    .await
    .unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.report);
    let rollback = outcome.report.rollback.as_ref().unwrap();
    assert_eq!(
        rollback.verdict,
        runbook::report::Verdict::Passed,
        "{rollback:#?}"
    );
    let package = dir.join("handoff-package");
    runbook::write_package(&outcome, &package, false).unwrap();
    package
}

/// A fresh work directory, owned by the user the scripts run as.
fn work_dir(parent: &Path) -> PathBuf {
    let work = parent.join("fresh-work");
    std::fs::create_dir(&work).unwrap();
    if is_root() {
        let nobody = nix_user("nobody");
        std::os::unix::fs::chown(&work, Some(nobody.0), Some(nobody.1)).unwrap();
    }
    work
}

fn nix_user(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap();
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// Runs a package script like a human would: a clean environment with the variables set.
/// As root, it runs as `nobody` (PostgreSQL refuses to run as root).
fn script(package: &Path, name: &str, work: &Path, vars: &BTreeMap<String, String>) -> Output {
    script_with(package, name, &[], work, vars, &common::pg_path())
}

/// [`script`] with arguments and a `PATH` of its own.
fn script_with(
    package: &Path,
    name: &str,
    args: &[&str],
    work: &Path,
    vars: &BTreeMap<String, String>,
    path: &str,
) -> Output {
    common::operator_script(package, name, args, work, vars, path)
}

fn assert_ok(name: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{name} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn quickstart_scripts_deploy_verify_and_roll_back() {
    let dir = open_dir();
    let package = tested_package(example("quickstart"), BTreeMap::new(), dir.path()).await;
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        ("APP_DIR".to_owned(), "heartbeat".to_owned()),
        ("APP_PORT".to_owned(), "9191".to_owned()),
        // Not the sandbox's format (32 hex characters): checks must follow the value.
        ("API_TOKEN".to_owned(), "prod/Token-42_not+hex".to_owned()),
    ]);
    // Without the variables, the scripts refuse and point at the checklist.
    let refused = script(&package, "deploy.sh", &work, &BTreeMap::new());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("see adaptation-checklist.md"));

    let deploy = script(&package, "deploy.sh", &work, &vars);
    assert_ok("deploy.sh", &deploy);
    let stdout = String::from_utf8_lossy(&deploy.stdout);
    assert!(
        stdout.contains("==> [1/2] Install the configuration (install-config)"),
        "{stdout}"
    );
    assert_eq!(outcome(&work), "status=passed\nphase=deploy\nexit=0\n");
    let conf = std::fs::read_to_string(work.join("heartbeat/app.conf")).unwrap();
    assert!(
        conf.contains("port=9191") && conf.contains("token=prod/Token-42_not+hex"),
        "{conf}"
    );
    let pid: i32 = std::fs::read_to_string(work.join("heartbeat/worker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // Checks are repeatable: verify twice.
    assert_ok("verify.sh", &script(&package, "verify.sh", &work, &vars));
    assert_ok(
        "verify.sh again",
        &script(&package, "verify.sh", &work, &vars),
    );
    // The rendered config holds the token: only its owner may read it.
    let mode = std::fs::metadata(work.join("config/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // --again repeats the deploy without a second worker.
    assert_ok(
        "deploy.sh --again",
        &script_with(
            &package,
            "deploy.sh",
            &["--again"],
            &work,
            &vars,
            &common::pg_path(),
        ),
    );
    assert_eq!(
        std::fs::read_to_string(work.join("heartbeat/worker.pid"))
            .unwrap()
            .trim(),
        pid.to_string(),
        "a second deploy started another worker"
    );
    // --from resumes at a step: the earlier ones are not run again.
    let resumed = {
        let mut c = Command::new("bash");
        c.arg(package.join("scripts/verify.sh"))
            .arg("--from")
            .arg("start-worker")
            .env_clear()
            .env("PATH", common::pg_path())
            .env("RUNBOOK_WORK_DIR", &work)
            .envs(&vars);
        c.output().unwrap()
    };
    let out = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success()
            && out.contains("[2/2] Start the worker")
            && !out.contains("[1/2]"),
        "{out}"
    );
    let unknown = {
        let mut c = Command::new("bash");
        c.arg(package.join("scripts/deploy.sh"))
            .arg("--from")
            .arg("nope")
            .env_clear()
            .env("PATH", common::pg_path())
            .envs(&vars);
        c.output().unwrap()
    };
    assert_eq!(unknown.status.code(), Some(2));

    // Deploying again is refused: the journal says it is done.
    let again = script(&package, "deploy.sh", &work, &vars);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("Already deployed"));
    let refusal = outcome(&work);
    assert!(
        refusal.starts_with("status=refused\nphase=deploy\nexit=3\nreason=Already deployed: "),
        "{refusal}"
    );
    // Without a terminal and without --yes, rollback changes nothing.
    let refused = script(&package, "rollback.sh", &work, &vars);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(
        outcome(&work).starts_with("status=refused\nphase=rollback\nexit=2\nreason=refusing: "),
        "{}",
        outcome(&work)
    );
    assert!(work.join("heartbeat/app.conf").exists());
    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &common::pg_path(),
    );
    assert_ok("rollback.sh", &rollback);
    assert!(
        String::from_utf8_lossy(&rollback.stdout)
            .contains("This rolls back, in this order: start-worker install-config"),
        "{}",
        String::from_utf8_lossy(&rollback.stdout)
    );
    assert!(
        !work.join("heartbeat").exists(),
        "rollback leaves nothing behind"
    );
    let after = script(&package, "verify.sh", &work, &vars);
    assert_eq!(
        after.status.code(),
        Some(1),
        "verify.sh passes after a rollback"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    // verify.sh failing after the rollback wrote feedback files (the package is not
    // writable by the operator here, so into the work directory).
    let (feedback, rest): (Vec<String>, Vec<String>) = files_under(&work)
        .into_iter()
        .partition(|f| f.starts_with("feedback/"));
    assert_eq!(
        rest,
        [".runbook-journal", ".runbook-lock", ".runbook-outcome"],
        "the rendered config files are removed with their step; the journal, the lock and \
         the outcome stay"
    );
    // The outcome names the first failure: the step, the check, why (the token masked).
    let failed = outcome(&work);
    assert!(
        failed.starts_with(
            "status=failed\nphase=verify\nexit=1\nstep=install-config\n\
             check=the configured port is the one asked for\nreason=expected exit code 0, "
        ) && failed.lines().count() == 6,
        "{failed}"
    );
    assert!(!feedback.is_empty());
    for f in feedback {
        let fb = runbook::load_feedback(work.join(&f)).unwrap();
        assert_eq!(fb.phase, runbook::feedback::Phase::Verify, "{f}");
    }
}

#[tokio::test]
async fn postgres_scripts_deploy_verify_and_roll_back_on_another_port_and_data_dir() {
    let dir = open_dir();
    let sandbox_vars = BTreeMap::from([("PGPORT".to_owned(), common::free_port().to_string())]);
    let package = tested_package(example("postgres"), sandbox_vars, dir.path()).await;
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "PGDATA".to_owned(),
            work.join("data-prod").to_string_lossy().into_owned(),
        ),
        ("PGHOST".to_owned(), "127.0.0.1".to_owned()),
        ("PGPORT".to_owned(), common::free_port().to_string()),
        ("APP_DB".to_owned(), "shop".to_owned()),
        ("APP_USER".to_owned(), "shop_app".to_owned()),
        (
            "PG_SUPERUSER_PASSWORD".to_owned(),
            "handoff-super-pw".to_owned(),
        ),
        ("APP_PASSWORD".to_owned(), "handoff-app-pw".to_owned()),
    ]);
    let deploy = script(&package, "deploy.sh", &work, &vars);
    assert_ok("deploy.sh", &deploy);
    assert!(work.join("data-prod/PG_VERSION").exists());
    assert_ok("verify.sh", &script(&package, "verify.sh", &work, &vars));
    assert_ok(
        "verify.sh again",
        &script(&package, "verify.sh", &work, &vars),
    );
    // Re-running everything fails at the first step (initdb will not touch a cluster);
    // the journal still knows every step that is deployed, the first one included: it
    // completed once, and what it made is there (issue 24, finding 4).
    let again = script_with(
        &package,
        "deploy.sh",
        &["--again"],
        &work,
        &vars,
        &common::pg_path(),
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("FAILED at step init-cluster"));
    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &common::pg_path(),
    );
    assert_ok("rollback.sh", &rollback);
    assert!(
        !String::from_utf8_lossy(&rollback.stderr).contains("Not rolled back"),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    assert!(
        !work.join("data-prod").exists(),
        "rollback removes the data directory the first deploy created"
    );
    let ready = Command::new(format!("{PG_BIN}/pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &vars["PGPORT"]])
        .output()
        .unwrap();
    assert_eq!(ready.status.code(), Some(2), "the server is stopped");
}

/// The outcome the last script wrote in the work directory `work`.
fn outcome(work: &Path) -> String {
    std::fs::read_to_string(work.join(".runbook-outcome")).unwrap()
}

/// Every regular file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// A tool on a PATH of its own that prints `version`.
fn fake_tool(dir: &Path, version: &str) -> String {
    let bin = dir.join(format!("bin-{version}"));
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("fake-tool");
    std::fs::write(
        &tool,
        format!("#!/bin/sh\necho \"fake-tool version {version}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), common::pg_path())
}

/// Production fails at step 2 of 3, where a data directory already exists: the deploy
/// stops at the failing line, rollback asks first, reverts only the step that completed,
/// and the data that was there before survives.
#[tokio::test]
async fn a_partial_failure_rolls_back_only_what_completed_and_spares_existing_data() {
    let dir = open_dir();
    let rb: Runbook = runbook::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: partial }
prerequisites:
  - tool: fake-tool
    version: ">=2, <3"
variables:
  - { name: APP_DIR, category: other, sandbox: app, production: the app directory }
  - { name: DATA_DIR, category: other, sandbox: data, production: the data directory }
steps:
  - id: install
    title: Install the app
    run: mkdir -p "$APP_DIR" && echo v1 > "$APP_DIR/version"
    verify: [{ run: cat "$APP_DIR/version", expect: { stdout: { equals: v1 } } }]
    rollback:
      run: rm -rf "$APP_DIR"
      verify: [{ run: test ! -e "$APP_DIR", expect: { exitCode: 0 } }]
  - id: init-data
    title: Initialise the data directory
    run: |
      mkdir "$DATA_DIR"
      echo initialised > "$DATA_DIR/state"
    verify: [{ run: cat "$DATA_DIR/state", expect: { stdout: { equals: initialised } } }]
    rollback: { run: rm -rf "$DATA_DIR" }
  - id: finish
    title: Mark the install done
    run: echo done > "$APP_DIR/done"
    verify: [{ run: cat "$APP_DIR/done", expect: { stdout: { equals: done } } }]
    rollback: { run: rm -f "$APP_DIR/done" }
"#,
    )
    .unwrap();
    let sandbox_path = fake_tool(dir.path(), "2.1.0");
    let provider_dir = dir.path().join("sandbox");
    std::fs::create_dir_all(&provider_dir).unwrap();
    std::fs::set_permissions(&provider_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let package = {
        let provider = LocalProvider::with_root(provider_dir.join("state")).path(&sandbox_path);
        let outcome = run_all(
            &provider,
            rb,
            RunOptions {
                lifetime: Some(Lifetime::Ephemeral),
                ..RunOptions::default()
            },
            RunMode::default(),
        )
        .await
        .unwrap();
        assert!(outcome.passed(), "{:#?}", outcome.report);
        let package = dir.path().join("handoff-package");
        runbook::write_package(&outcome, &package, false).unwrap();
        package
    };
    let work = work_dir(dir.path());
    let data = work.join("prod-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "the customer's data").unwrap();
    let vars = BTreeMap::from([
        (
            "APP_DIR".to_owned(),
            work.join("prod-app").to_string_lossy().into_owned(),
        ),
        ("DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
    ]);

    // A too-old tool stops deploy.sh before step 1; so does a missing one.
    for (path, said) in [
        (
            fake_tool(dir.path(), "1.9.0"),
            "fake-tool 1.9.0 does not satisfy >=2, <3",
        ),
        (common::pg_path(), "is fake-tool installed"),
    ] {
        let out = script_with(&package, "deploy.sh", &[], &work, &vars, &path);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(said) && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert!(!work.join("prod-app").exists(), "pre-flight let step 1 run");
    }
    let target_path = fake_tool(dir.path(), "2.4.0");

    let deploy = script_with(&package, "deploy.sh", &[], &work, &vars, &target_path);
    assert_eq!(deploy.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&deploy.stderr);
    assert!(stderr.contains("FAILED at step init-data"), "{stderr}");
    assert!(
        !data.join("state").exists(),
        "the step went on past its failing line"
    );
    assert!(!work.join("prod-app/done").exists(), "step 3 ran");

    // No terminal, no --yes: nothing changes.
    let refused = script_with(&package, "rollback.sh", &[], &work, &vars, &target_path);
    assert_eq!(refused.status.code(), Some(2));
    assert!(work.join("prod-app/version").exists());

    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &target_path,
    );
    assert_ok("rollback.sh", &rollback);
    let stdout = String::from_utf8_lossy(&rollback.stdout);
    assert!(
        stdout.contains("This rolls back, in this order: install\n"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&rollback.stderr)
            .contains("Not rolled back: init-data started but did not complete"),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    assert!(!work.join("prod-app").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("precious")).unwrap(),
        "the customer's data"
    );
    // Rolling back again finds nothing to do.
    let again = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &target_path,
    );
    assert_ok("rollback.sh again", &again);
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing to roll back"));
    // As root, where the sandbox ran unprivileged, the scripts refuse.
    if is_root() {
        let out = Command::new("bash")
            .arg(package.join("scripts/deploy.sh"))
            .env_clear()
            .env("PATH", &target_path)
            .env("RUNBOOK_WORK_DIR", &work)
            .envs(&vars)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to run as root"));
    }
}

/// The notification stack (PostgreSQL, two Redis, the app) deployed by its own scripts on
/// other ports, names and passwords than the sandbox's, checked twice, rolled back.
#[tokio::test]
async fn notification_stack_scripts_work_with_production_like_values() {
    let dir = open_dir();
    let sandbox_vars = BTreeMap::from([
        ("DB_PORT".to_owned(), common::free_port().to_string()),
        ("CACHE_PORT".to_owned(), common::free_port().to_string()),
        ("QUEUE_PORT".to_owned(), common::free_port().to_string()),
    ]);
    let package = tested_package(example("notification-stack"), sandbox_vars, dir.path()).await;
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "PGDATA".to_owned(),
            work.join("pg-prod").to_string_lossy().into_owned(),
        ),
        ("DB_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("DB_PORT".to_owned(), common::free_port().to_string()),
        ("CACHE_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("CACHE_PORT".to_owned(), common::free_port().to_string()),
        ("QUEUE_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("QUEUE_PORT".to_owned(), common::free_port().to_string()),
        ("APP_DB".to_owned(), "notify_prod".to_owned()),
        ("APP_USER".to_owned(), "notify_prod_app".to_owned()),
        (
            "PG_SUPERUSER_PASSWORD".to_owned(),
            "prod super pw with spaces".to_owned(),
        ),
        ("APP_PASSWORD".to_owned(), "prod-app-pw'quote".to_owned()),
        ("REDIS_PASSWORD".to_owned(), "prod-redis-pw".to_owned()),
    ]);
    assert_ok("deploy.sh", &script(&package, "deploy.sh", &work, &vars));
    assert_ok("verify.sh", &script(&package, "verify.sh", &work, &vars));
    assert_ok(
        "verify.sh again",
        &script(&package, "verify.sh", &work, &vars),
    );
    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &common::pg_path(),
    );
    assert_ok("rollback.sh", &rollback);
    assert!(!work.join("pg-prod").exists(), "the data directory is gone");
    for port in [&vars["CACHE_PORT"], &vars["QUEUE_PORT"], &vars["DB_PORT"]] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
            "something still listens on {port}"
        );
    }
}

/// The upgrade path on a target: the v1 package, then the v2 upgrade package, each with
/// other values than the sandbox's; the upgrade verifies twice (its checks change
/// nothing), rolls back to v1 exactly, and v1 rolls back to nothing.
#[tokio::test]
async fn upgrade_scripts_upgrade_and_roll_back_to_v1_exactly() {
    use runbook::exec::Session;
    let dir = open_dir();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::set_permissions(
        dir.path().join("state"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let provider = LocalProvider::with_root(dir.path().join("state")).path(common::pg_path());
    let load = |file: &str| {
        runbook::load(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/upgrade")
                .join(file),
        )
        .unwrap()
        .0
    };
    let options = |lifetime| RunOptions {
        lifetime,
        vars: BTreeMap::from([("DB_PORT".to_owned(), common::free_port().to_string())]),
        ..RunOptions::default()
    };
    // v1 in a persistent sandbox, then the upgrade in the same sandbox.
    let v1 = run_all(
        &provider,
        load("v1.yaml"),
        options(Some(Lifetime::Persistent)),
        RunMode::default(),
    )
    .await
    .unwrap();
    assert!(v1.passed(), "{:#?}", v1.report);
    let id = v1.report.sandbox.id.clone();
    let mut session = Session::resume(
        &provider,
        &id,
        Some(load("runbook.yaml")),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert!(session.run_remaining().await.unwrap());
    assert_eq!(
        session.rollback().await.unwrap().verdict,
        runbook::report::Verdict::Passed
    );
    let v2 = session.finish().await.unwrap();
    runbook::write_package(&v1, &dir.path().join("v1-package"), false).unwrap();
    runbook::write_package(&v2, &dir.path().join("v2-package"), false).unwrap();
    runbook::exec::Provider::destroy(&provider, &id)
        .await
        .unwrap();

    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "PGDATA".to_owned(),
            work.join("orders-prod").to_string_lossy().into_owned(),
        ),
        ("DB_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("DB_PORT".to_owned(), common::free_port().to_string()),
        (
            "PG_SUPERUSER_PASSWORD".to_owned(),
            "prod-orders-super".to_owned(),
        ),
    ]);
    let (v1_pkg, v2_pkg) = (dir.path().join("v1-package"), dir.path().join("v2-package"));
    // Each package keeps its own journal: separate work directories for the scripts'
    // relative paths, the same data directory (absolute) and server.
    let v2_work = work.join("upgrade");
    std::fs::create_dir(&v2_work).unwrap();
    if is_root() {
        let nobody = nix_user("nobody");
        std::os::unix::fs::chown(&v2_work, Some(nobody.0), Some(nobody.1)).unwrap();
    }
    assert_ok("v1 deploy.sh", &script(&v1_pkg, "deploy.sh", &work, &vars));
    assert_ok(
        "v2 deploy.sh",
        &script(&v2_pkg, "deploy.sh", &v2_work, &vars),
    );
    assert_ok(
        "v2 verify.sh",
        &script(&v2_pkg, "verify.sh", &v2_work, &vars),
    );
    assert_ok(
        "v2 verify.sh again",
        &script(&v2_pkg, "verify.sh", &v2_work, &vars),
    );
    let rollback = script_with(
        &v2_pkg,
        "rollback.sh",
        &["--yes"],
        &v2_work,
        &vars,
        &common::pg_path(),
    );
    assert_ok("v2 rollback.sh", &rollback);
    // Back to v1 exactly: v1's own checks pass again, the v2 columns and rows are gone.
    assert_ok(
        "v1 verify.sh after the v2 rollback",
        &script(&v1_pkg, "verify.sh", &work, &vars),
    );
    let columns = Command::new(format!("{PG_BIN}/psql"))
        .args(["--host=127.0.0.1", &format!("--port={}", vars["DB_PORT"]), "--username=postgres", "-tAc"])
        .arg("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) || ' ' || (SELECT count(*) FROM orders) FROM information_schema.columns WHERE table_name = 'orders'")
        .env("PGPASSWORD", &vars["PG_SUPERUSER_PASSWORD"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&columns.stdout).trim(),
        "id,customer,amount_cents 10000"
    );
    assert_ok(
        "v1 rollback.sh",
        &script_with(
            &v1_pkg,
            "rollback.sh",
            &["--yes"],
            &work,
            &vars,
            &common::pg_path(),
        ),
    );
    assert!(!work.join("orders-prod").exists());
}

/// A runbook for attacking the scripts' own state: step one renders a config file,
/// counts its runs and holds for `$HOLD` seconds; step two starts a daemon.
fn guarded() -> Runbook {
    runbook::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: guarded }
variables:
  - { name: APP_DIR, category: other, sandbox: app, production: the app directory }
  - { name: HOLD, category: other, sandbox: "0", production: seconds step one takes }
configFiles:
  - path: config/app.conf
    content: "dir=${APP_DIR}\n"
steps:
  - id: first
    title: Install the app
    files: [config/app.conf]
    run: |
      echo ran >> first.count
      mkdir -p "$APP_DIR" && cp config/app.conf "$APP_DIR/app.conf"
      sleep "$HOLD"
    verify: [{ run: test -s "$APP_DIR/app.conf", expect: { exitCode: 0 } }]
    rollback: { run: rm -rf "$APP_DIR" }
  - id: second
    title: Start the daemon
    run: |
      nohup sleep 300 > /dev/null 2>&1 &
      echo $! > daemon.pid
    verify: [{ run: kill -0 "$(cat daemon.pid)", expect: { exitCode: 0 } }]
    rollback: { run: kill "$(cat daemon.pid)" && rm -f daemon.pid }
"#,
    )
    .unwrap()
}

/// The package of `runbook` rendered without a sandbox run: what these tests attack is the
/// scripts' handling of their work directory, the same in a tested package.
fn untested_package(runbook: &Runbook, dir: &Path) -> PathBuf {
    let package = dir.join("handoff-package");
    runbook::render::Package::render(runbook, None, &[])
        .unwrap()
        .write_to(&package, false)
        .unwrap();
    package
}

/// Writes `path` as the user the scripts run as would have: theirs to change.
fn plant(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    if is_root() {
        let nobody = nix_user("nobody");
        std::os::unix::fs::chown(path, Some(nobody.0), Some(nobody.1)).unwrap();
    }
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// A journal line is data: ids and paths planted in the journal that are not the
/// runbook's (command substitutions, an array subscript, a path out of the work
/// directory) are ignored with a warning; none runs, nothing outside is removed, and
/// deploy and rollback still do their work.
#[test]
fn a_journal_line_is_data_never_code() {
    let dir = open_dir();
    let package = untested_package(&guarded(), dir.path());
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "APP_DIR".to_owned(),
            work.join("app").to_string_lossy().into_owned(),
        ),
        ("HOLD".to_owned(), "0".to_owned()),
    ]);
    // A file outside the work directory that the operator may remove.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    if is_root() {
        let nobody = nix_user("nobody");
        std::os::unix::fs::chown(&outside, Some(nobody.0), Some(nobody.1)).unwrap();
    }
    plant(&outside.join("precious"), "keep me\n");
    let markers: Vec<PathBuf> = (1..=7).map(|n| work.join(format!("pwned-{n}"))).collect();
    let m = |n: usize| markers[n - 1].display().to_string();
    let hostile = format!(
        "started $(touch${{IFS}}{})\n\
         completed x[$(touch${{IFS}}{})]\n\
         rolledback $(touch${{IFS}}{})\n\
         started first $(touch${{IFS}}{})\n\
         file $(touch${{IFS}}{}) config/app.conf\n\
         $(touch${{IFS}}{}) first\n\
         completed a[$(touch${{IFS}}{})]\n\
         file first ../../outside/precious\n",
        m(1),
        m(2),
        m(3),
        m(4),
        m(5),
        m(6),
        m(7)
    );
    let journal = work.join(".runbook-journal");
    plant(&journal, &hostile);

    let deploy = script(&package, "deploy.sh", &work, &vars);
    for marker in &markers {
        assert!(!marker.exists(), "a journal line ran code: {marker:?}");
    }
    assert_ok("deploy.sh", &deploy);
    let stderr = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        stderr.contains("WARNING: ignored line 1 of") && stderr.contains("ignored line 8 of"),
        "{stderr}"
    );
    assert_eq!(lines_of(&work.join("first.count")), 1);
    assert!(work.join("app/app.conf").exists());

    // Planted again after the deploy, in front of rollback.sh.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(&hostile);
    std::fs::write(&journal, text).unwrap();
    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &common::pg_path(),
    );
    for marker in &markers {
        assert!(!marker.exists(), "a journal line ran code: {marker:?}");
    }
    assert_ok("rollback.sh", &rollback);
    assert!(
        String::from_utf8_lossy(&rollback.stdout)
            .contains("This rolls back, in this order: second first"),
        "{}",
        String::from_utf8_lossy(&rollback.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me\n",
        "a journal line removed a file outside the work directory"
    );
    assert!(!work.join("app").exists() && !work.join("daemon.pid").exists());
    assert!(
        !work.join("config/app.conf").exists(),
        "the config file the journal names is still removed"
    );
}

/// One deploy at a time: two started together (with --again, so that nothing but the
/// lock stops the second), step one runs exactly once and the second refuses at once,
/// naming the lock. The daemon step two starts does not keep the lock: rollback.sh runs.
#[test]
fn two_deploys_at_once_run_step_one_once() {
    let dir = open_dir();
    let package = untested_package(&guarded(), dir.path());
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "APP_DIR".to_owned(),
            work.join("app").to_string_lossy().into_owned(),
        ),
        ("HOLD".to_owned(), "3".to_owned()),
    ]);
    let deploy = || {
        script_with(
            &package,
            "deploy.sh",
            &["--again"],
            &work,
            &vars,
            &common::pg_path(),
        )
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(deploy);
        let b = s.spawn(deploy);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        lines_of(&work.join("first.count")),
        1,
        "step one ran twice:\n{}\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    let (ok, refused) = if a.status.success() { (a, b) } else { (b, a) };
    assert_ok("the first deploy.sh", &ok);
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("{}/.runbook-lock", work.display()))
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("==>"));

    let rollback = script_with(
        &package,
        "rollback.sh",
        &["--yes"],
        &work,
        &vars,
        &common::pg_path(),
    );
    assert_ok("rollback.sh after the deploy", &rollback);
    assert!(!work.join("app").exists() && !work.join("daemon.pid").exists());
}

/// A journal, a lock file or a work directory that is a symbolic link is refused, and
/// nothing is written through it.
#[test]
fn a_journal_lock_or_work_directory_that_is_a_link_is_refused() {
    let dir = open_dir();
    let package = untested_package(&guarded(), dir.path());
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "APP_DIR".to_owned(),
            work.join("app").to_string_lossy().into_owned(),
        ),
        ("HOLD".to_owned(), "0".to_owned()),
    ]);
    // Another file the operator may write, where the links point.
    let other = dir.path().join("other");
    plant(&other, "precious\n");
    let refused = |work: &Path, script: &str, what: &str| {
        let out = script_with(
            &package,
            script,
            &["--yes"],
            work,
            &vars,
            &common::pg_path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{script}: {stderr}");
        assert!(
            stderr.contains(&format!("refusing: {what}")) && stderr.contains("symbolic link"),
            "{script}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "precious\n");
    };
    let deploy_refused = |work: &Path, what: &str| {
        let out = script(&package, "deploy.sh", work, &vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "deploy.sh: {stderr}");
        assert!(
            stderr.contains(&format!("refusing: {what}")) && stderr.contains("symbolic link"),
            "deploy.sh: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "precious\n");
    };

    for (name, what) in [
        (".runbook-journal", "the journal"),
        (".runbook-lock", "the lock file"),
    ] {
        let link = work.join(name);
        std::os::unix::fs::symlink(&other, &link).unwrap();
        deploy_refused(&work, what);
        refused(&work, "rollback.sh", what);
        std::fs::remove_file(&link).unwrap();
    }
    assert!(
        !work.join("first.count").exists() && !work.join("config").exists(),
        "a refused deploy changed something"
    );

    let linked_work = dir.path().join("linked-work");
    std::os::unix::fs::symlink(&work, &linked_work).unwrap();
    deploy_refused(&linked_work, "the work directory");
    refused(&linked_work, "rollback.sh", "the work directory");
    assert!(!work.join(".runbook-journal").exists());
    // Without the links, the same deploy works.
    assert_ok("deploy.sh", &script(&package, "deploy.sh", &work, &vars));
    assert_ok(
        "rollback.sh",
        &script_with(
            &package,
            "rollback.sh",
            &["--yes"],
            &work,
            &vars,
            &common::pg_path(),
        ),
    );
}

/// `.runbook-outcome` says how a script ended, for a program to read: replaced whole, never
/// written through a link planted in its place, every secret (and every piece of one)
/// masked, one line a key. A script refused for a linked work directory writes none.
#[test]
fn the_outcome_is_one_line_a_key_masked_and_never_written_through_a_link() {
    let dir = open_dir();
    let runbook = runbook::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: outcome }
variables:
  - { name: API_TOKEN, category: credential, generate: true, production: your token }
steps:
  - id: show
    title: Show the token
    run: "true"
    verify:
      - name: the token is there
        run: printf 'token %s\nand %s\n' "$API_TOKEN" "${API_TOKEN:2:9}"
        expect: { stdout: { equals: nothing } }
"#,
    )
    .unwrap();
    let package = untested_package(&runbook, dir.path());
    let work = work_dir(dir.path());
    let token = "tok-0a1b2c3d4e5f";
    let vars = BTreeMap::from([("API_TOKEN".to_owned(), token.to_owned())]);
    let other = dir.path().join("other");
    plant(&other, "precious\n");
    let link = work.join(".runbook-outcome");
    std::os::unix::fs::symlink(&other, &link).unwrap();

    for name in ["deploy.sh", "verify.sh"] {
        let out = script(&package, name, &work, &vars);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let text = outcome(&work);
        let phase = name.trim_end_matches(".sh");
        assert_eq!(
            text,
            format!(
                "status=failed\nphase={phase}\nexit=1\nstep=show\ncheck=the token is there\n\
                 reason=expected exit code 0, stdout equals \"nothing\"; saw stdout \"token *** \
                 and ***\" (after 1 attempt(s))\n"
            ),
            "{name}"
        );
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&other, &link).unwrap();
    }
    // Nothing else is left in the work directory: no temporary file of the outcome.
    let names: Vec<String> = files_under(&work)
        .into_iter()
        .filter(|f| !f.starts_with("feedback/"))
        .collect();
    assert_eq!(
        names,
        [".runbook-journal", ".runbook-lock", ".runbook-outcome"]
    );

    // A work directory that is a link: refused before anything is written there.
    std::fs::remove_file(&link).unwrap();
    let linked = dir.path().join("linked-work");
    std::os::unix::fs::symlink(&work, &linked).unwrap();
    let out = script(&package, "verify.sh", &linked, &vars);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "an outcome was written through the linked work directory"
    );
}

/// The scripts limit a check attempt as the sandbox does (Retry::attempt_limit): the time
/// left until `within`, else the check timeout. A hanging check fails at its deadline in
/// one attempt, not at `RUNBOOK_CHECK_TIMEOUT`; a slow one that `within` allows is not cut
/// at it.
#[test]
fn a_check_attempt_ends_at_its_deadline_not_the_check_timeout() {
    let dir = open_dir();
    let runbook = runbook::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: deadline }
steps:
  - id: slow
    title: A slow check
    run: "true"
    readOnly: true
    verify: [{ name: slow, run: sleep 2 && echo done, expect: { stdout: { equals: done } }, within: 5s }]
  - id: hangs
    title: A check that hangs
    run: "true"
    readOnly: true
    verify: [{ name: hangs, run: sleep 10, within: 3s }]
"#,
    )
    .unwrap();
    let package = untested_package(&runbook, dir.path());
    let work = work_dir(dir.path());
    for timeout in ["1", "60"] {
        let vars = [("RUNBOOK_CHECK_TIMEOUT", timeout)];
        let started = std::time::Instant::now();
        let out = script_with(
            &package,
            "verify.sh",
            &[],
            &work,
            &BTreeMap::from(vars.map(|(k, v)| (k.to_owned(), v.to_owned()))),
            &common::pg_path(),
        );
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "check timeout {timeout}");
        let text = outcome(&work);
        assert!(
            text.contains("step=hangs\n")
                && text.contains("saw exit code 124 (after 1 attempt(s))"),
            "check timeout {timeout}: {text}"
        );
        // The slow check (2 s) passed, the hanging one took its 3 s.
        assert!(
            (std::time::Duration::from_millis(4500)..std::time::Duration::from_secs(9))
                .contains(&took),
            "check timeout {timeout}: {took:?}"
        );
    }
}

/// A primary and a standby, as files: the PostgreSQL replication story of issue 24 without
/// the server. `init-primary` fails on a data directory that exists (as initdb does),
/// `configure-primary`'s check on a port that is not a number, `start-standby` half-way
/// (after creating its directory) when the standby is given the primary's port.
fn replica() -> Runbook {
    runbook::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: replica }
variables:
  - { name: PRIMARY_DIR, category: other, sandbox: primary, production: the primary's data directory }
  - { name: STANDBY_DIR, category: other, sandbox: standby, production: the standby's data directory }
  - { name: PORT, category: other, sandbox: "5432", production: the primary's port }
  - { name: STANDBY_PORT, category: other, sandbox: "5433", production: the standby's port }
steps:
  - id: init-primary
    title: Initialise the primary
    run: |
      mkdir "$PRIMARY_DIR"
      echo 15 > "$PRIMARY_DIR/PG_VERSION"
    verify: [{ run: test -s "$PRIMARY_DIR/PG_VERSION", expect: { exitCode: 0 } }]
    rollback: { run: rm -rf "$PRIMARY_DIR" }
  - id: configure-primary
    title: Configure the primary
    run: echo "port=$PORT" > "$PRIMARY_DIR/postgresql.conf"
    verify:
      - run: grep -qx 'port=[0-9][0-9]*' "$PRIMARY_DIR/postgresql.conf"
        expect: { exitCode: 0 }
    rollback: { run: rm -f "$PRIMARY_DIR/postgresql.conf" }
  - id: start-standby
    title: Start the standby
    run: |
      mkdir "$STANDBY_DIR"
      test "$STANDBY_PORT" != "$PORT"
      echo "port=$STANDBY_PORT" > "$STANDBY_DIR/postgresql.conf"
    verify: [{ run: test -s "$STANDBY_DIR/postgresql.conf", expect: { exitCode: 0 } }]
    rollback: { run: rm -rf "$STANDBY_DIR" }
"#,
    )
    .unwrap()
}

/// The replica's values on a target: its directories under `work`, the ports given.
fn replica_values(work: &Path, port: &str, standby_port: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "PRIMARY_DIR".to_owned(),
            work.join("pg-main").to_string_lossy().into_owned(),
        ),
        (
            "STANDBY_DIR".to_owned(),
            work.join("pg-replica").to_string_lossy().into_owned(),
        ),
        ("PORT".to_owned(), port.to_owned()),
        ("STANDBY_PORT".to_owned(), standby_port.to_owned()),
    ])
}

/// Runs a package script as an operator: not root (as root, `nobody`, through `setpriv`),
/// umask 022, a clean environment with `vars`. With `terminal`, on a terminal (`script`
/// from util-linux) that is typed `terminal`'s text; without, with no terminal at all.
fn operator(
    package: &Path,
    name: &str,
    args: &[&str],
    work: &Path,
    vars: &BTreeMap<String, String>,
    terminal: Option<&str>,
) -> Output {
    use std::io::Write as _;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = format!(
        "umask 022 && exec bash {}",
        quote(&package.join("scripts").join(name).to_string_lossy())
    );
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut words: Vec<String> = Vec::new();
    if is_root() {
        words.extend(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ]
            .map(String::from),
        );
    }
    match terminal {
        Some(_) => words.extend(["script", "-qec", &line, "/dev/null"].map(String::from)),
        None => words.extend(["bash", "-c", &line].map(String::from)),
    }
    let mut c = Command::new(&words[0]);
    c.args(&words[1..])
        .env_clear()
        .env("PATH", common::pg_path())
        .env("HOME", work)
        .env("LANG", "C.UTF-8")
        .env("RUNBOOK_WORK_DIR", work)
        .envs(vars)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(terminal.unwrap_or_default().as_bytes())
        .unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The feedback files of `package` run in `work`: in the package, or in the work directory
/// when the operator may not write the package.
fn feedback_files(package: &Path, work: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [package.join("feedback"), work.join("feedback")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Issue 24, finding 2: a feedback file holds a command's output, so it is created 0600 by
/// the operator's own scripts on the target, whatever their umask (022 here), for each
/// script that writes one.
#[test]
fn feedback_files_are_created_0600_under_the_operators_umask() {
    let dir = open_dir();
    let package = untested_package(&replica(), dir.path());
    let work = work_dir(dir.path());
    // A port that is not a number: configure-primary's check fails.
    let vars = replica_values(&work, "six-four-three-two", "6433");
    let deploy = operator(&package, "deploy.sh", &[], &work, &vars, None);
    assert_eq!(deploy.status.code(), Some(1), "{:?}", text(&deploy));
    assert!(text(&deploy).1.contains("FAILED at step configure-primary"));
    let verify = operator(&package, "verify.sh", &["--once"], &work, &vars, None);
    assert_eq!(verify.status.code(), Some(1), "{:?}", text(&verify));
    // deploy.sh's, then verify.sh's two (init-primary is deployed, so every step is checked).
    let files = feedback_files(&package, &work);
    let mut seen = Vec::new();
    for f in &files {
        let meta = std::fs::metadata(f).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", f.display());
        let fb = runbook::load_feedback(f).unwrap();
        assert_ne!(fb.target.user, "root", "the test ran the scripts as root");
        seen.push((fb.phase, fb.step));
    }
    seen.sort_by_key(|(phase, step)| (format!("{phase:?}"), step.clone()));
    use runbook::feedback::Phase;
    assert_eq!(
        seen,
        [
            (Phase::Deploy, "configure-primary".to_owned()),
            (Phase::Verify, "configure-primary".to_owned()),
            (Phase::Verify, "start-standby".to_owned()),
        ],
        "{files:?}"
    );
}

/// Issue 24, finding 3: the deploy fails at its last step; rollback.sh reverts the steps
/// that completed and leaves the failed one. deploy.sh then names the step that failed, not
/// the first one (rolled back), and does not offer to resume after steps that are gone;
/// once the failed step is rolled back too, nothing is left "started": a plain deploy runs
/// from the start.
#[test]
fn after_a_rollback_deploy_names_the_step_that_failed() {
    let dir = open_dir();
    let package = untested_package(&replica(), dir.path());
    let work = work_dir(dir.path());
    // The standby given the primary's port: start-standby fails after its mkdir.
    let wrong = replica_values(&work, "6432", "6432");
    let right = replica_values(&work, "6432", "6433");
    let deploy = operator(&package, "deploy.sh", &[], &work, &wrong, None);
    assert_eq!(deploy.status.code(), Some(1));
    assert!(text(&deploy).1.contains("FAILED at step start-standby"));

    // Before any rollback: the failed step, and resuming there is right.
    let refused = operator(&package, "deploy.sh", &[], &work, &right, None);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("An earlier deploy stopped at step start-standby")
            && stderr.contains("Resume with --from start-standby"),
        "{stderr}"
    );

    let rollback = operator(&package, "rollback.sh", &["--yes"], &work, &right, None);
    let (stdout, stderr) = text(&rollback);
    assert_eq!(rollback.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("This rolls back, in this order: configure-primary init-primary\n")
            && stderr.contains("Not rolled back: start-standby"),
        "{stdout}{stderr}"
    );
    assert!(!work.join("pg-main").exists() && work.join("pg-replica").exists());

    let refused = operator(&package, "deploy.sh", &[], &work, &right, None);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("An earlier deploy stopped at step start-standby")
            && stderr.contains("(init-primary configure-primary)")
            && stderr.contains("rollback.sh --include-incomplete")
            && !stderr.contains("stopped at step init-primary")
            && !stderr.contains("--from"),
        "{stderr}"
    );
    assert!(
        !work.join("pg-main").exists(),
        "a refused deploy ran a step"
    );

    let rollback = operator(
        &package,
        "rollback.sh",
        &["--yes", "--include-incomplete"],
        &work,
        &right,
        None,
    );
    let (stdout, stderr) = text(&rollback);
    assert_eq!(rollback.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("This rolls back, in this order: start-standby\n"),
        "{stdout}"
    );
    assert!(!work.join("pg-replica").exists());
    // Nothing is left started: no refusal, no --again needed.
    let deploy = operator(&package, "deploy.sh", &[], &work, &right, None);
    assert_ok("deploy.sh after the whole rollback", &deploy);
    assert_ok(
        "verify.sh",
        &operator(&package, "verify.sh", &[], &work, &right, None),
    );
}

/// Issue 24, finding 4: `--again` over a half-done deploy fails at its first step (its data
/// directory exists, as initdb's would); that step, which completed before, stays
/// completed, so `rollback.sh --yes` still rolls it back, and deploy.sh names it as where
/// the last deploy stopped.
#[test]
fn a_failed_rerun_with_again_leaves_completed_steps_to_roll_back() {
    let dir = open_dir();
    let package = untested_package(&replica(), dir.path());
    let work = work_dir(dir.path());
    let wrong = replica_values(&work, "7432", "7432");
    let right = replica_values(&work, "7432", "7433");
    let deploy = operator(&package, "deploy.sh", &[], &work, &wrong, None);
    assert!(text(&deploy).1.contains("FAILED at step start-standby"));
    let again = operator(&package, "deploy.sh", &["--again"], &work, &right, None);
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("File exists") && stderr.contains("FAILED at step init-primary"),
        "{stderr}"
    );
    let refused = operator(&package, "deploy.sh", &[], &work, &right, None);
    assert!(
        text(&refused)
            .1
            .contains("An earlier deploy stopped at step init-primary"),
        "{:?}",
        text(&refused)
    );

    let rollback = operator(&package, "rollback.sh", &["--yes"], &work, &right, None);
    let (stdout, stderr) = text(&rollback);
    assert_eq!(rollback.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("This rolls back, in this order: configure-primary init-primary\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Not rolled back: start-standby") && !stderr.contains("init-primary"),
        "{stderr}"
    );
    assert!(
        !work.join("pg-main").exists(),
        "the primary's data directory, which the first deploy created, is left behind"
    );
    assert!(
        work.join("pg-replica").exists(),
        "an incomplete step is left as it is"
    );
}

/// Issue 24, finding 5: the deploy stopped at step 2 of 3, and the standby's directory
/// holds what some other deploy put there. `rollback.sh --all` would run every rollback:
/// it lists the step this target never ran and asks a second time on a terminal; without
/// one it needs `--yes --all` and prints the list before it acts. The hint for an empty
/// journal no longer says `--all` "reverts every step regardless".
#[test]
fn rollback_all_lists_the_steps_never_run_and_asks_again() {
    let dir = open_dir();
    let package = untested_package(&replica(), dir.path());
    let work = work_dir(dir.path());
    let vars = replica_values(&work, "port-not-a-number", "8433");

    let nothing = operator(&package, "rollback.sh", &["--yes"], &work, &vars, None);
    let (stdout, _) = text(&nothing);
    assert_ok("rollback.sh on a fresh work directory", &nothing);
    assert!(
        stdout.contains("Nothing to roll back")
            && !stdout.contains("regardless")
            && stdout.contains("asks first"),
        "{stdout}"
    );

    let standby = work.join("pg-replica");
    std::fs::create_dir(&standby).unwrap();
    plant(&standby.join("precious"), "another deploy's standby\n");
    if is_root() {
        let nobody = nix_user("nobody");
        std::os::unix::fs::chown(&standby, Some(nobody.0), Some(nobody.1)).unwrap();
    }
    let deploy = operator(&package, "deploy.sh", &[], &work, &vars, None);
    assert!(text(&deploy).1.contains("FAILED at step configure-primary"));
    let untouched = || {
        assert_eq!(
            std::fs::read_to_string(standby.join("precious")).unwrap(),
            "another deploy's standby\n"
        );
        assert!(work.join("pg-main/PG_VERSION").exists());
    };
    let warning = "WARNING: --all also runs the rollback of 1 step(s) the journal";

    // No terminal, no --yes: the list, and a refusal naming --yes --all.
    let refused = operator(&package, "rollback.sh", &["--all"], &work, &vars, None);
    let (stdout, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains(warning) && stdout.contains("never ran: start-standby."),
        "{stdout}"
    );
    assert!(stderr.contains("--yes --all"), "{stderr}");
    untouched();

    // On a terminal: yes to the plan, then anything but `all` to the second question.
    for typed in ["y\nn\n", "y\ny\n"] {
        let asked = operator(
            &package,
            "rollback.sh",
            &["--all"],
            &work,
            &vars,
            Some(typed),
        );
        let (stdout, stderr) = text(&asked);
        assert_eq!(asked.status.code(), Some(1), "{stdout}{stderr}");
        assert!(
            stdout.contains(warning)
                && stdout.contains("Also roll back start-standby, which this target never ran?")
                && stdout.contains("Nothing was changed"),
            "{stdout}"
        );
        untouched();
    }

    // --yes --all: the list comes before the first rollback runs.
    let all = operator(
        &package,
        "rollback.sh",
        &["--yes", "--all"],
        &work,
        &vars,
        None,
    );
    let (stdout, stderr) = text(&all);
    assert_eq!(all.status.code(), Some(0), "{stdout}{stderr}");
    let listed = stdout.find(warning).expect("the list is printed");
    let acted = stdout
        .find("==> [3/3] Roll back: Start the standby")
        .expect("the rollback ran");
    assert!(listed < acted, "{stdout}");
    assert!(!standby.exists() && !work.join("pg-main").exists());
}

/// Issue 24, finding 6: verify.sh (and `--once`) on a target never deployed says so in one
/// message and writes one feedback file, not one a step; on a deployed target it still
/// checks every step.
#[test]
fn verify_on_a_target_never_deployed_says_so_once() {
    let dir = open_dir();
    let package = untested_package(&replica(), dir.path());
    let work = work_dir(dir.path());
    let vars = replica_values(&work, "9432", "9433");
    for (n, args) in [&["--once"][..], &[]].into_iter().enumerate() {
        let verify = operator(&package, "verify.sh", args, &work, &vars, None);
        let (stdout, stderr) = text(&verify);
        assert_eq!(verify.status.code(), Some(1), "{stdout}{stderr}");
        assert_eq!(stderr.matches("Not deployed:").count(), 1, "{stderr}");
        assert!(
            stderr.contains("shows nothing deployed from this work directory")
                && !stdout.contains("Configure the primary"),
            "{stdout}{stderr}"
        );
        assert_eq!(
            feedback_files(&package, &work).len(),
            n + 1,
            "verify.sh {args:?}: more than one feedback file"
        );
        assert!(
            outcome(&work).starts_with("status=failed\nphase=verify\nexit=1\nstep=init-primary\n"),
            "{}",
            outcome(&work)
        );
    }

    // Deployed, then two steps broken: both are reported.
    assert_ok(
        "deploy.sh",
        &operator(&package, "deploy.sh", &[], &work, &vars, None),
    );
    std::fs::remove_file(work.join("pg-main/postgresql.conf")).unwrap();
    std::fs::remove_file(work.join("pg-replica/postgresql.conf")).unwrap();
    let verify = operator(&package, "verify.sh", &["--once"], &work, &vars, None);
    let (_, stderr) = text(&verify);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stderr.contains("2 step(s) failed verification") && !stderr.contains("Not deployed"),
        "{stderr}"
    );
}
