//! The executor against bash, measured in the same run, and its memory while a step
//! prints 1 GiB (issue: at most 1.3x a bash script running the same 400 commands as
//! `bash -c`; peak memory under 64 MiB).
//!
//! `cargo bench --bench exec`

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use runbook::exec::{LocalProvider, RunMode, RunOptions, run_all};
use runbook::{Check, Lifetime, Runbook, Step};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("exec: bench");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("runbook-bench-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let provider = LocalProvider::with_root(root.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = || RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };

    // The baseline: the same 400 commands, each as its own `bash -c`, from one bash script.
    let steps = 200;
    let mut script = String::from("set -e\n");
    for _ in 0..steps {
        script.push_str("bash -c 'true'\nbash -c 'echo ok' > /dev/null\n");
    }
    let script_path = root.path().join("baseline.sh");
    std::fs::write(&script_path, script).unwrap();
    let baseline = support::median(5, || {
        assert!(
            Command::new("bash")
                .arg(&script_path)
                .status()
                .unwrap()
                .success()
        );
    });
    let engine = support::median(5, || {
        let outcome = rt
            .block_on(run_all(
                &provider,
                support::trivial(steps),
                options(),
                RunMode::default(),
            ))
            .unwrap();
        assert!(outcome.passed());
    });
    println!(
        "ratio: runbook engine {:.0} ms / bash script {:.0} ms for {steps} steps ({} commands) = {:.2}x ({:.2} ms per command)",
        engine.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        steps * 2,
        engine.as_secs_f64() / baseline.as_secs_f64(),
        engine.as_secs_f64() * 1e3 / (steps * 2) as f64
    );

    // Memory: one step prints 1 GiB; the engine keeps 1 MiB and streams the rest to disk.
    let before = peak_rss_kib();
    let loud = Runbook::builder("loud")
        .step(
            Step::new("print", "Print 1 GiB")
                .run("head -c 1073741824 /dev/zero")
                .read_only()
                .verify(Check::command("echo ok").stdout_equals("ok")),
        )
        .build_unchecked();
    let t = std::time::Instant::now();
    let outcome = rt
        .block_on(run_all(&provider, loud, options(), RunMode::default()))
        .unwrap();
    let out = &outcome.report.steps[0].attempts[0].output;
    println!(
        "memory: a step printing 1 GiB: peak RSS {:.1} MiB (before: {:.1} MiB), kept {} bytes, counted {} more, {:.1} s",
        peak_rss_kib() as f64 / 1024.0,
        before as f64 / 1024.0,
        out.stdout.len(),
        out.stdout_dropped,
        t.elapsed().as_secs_f64()
    );
}
