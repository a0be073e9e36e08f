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
