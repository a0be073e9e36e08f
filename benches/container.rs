//! The container provider, measured against the local provider in the same run: a
//! one-step runbook end to end (provision + the step and its check + teardown), and the
//! cost per command (an exec through the engine against a local spawn).
//!
//! And the version matrix (the user's path: `runbook run --matrix`, packages and rehearsals
//! included): the PostgreSQL example's two targets at once against each alone.
//!
//! Needs an engine and the test images: `tests/container/engine.sh start`, then
//! `cargo bench --bench container`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use runbook::exec::{
    CommandSpec, ContainerProvider, LocalProvider, OutputSink, Provider, ProvisionRequest, RunMode,
    RunOptions, Stream, run_all,
};
use runbook::{Check, Lifetime, Runbook, Step};

const IMAGE: &str = "localhost/runbook-test/bookworm-pg15:latest";

struct Discard;
impl OutputSink for Discard {
    fn output(&mut self, _: Stream, _: &[u8]) {}
}

fn one_step() -> Runbook {
    Runbook::builder("bench-one")
        .step(
            Step::new("write", "Write a file")
                .run("echo ok > f.txt")
                .verify(Check::command("cat f.txt").stdout_equals("ok"))
                .rollback("rm f.txt"),
        )
        .build()
        .unwrap()
        .runbook
}

/// Median wall time of `runs` end-to-end runs of the one-step runbook.
fn end_to_end(rt: &tokio::runtime::Runtime, provider: &dyn Provider, runs: usize) -> Duration {
    support::median(runs, || {
        let options = RunOptions {
            lifetime: Some(Lifetime::Ephemeral),
            ..RunOptions::default()
        };
        let outcome = rt
            .block_on(run_all(provider, one_step(), options, RunMode::default()))
            .unwrap();
        assert!(outcome.passed());
    })
}

/// Mean time per trivial command in one sandbox of `provider`.
fn per_command(rt: &tokio::runtime::Runtime, provider: &dyn Provider, commands: u32) -> Duration {
    rt.block_on(async {
        let mut sandbox = provider
            .provision(&ProvisionRequest::new("bench-cmd", Lifetime::Ephemeral).image(IMAGE))
            .await
            .unwrap();
        let spec = CommandSpec {
            command: "true".into(),
            env: Default::default(),
            workdir: None,
            timeout: Duration::from_secs(30),
            errexit: true,
        };
        let started = Instant::now();
        for _ in 0..commands {
            let exit = sandbox.run(&spec, &mut Discard).await.unwrap();
            assert_eq!(exit.code, Some(0));
        }
        let each = started.elapsed() / commands;
        sandbox.teardown().await.unwrap();
        each
    })
}

/// Wall time of `runbook run --matrix` on the example, with `extra` arguments.
fn matrix_run(dir: &std::path::Path, out: &str, extra: &[&str]) -> Duration {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/matrix/runbook.yaml");
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            example,
            "--matrix",
            "--provider",
            "container",
            "--out",
            out,
        ])
        .args(extra)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "runbook run --matrix {extra:?} failed");
    started.elapsed()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("container: bench");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("runbook-bench-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let local = LocalProvider::with_root(root.path().join("local"));
    let container = rt
        .block_on(ContainerProvider::connect(
            LocalProvider::with_root(root.path().join("container")),
            None,
        ))
        .unwrap_or_else(|e| panic!("{e}: start one with tests/container/engine.sh start"))
        .image(IMAGE);

    let local_run = end_to_end(&rt, &local, 7);
    let container_run = end_to_end(&rt, &container, 7);
    println!(
        "one-step runbook, provision + step + check + teardown (median of 7): local {:.1} ms, container {:.1} ms ({:.1}x)",
        local_run.as_secs_f64() * 1e3,
        container_run.as_secs_f64() * 1e3,
        container_run.as_secs_f64() / local_run.as_secs_f64()
    );
    let dir = root.path().join("matrix");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut both, mut pg15, mut pg17) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..3 {
        both.push(matrix_run(&dir, &format!("both-{i}"), &["--jobs", "2"]));
        pg15.push(matrix_run(
            &dir,
            &format!("pg15-{i}"),
            &["--target", "debian12-pg15"],
        ));
        pg17.push(matrix_run(
            &dir,
            &format!("pg17-{i}"),
            &["--target", "debian13-pg17"],
        ));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (both, pg15, pg17) = (median(&mut both), median(&mut pg15), median(&mut pg17));
    let slower = pg15.max(pg17);
    println!(
        "matrix, `runbook run --matrix` of examples/matrix (median of 3): both targets {:.2} s, debian12-pg15 alone {:.2} s, debian13-pg17 alone {:.2} s: {:.2}x the slower one",
        both.as_secs_f64(),
        pg15.as_secs_f64(),
        pg17.as_secs_f64(),
        both.as_secs_f64() / slower.as_secs_f64()
    );
    let local_each = per_command(&rt, &local, 100);
    let container_each = per_command(&rt, &container, 100);
    println!(
        "per command (`true`, mean of 100 in one sandbox): local {:.2} ms, container exec {:.2} ms ({:.1}x)",
        local_each.as_secs_f64() * 1e3,
        container_each.as_secs_f64() * 1e3,
        container_each.as_secs_f64() / local_each.as_secs_f64()
    );
}
