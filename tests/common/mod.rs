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

/// The Python of the README's test command (`target/py`, or `$RUNBOOK_PYTHON`) when it can
/// import `module`. Under CI a missing one fails the test; elsewhere the test says it is
/// skipped.
pub fn python(module: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("RUNBOOK_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} cannot import {module}: run the README's test command (it makes target/py)",
        python.display()
    );
    eprintln!("skipped: no Python with {module} at {}", python.display());
    None
}
