//! Rendering the whole package (issue: 1,000 steps under 100 ms, linear, 10,000 under 1 s).
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use runbook::render::{Evidence, Package};
use runbook::report::{
    Attempt, CheckRecord, CommandOutput, Report, StepRecord, StepStatus, Verdict,
};

fn report(rb: &runbook::Runbook) -> Report {
    Report {
        runbook: rb.metadata.name.clone(),
        verdict: Verdict::Passed,
        started_at: "2026-11-26T12:00:00Z".into(),
        duration_ms: 1000,
        steps: rb
            .steps
            .iter()
            .map(|s| StepRecord {
                id: s.id.clone(),
                title: s.title.clone(),
                status: StepStatus::Passed,
                attempts: vec![Attempt {
                    command: s.run.clone(),
                    output: CommandOutput {
                        exit_code: Some(0),
                        stdout: "deployment.apps/app configured\n".into(),
                        duration_ms: 120,
                        ..Default::default()
                    },
                    duration_ms: 150,
                    checks: s
                        .verify
                        .iter()
                        .map(|c| CheckRecord {
                            name: c.label(),
                            command: c.command_text().map(str::to_owned),
                            passed: true,
                            attempts: 2,
                            expected: c.expectation(),
                            actual: "as expected".into(),
                            duration_ms: 30,
                        })
                        .collect(),
                    failure: String::new(),
                    failure_kind: None,
                    diagnostics: String::new(),
                    ..Default::default()
                }],
            })
            .collect(),
        ..Report::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let rb = support::realistic(n);
        let rep = report(&rb);
        let log = "log line\n".repeat(n);
        g.bench_function(format!("package of {n} steps"), |b| {
            b.iter(|| {
                Package::render(
                    black_box(&rb),
                    Some(Evidence {
                        report: &rep,
                        log: Some(&log),
                    }),
                    &[],
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
