//! Parsing and linting runbooks (issue: 10,000 steps under 150 ms, 50 steps under 1 ms,
//! typed parse + lint at most 1.5x a raw parse of the same YAML with the same parser).
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn parse_and_lint(text: &str) -> usize {
    let rb = runbook::from_yaml_str(text).expect("valid");
    rb.lint().len()
}

/// The same parser and the same limits as `runbook::from_yaml_str`, into an untyped value.
fn raw_parse(text: &str) -> serde_json::Value {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_nodes: 20_000_000, max_events: 40_000_000 },
    };
    serde_saphyr::from_str_with_options(text, options).expect("valid")
}

fn lint_only(rb: &runbook::Runbook) -> usize {
    rb.lint().len()
}

fn bench(c: &mut Criterion) {
    // Two shapes: minimal steps (a command and one check, ~170 bytes of YAML each) and
    // realistic ones (variables, two checks with retries, a rollback, notes, ~580 bytes).
    let minimal_small = runbook::to_yaml_string(&support::trivial(50));
    let minimal_big = runbook::to_yaml_string(&support::trivial(10_000));
    let small = runbook::to_yaml_string(&support::realistic(50));
    let big = runbook::to_yaml_string(&support::realistic(10_000));
    let mut g = c.benchmark_group("core");
    g.sample_size(10);
    g.bench_function("parse+lint 50 minimal steps", |b| {
        b.iter(|| parse_and_lint(black_box(&minimal_small)))
    });
    g.bench_function("parse+lint 10000 minimal steps", |b| {
        b.iter(|| parse_and_lint(black_box(&minimal_big)))
    });
    g.bench_function("parse+lint 50 realistic steps", |b| {
        b.iter(|| parse_and_lint(black_box(&small)))
    });
    g.bench_function("parse+lint 10000 realistic steps", |b| {
        b.iter(|| parse_and_lint(black_box(&big)))
    });
    g.bench_function("raw parse (untyped) 10000 realistic steps", |b| {
        b.iter(|| raw_parse(black_box(&big)))
    });
    let small_rb = support::realistic(50);
    g.bench_function("lint only 50 realistic steps", |b| {
        b.iter(|| lint_only(black_box(&small_rb)))
    });
    g.finish();

    // The ratio, measured in this run.
    for (shape, text) in [("minimal", &minimal_big), ("realistic", &big)] {
        let typed = support::median(9, || {
            black_box(parse_and_lint(text));
        });
        let raw = support::median(9, || {
            black_box(raw_parse(text));
        });
        println!(
            "ratio ({shape}, 10000 steps, {} bytes): typed parse + lint {:.1} ms / raw untyped parse {:.1} ms = {:.2}x",
            text.len(),
            typed.as_secs_f64() * 1e3,
            raw.as_secs_f64() * 1e3,
            typed.as_secs_f64() / raw.as_secs_f64()
        );
    }

    // What `runbook validate` does with a finding on every step (parse, lint, locate each
    // finding in the text), by size: the cost per step must stay flat (issue 29 measured
    // it quadratic: 10,000 steps in 11.9 s).
    for steps in [1_000, 5_000, 10_000, 20_000] {
        let text = runbook::to_yaml_string(&a_finding_each(steps));
        let took = support::median(5, || {
            let rb = runbook::from_yaml_str(&text).expect("valid");
            black_box(runbook::findings::of(&rb, &text, "runbook.yaml", &[]));
        });
        println!(
            "findings: {steps} steps with a finding each: {:.1} ms ({:.1} µs per step)",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / steps as f64
        );
    }
}

/// Steps whose only check is an exit code: one `exit-code-only` warning each.
fn a_finding_each(steps: usize) -> runbook::Runbook {
    let mut b = runbook::Runbook::builder("findings");
    for i in 0..steps {
        b = b.step(
            runbook::Step::new(format!("s{i}"), format!("Step {i}"))
                .run("true")
                .read_only()
                .verify(runbook::Check::command("true")),
        );
    }
    b.build_unchecked()
}

criterion_group!(benches, bench);
criterion_main!(benches);
