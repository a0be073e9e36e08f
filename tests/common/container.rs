//! What the container provider's test files share: the image, the `runbook` binary run
//! with a state root, the engine's view by label (through `podman`), a long run in the
//! background. Included with `#[path]` by tests/container.rs and
//! tests/container_attacks.rs.
#![allow(dead_code)] // each file uses what it needs

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use runbook::exec::{ContainerProvider, LocalProvider};

pub const BOOKWORM: &str = "localhost/runbook-test/bookworm-pg15:latest";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn runbook_cli(dir: &Path, state: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join(state))
        .output()
        .unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `podman ARGS` (with the tests' settings), its stdout; it must succeed.
pub fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .env(
            "CONTAINERS_CONF",
            repo().join("tests/container/containers.conf"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sandbox containers and networks of runbook `name`, by label.
pub fn leftovers(name: &str) -> Vec<String> {
    let filter = format!("label=runbook.dev/runbook={name}");
    let mut found = Vec::new();
    for (what, format) in [("ps -a", "{{.Names}}"), ("network ls", "{{.Name}}")] {
        let mut args: Vec<&str> = what.split(' ').collect();
        args.extend(["--filter", &filter, "--format", format]);
        found.extend(
            podman(&args)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{what}: {l}")),
        );
    }
    found
}

pub async fn provider(state: &Path) -> ContainerProvider {
    ContainerProvider::connect(LocalProvider::with_root(state), None)
        .await
        .unwrap()
        .image(BOOKWORM)
}

/// `runbook run` of a one-step runbook `name` (`sleep 120`) in the background, with state
/// root `state`, until its container exists; the child and the container's name.
pub fn start_long_run(dir: &Path, state: &str, name: &str) -> (std::process::Child, String) {
    start_run(dir, state, name, &[])
}

/// [`start_long_run`] with more arguments.
#[allow(clippy::zombie_processes)] // the caller waits for the child it gets back
pub fn start_run(
    dir: &Path,
    state: &str,
    name: &str,
    more: &[&str],
) -> (std::process::Child, String) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: {name} }}\n\
             steps:\n  - id: wait\n    title: Wait\n    readOnly: true\n    timeout: 120s\n    run: sleep 120\n\
             \x20   verify:\n      - name: t\n        run: 'true'\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            &file.to_string_lossy(),
            "--provider",
            "container",
            "--image",
            BOOKWORM,
            "--no-rehearsal",
            "--out",
            "pkg",
        ])
        .args(more)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join(state))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = leftovers(name).iter().find(|l| l.starts_with("ps -a")) {
            std::thread::sleep(Duration::from_secs(2));
            return (child, c.trim_start_matches("ps -a: ").to_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no container for {name} appeared");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
