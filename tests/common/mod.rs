//! Helpers shared by the `runbook` binary's test files.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;

/// A working directory with a `state/` root, both reachable by unprivileged sandbox users.
pub fn workdir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(d.path().join("state")).unwrap();
    std::fs::set_permissions(
        d.path().join("state"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    d
}

/// Shared with the executor's tests: one definition of how a free port is picked.
#[path = "../../runbook-exec/tests/common/ports.rs"]
mod ports;
#[allow(unused_imports)] // not every test file starts daemons
pub use ports::free_port;

/// The Python of the README's test command (`target/py`, or `$RUNBOOK_PYTHON`), which must
/// import `module`: the test fails otherwise. Tests that call it are
/// `#[ignore = "needs the Python venv of the README's test line"]`, so they run only when
/// asked (`cargo test -- --ignored`; CI does).
pub fn python(module: &str) -> std::path::PathBuf {
    let python = std::env::var_os("RUNBOOK_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import {module}: run the README's test line (it makes target/py)",
        python.display()
    );
    python
}

/// Where Debian puts PostgreSQL 15's programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// This process's `PATH` with PostgreSQL 15's programs first.
pub fn pg_path() -> String {
    format!("{PG_BIN}:{}", std::env::var("PATH").unwrap_or_default())
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// Runs a package script as an operator would: a clean environment with the operator's
/// values and `PATH`, the work directory given. As root it runs as `nobody` (PostgreSQL
/// refuses to run as root).
pub fn operator_script<K, V>(
    package: &std::path::Path,
    name: &str,
    args: &[&str],
    work: &std::path::Path,
    vars: impl IntoIterator<Item = (K, V)>,
    path: &str,
) -> std::process::Output
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut c = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "bash",
        ]);
        c
    } else {
        std::process::Command::new("bash")
    };
    c.arg(package.join("scripts").join(name))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", work)
        .env("LANG", "C.UTF-8")
        .env("RUNBOOK_WORK_DIR", work)
        .envs(vars);
    c.output().unwrap()
}

/// Runs the `runbook` CLI in `dir`, with its state under `dir/state`, PostgreSQL 15 on the
/// `PATH`, and no lessons library from the environment.
#[cfg(feature = "cli")]
pub fn runbook(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .env("PATH", pg_path())
        .env_remove("RUNBOOK_LESSONS")
        .output()
        .unwrap()
}
