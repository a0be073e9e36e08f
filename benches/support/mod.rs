//! Generated runbooks of any size, shared by the benches.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use runbook::{Category, Check, ConfigFile, Runbook, Step, Variable};

/// A realistic runbook with `steps` steps: commands with variables, two checks with
/// retry policies, a rollback with its own check, notes.
pub fn realistic(steps: usize) -> Runbook {
    let mut b = Runbook::builder("bench")
        .title("A big runbook")
        .variable(Variable::new("NAMESPACE", Category::Namespace).sandbox("sandbox-test").production("yours"))
        .variable(Variable::new("REPLICAS", Category::Replicas).sandbox("1").production("3"))
        .config_file(ConfigFile::new("config/app.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  namespace: ${NAMESPACE}\nspec:\n  replicas: ${REPLICAS}\n"));
    for i in 0..steps {
        b = b.step(
            Step::new(format!("step-{i}"), format!("Step number {i}"))
                .description("Apply one part of the change and confirm it.")
                .run(format!("kubectl -n \"$NAMESPACE\" apply -f config/app.yaml --replicas \"$REPLICAS\" # {i}"))
                .verify(
                    Check::command(format!("kubectl -n \"$NAMESPACE\" get deploy app-{i} -o jsonpath='{{.status.readyReplicas}}'"))
                        .stdout_equals("1")
                        .within(Duration::from_secs(60)),
                )
                .verify(Check::command("kubectl -n \"$NAMESPACE\" get pods").stdout_matches("Running"))
                .rollback(format!("kubectl -n \"$NAMESPACE\" delete deploy app-{i} --wait"))
                .note("Generated for the benchmark."),
        );
    }
    b.build_unchecked()
}

/// Trivial steps for the executor: `true`, then one check.
pub fn trivial(steps: usize) -> Runbook {
    let mut b = Runbook::builder("trivial");
    for i in 0..steps {
        b = b.step(
            Step::new(format!("s{i}"), format!("Step {i}"))
                .run("true")
                .read_only()
                .verify(Check::command("echo ok").stdout_equals("ok")),
        );
    }
    b.build_unchecked()
}

/// The median wall time of `runs` runs of `f`.
pub fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
