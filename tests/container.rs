//! The container provider against a real engine (Podman's Docker-compatible service) and
//! images built from Debian's packages: `tests/container/engine.sh start` provides both
//! (the README's ignored-tests line runs it; so does CI).

mod common;
#[path = "common/container.rs"]
mod container;

use std::path::Path;

use std::time::{Duration, Instant};

use container::{BOOKWORM, leftovers, ok, provider, repo, start_long_run};
use runbook::exec::{ContainerProvider, LocalProvider, Provider, RunMode, RunOptions, run_all};
use runbook::{Runbook, SandboxLimits};

const NEEDS_ENGINE: &str =
    "needs a container engine and the test images: tests/container/engine.sh start";
fn runbook(yaml: &str) -> Runbook {
    runbook::from_yaml_str(yaml).unwrap()
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn the_postgres_example_passes_in_a_bookworm_container_and_its_rehearsal_too() {
    let _ = NEEDS_ENGINE;
    let dir = common::workdir("runbook-container-");
    let out = container::runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &repo()
                .join("examples/postgres/runbook.yaml")
                .to_string_lossy(),
            "--provider",
            "container",
            "--image",
            BOOKWORM,
            "--out",
            "package",
        ],
    );
    ok(&out);
    let package = dir.path().join("package");
    let readme = std::fs::read_to_string(package.join("README.md")).unwrap();
    assert!(
        readme.contains("container provider, image `localhost/runbook-test/bookworm-pg15:latest`"),
        "{readme}"
    );
    assert!(
        readme.contains("Debian GNU/Linux 12 (bookworm)"),
        "{readme}"
    );
    let versions = std::fs::read_to_string(package.join("versions.yaml")).unwrap();
    assert!(versions.contains("image-id: sha256:"), "{versions}");
    assert!(
        versions.contains("image-os: Debian GNU/Linux 12 (bookworm)"),
        "{versions}"
    );
    // The tools the steps found are the image's, not this machine's.
    assert!(
        readme.contains("/usr/lib/postgresql/15/bin/initdb"),
        "{readme}"
    );
    // The same package as a local run (the example package in docs/): the same files.
    let files = |root: &Path| {
        let mut all = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    all.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        all.retain(|f| f != "REGENERATE.md");
        all.sort();
        all
    };
    assert_eq!(files(&package), files(&repo().join("docs/example-package")));
    let summary = std::fs::read_to_string(package.join("test-results/test-summary.yaml")).unwrap();
    assert!(
        summary.starts_with("runbook: postgres\nverdict: passed\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  provider: container\n") && summary.contains("  user: runbook\n"),
        "{summary}"
    );
    assert!(
        summary.contains("    memory:") || !summary.contains("limits:"),
        "{summary}"
    );
    let rehearsal = std::fs::read_to_string(package.join("test-results/rehearsal.yaml")).unwrap();
    assert!(rehearsal.starts_with("verdict: passed\n"), "{rehearsal}");
    assert!(
        leftovers("postgres").is_empty(),
        "{:?}",
        leftovers("postgres")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn a_step_past_the_memory_limit_is_killed_and_says_so() {
    let dir = common::workdir("runbook-container-");
    let rb = runbook(
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: memory-hog }\n\
         sandbox: { limits: { memory: 64Mi } }\n\
         steps:\n  - id: hog\n    title: Hold 300 MiB\n    readOnly: true\n    timeout: 60s\n\
         \x20   run: head -c 300m /dev/zero | tail > /dev/null\n\
         \x20   verify:\n      - name: never\n        run: 'true'\n",
    );
    let provider = provider(&dir.path().join("state")).await;
    let outcome = run_all(&provider, rb, RunOptions::default(), RunMode::default())
        .await
        .unwrap();
    assert!(!outcome.passed());
    let attempt = &outcome.report.steps[0].attempts[0];
    let text = serde_json::to_string(attempt).unwrap();
    assert!(text.contains("memory limit (64Mi) was reached"), "{text}");
    assert_eq!(
        outcome.report.sandbox.limits.memory.as_deref(),
        Some("64Mi")
    );
    assert!(
        leftovers("memory-hog").is_empty(),
        "{:?}",
        leftovers("memory-hog")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn a_thousand_processes_against_a_pids_limit_fail_cleanly_and_leave_nothing() {
    let dir = common::workdir("runbook-container-");
    let rb = runbook(
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: fork-many }\n\
         steps:\n  - id: fork\n    title: Start 1000 sleepers\n    readOnly: true\n    timeout: 90s\n\
         \x20   run: for i in $(seq 1000); do sleep 300 & done; wait\n\
         \x20   verify:\n      - name: never\n        run: 'true'\n",
    );
    let provider = provider(&dir.path().join("state"))
        .await
        .network(runbook::exec::ContainerNetwork::Private)
        .limits(SandboxLimits {
            pids: Some(256),
            ..SandboxLimits::default()
        });
    let started = Instant::now();
    let outcome = run_all(&provider, rb, RunOptions::default(), RunMode::default())
        .await
        .unwrap();
    assert!(!outcome.passed());
    assert!(
        started.elapsed() < Duration::from_secs(85),
        "took {:?}",
        started.elapsed()
    );
    let text = serde_json::to_string(&outcome.report.steps[0].attempts[0]).unwrap();
    assert!(text.contains("Resource temporarily unavailable"), "{text}");
    assert_eq!(outcome.report.sandbox.limits.pids, Some(256));
    // Teardown left no container and no network (this sandbox had one of its own).
    assert!(
        leftovers("fork-many").is_empty(),
        "{:?}",
        leftovers("fork-many")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn steps_run_as_the_sandbox_user_who_cannot_become_root() {
    let dir = common::workdir("runbook-container-");
    let rb = runbook(
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: hostile }\n\
         configFiles:\n  - path: config/app.conf\n    content: \"port = 1\\n\"\n\
         steps:\n  - id: look\n    title: Look around\n    readOnly: true\n\
         \x20   run: |\n      id -u; pwd; echo \"$HOME\"\n      cat /etc/shadow && echo SHADOW-READ || true\n\
         \x20     echo x >> /etc/passwd && echo PASSWD-WRITTEN || true\n\
         \x20   verify:\n      - name: the config file is ours\n        file: { path: config/app.conf, contains: port = 1 }\n\
         \x20     - name: no network\n        tcp: { host: 1.1.1.1, port: 53 }\n",
    );
    let provider = provider(&dir.path().join("state")).await;
    let outcome = run_all(&provider, rb, RunOptions::default(), RunMode::default())
        .await
        .unwrap();
    let attempt = &outcome.report.steps[0].attempts[0];
    let text = serde_json::to_string(attempt).unwrap();
    assert!(text.contains("10001"), "{text}");
    assert!(text.contains("/sandbox/work"), "{text}");
    let stdout = serde_json::to_value(attempt).unwrap()["output"]["stdout"].to_string();
    assert!(
        !stdout.contains("SHADOW-READ") && !stdout.contains("PASSWD-WRITTEN"),
        "{text}"
    );
    assert!(text.contains("/etc/shadow: Permission denied"), "{text}");
    // The file check passed from inside; the network check failed: loopback only.
    assert!(attempt.checks[0].passed, "{text}");
    assert!(!attempt.checks[1].passed, "{text}");
    assert!(outcome.report.sandbox.network_isolated);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn a_missing_image_is_a_plain_error_naming_it() {
    let dir = common::workdir("runbook-container-");
    let provider =
        ContainerProvider::connect(LocalProvider::with_root(dir.path().join("state")), None)
            .await
            .unwrap()
            .image("localhost/runbook-test/no-such-image:1");
    let rb = runbook(
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: no-image }\n\
         steps:\n  - id: s\n    title: S\n    readOnly: true\n    run: 'true'\n\
         \x20   verify:\n      - name: t\n        run: 'true'\n",
    );
    let e = run_all(&provider, rb, RunOptions::default(), RunMode::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, runbook::exec::ExecError::ImageMissing { image, .. } if image == "localhost/runbook-test/no-such-image:1"),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.contains("image `localhost/runbook-test/no-such-image:1` is not on the container engine")
            && e.contains("--pull"),
        "{e}"
    );
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_engine_that_is_not_there_is_a_plain_typed_error() {
    let dir = common::workdir("runbook-container-");
    let e = ContainerProvider::connect(
        LocalProvider::with_root(dir.path().join("state")),
        Some("unix:///nonexistent/docker.sock"),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, runbook::exec::ExecError::EngineUnreachable { .. }),
        "{text}"
    );
    assert!(
        text.starts_with("the container engine at /nonexistent/docker.sock (from --engine) does not answer: there is no socket at /nonexistent/docker.sock"),
        "{text}"
    );
    // And through the CLI, in the same words, before anything is provisioned.
    let out = container::runbook_cli(
        dir.path(),
        "state",
        &[
            "sandbox",
            "--provider",
            "container",
            "--engine",
            "/nonexistent/docker.sock",
            "list",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("does not answer"),
        "{said}"
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn sigterm_during_a_run_removes_the_container() {
    let dir = common::workdir("runbook-container-");
    let (mut child, _) = start_long_run(dir.path(), "state", "term-me");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        leftovers("term-me").is_empty(),
        "{:?}",
        leftovers("term-me")
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn reap_after_a_kill_9_removes_the_container() {
    let dir = common::workdir("runbook-container-");
    let (mut child, _) = start_long_run(dir.path(), "state", "kill-me");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!leftovers("kill-me").is_empty());
    let out = container::runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "reap"],
    );
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("reaped kill-me-"), "{said}");
    assert!(
        leftovers("kill-me").is_empty(),
        "{:?}",
        leftovers("kill-me")
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn a_persistent_container_is_resumed_with_the_upgrade_runbook() {
    let dir = common::workdir("runbook-container-");
    let upgrade = repo().join("examples/upgrade");
    let first = ok(&container::runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &upgrade.join("v1.yaml").to_string_lossy(),
            "--provider",
            "container",
            "--image",
            BOOKWORM,
            "--out",
            "v1-package",
            "--events",
            "ndjson",
        ],
    ));
    let id = first
        .lines()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "sandboxReady").then(|| v["id"].as_str().unwrap().to_owned())
        })
        .unwrap();
    let listed = ok(&container::runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "list"],
    ));
    assert!(
        listed.contains(&id) && listed.contains("persistent"),
        "{listed}"
    );
    ok(&container::runbook_cli(
        dir.path(),
        "state",
        &[
            "resume",
            &id,
            &upgrade.join("runbook.yaml").to_string_lossy(),
            "--provider",
            "container",
            "--out",
            "upgrade-package",
        ],
    ));
    let readme = std::fs::read_to_string(dir.path().join("upgrade-package/README.md")).unwrap();
    assert!(
        readme.contains("Verdict | Passed: 3 of 3 step(s) passed"),
        "{readme}"
    );
    let looked = ok(&container::runbook_cli(
        dir.path(),
        "state",
        &[
            "sandbox",
            "--provider",
            "container",
            "exec",
            &id,
            "--",
            "id -un",
        ],
    ));
    assert!(looked.contains("runbook"), "{looked}");
    ok(&container::runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "destroy", &id],
    ));
    assert!(leftovers("orders").is_empty(), "{:?}", leftovers("orders"));
}
