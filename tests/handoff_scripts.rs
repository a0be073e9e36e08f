//! The scripts of a handoff package actually work: a package produced from a real
//! sandbox run is deployed, verified and rolled back by its own scripts in a fresh
//! directory, with the variables set as a human would set them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runbook::exec::{LocalProvider, RunMode, RunOptions, run_all};
use runbook::{Lifetime, Runbook};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

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

fn path_env() -> String {
    format!("{PG_BIN}:{}", std::env::var("PATH").unwrap_or_default())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a real sandbox test of `runbook` and writes its package under `dir`.
async fn tested_package(runbook: Runbook, vars: BTreeMap<String, String>, dir: &Path) -> PathBuf {
    let provider = LocalProvider::with_root(dir.join("state")).path(path_env());
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

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
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
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "bash",
        ]);
        c
    } else {
        Command::new("bash")
    };
    c.arg(package.join("scripts").join(name))
        .env_clear()
        .env("PATH", path_env())
        .env("HOME", work)
        .env("LANG", "C.UTF-8")
        .env("RUNBOOK_WORK_DIR", work)
        .envs(vars);
    c.output().unwrap()
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
        (
            "API_TOKEN".to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        ),
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
    let conf = std::fs::read_to_string(work.join("heartbeat/app.conf")).unwrap();
    assert!(
        conf.contains("port=9191") && conf.contains("token=0123456789abcdef0123456789abcdef"),
        "{conf}"
    );
    let pid: i32 = std::fs::read_to_string(work.join("heartbeat/worker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    assert_ok("verify.sh", &script(&package, "verify.sh", &work, &vars));
    // --from resumes at a step: the earlier ones are not run again.
    let resumed = {
        let mut c = Command::new("bash");
        c.arg(package.join("scripts/verify.sh"))
            .arg("--from")
            .arg("start-worker")
            .env_clear()
            .env("PATH", path_env())
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
            .env("PATH", path_env())
            .envs(&vars);
        c.output().unwrap()
    };
    assert_eq!(unknown.status.code(), Some(2));

    assert_ok(
        "rollback.sh",
        &script(&package, "rollback.sh", &work, &vars),
    );
    assert!(
        !work.join("heartbeat").exists(),
        "rollback leaves nothing behind"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    let left: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["config"],
        "only the rendered config stays in the work dir"
    );
}

#[tokio::test]
async fn postgres_scripts_deploy_verify_and_roll_back_on_another_port_and_data_dir() {
    let dir = open_dir();
    let sandbox_vars = BTreeMap::from([("PGPORT".to_owned(), free_port().to_string())]);
    let package = tested_package(example("postgres"), sandbox_vars, dir.path()).await;
    let work = work_dir(dir.path());
    let vars = BTreeMap::from([
        (
            "PGDATA".to_owned(),
            work.join("data-prod").to_string_lossy().into_owned(),
        ),
        ("PGHOST".to_owned(), "127.0.0.1".to_owned()),
        ("PGPORT".to_owned(), free_port().to_string()),
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
        "rollback.sh",
        &script(&package, "rollback.sh", &work, &vars),
    );
    assert!(
        !work.join("data-prod").exists(),
        "rollback removes the data directory"
    );
    let ready = Command::new(format!("{PG_BIN}/pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &vars["PGPORT"]])
        .output()
        .unwrap();
    assert_eq!(ready.status.code(), Some(2), "the server is stopped");
}
