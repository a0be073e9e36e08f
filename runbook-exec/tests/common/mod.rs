//! Helpers shared by the executor's integration tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;

use std::time::{Duration, Instant};

use runbook_exec::LocalProvider;
use tempfile::TempDir;

/// A provider with its own state root, reachable by the unprivileged sandbox user.
pub fn provider() -> (TestRoot, LocalProvider) {
    let dir = tempfile::Builder::new()
        .prefix("runbook-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let provider = LocalProvider::with_root(dir.path());
    let root = TestRoot {
        dir,
        provider: provider.clone(),
    };
    (root, provider)
}

/// A test's state root: when it goes, every sandbox left in it is destroyed first, so
/// that no sandbox user, cgroup or process outlives the test.
pub struct TestRoot {
    dir: TempDir,
    provider: LocalProvider,
}

impl TestRoot {
    /// The state root.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        use runbook_exec::Provider;
        let provider = self.provider.clone();
        // A runtime of its own, on a thread of its own: this may run inside a test's.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for s in provider.list().await.unwrap_or_default() {
                    let _ = provider.destroy(&s.id).await;
                }
            });
        })
        .join();
    }
}

/// Runs `runbook` in a new ephemeral sandbox with the default options.
pub async fn run_ephemeral(
    provider: &LocalProvider,
    runbook: runbook_core::Runbook,
) -> runbook_exec::Outcome {
    let options = runbook_exec::RunOptions {
        lifetime: Some(runbook_core::Lifetime::Ephemeral),
        ..runbook_exec::RunOptions::default()
    };
    runbook_exec::run_all(provider, runbook, options, runbook_exec::RunMode::default())
        .await
        .unwrap()
}

/// Waits for `condition` with a deadline; never sleeps to hope.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of live (non-zombie) processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// Fails the test unless it runs as root: containment and per-sandbox users only exist
/// for root. Tests that call it are `#[ignore = "needs root"]`, so they run only when
/// asked (`cargo test -- --ignored`, as root; CI does).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: run the ignored tests as root (README.md says how)"
    );
}

mod ports;
#[allow(unused_imports)] // not every test file starts daemons
pub use ports::free_port;
