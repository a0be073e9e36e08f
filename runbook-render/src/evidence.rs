//! Test evidence: `test-summary.yaml`, `junit.xml` and `versions.yaml`.

use std::collections::BTreeMap;
use std::fmt::Write;

use runbook_core::report::{Report, StepRecord, StepStatus};
use runbook_core::{Runbook, lint::manifest_headers};
use serde::Serialize;

use crate::text::{clip, xml_escape};

/// `test-results/test-summary.yaml`: the report itself.
pub fn test_summary(report: &Report) -> String {
    runbook_core::to_yaml(report)
}

/// `test-results/junit.xml`: one test case per step (and per rollback), for CI systems.
pub fn junit(runbook: &Runbook, report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suites: Vec<(&str, &[StepRecord])> = std::iter::once(("steps", report.steps.as_slice()))
        .chain(
            report
                .rollback
                .as_ref()
                .map(|r| ("rollback", r.steps.as_slice())),
        )
        .collect();
    let runs = report
        .rehearsal
        .as_ref()
        .map_or(&[][..], |r| r.runs.as_slice());
    let total: usize = suites.iter().map(|(_, s)| s.len()).sum::<usize>() + runs.len();
    let failures: usize = suites
        .iter()
        .flat_map(|(_, s)| s.iter())
        .filter(|s| s.status == StepStatus::Failed)
        .count()
        + runs.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failures}\" time=\"{:.3}\">",
        xml_escape(&runbook.metadata.name),
        report.duration_ms as f64 / 1000.0
    );
    for (suite, steps) in suites {
        let f = steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .count();
        let time: u64 = steps.iter().map(StepRecord::duration_ms).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}.{suite}\" tests=\"{}\" failures=\"{f}\" timestamp=\"{}\" time=\"{:.3}\">",
            xml_escape(&runbook.metadata.name),
            steps.len(),
            xml_escape(&report.started_at),
            time as f64 / 1000.0
        );
        for s in steps {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{suite}\" name=\"{}: {}\" time=\"{:.3}\"",
                xml_escape(&runbook.metadata.name),
                xml_escape(&s.id),
                xml_escape(&s.title),
                s.duration_ms() as f64 / 1000.0
            );
            let last = s.attempts.last();
            if s.status == StepStatus::Passed && s.attempts.len() == 1 {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            if s.status == StepStatus::Failed {
                let msg = last.map(|a| a.failure.as_str()).unwrap_or("failed");
                let _ = writeln!(out, "      <failure message=\"{}\"/>", xml_escape(msg));
            }
            let mut text = String::new();
            for (i, a) in s.attempts.iter().enumerate() {
                let _ = writeln!(text, "attempt {}: $ {}", i + 1, a.command);
                let _ = writeln!(
                    text,
                    "{}",
                    if a.passed() {
                        "passed"
                    } else {
                        a.failure.as_str()
                    }
                );
                let _ = writeln!(
                    text,
                    "{}{}",
                    clip(&a.output.stdout, 4000),
                    clip(&a.output.stderr, 4000)
                );
            }
            let _ = writeln!(out, "      <system-out>{}</system-out>", xml_escape(&text));
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    if let Some(r) = &report.rehearsal {
        rehearsal_suite(&mut out, &runbook.metadata.name, r);
    }
    out.push_str("</testsuites>\n");
    out
}

/// The rehearsal as a JUnit suite: one test case per script run.
fn rehearsal_suite(out: &mut String, name: &str, r: &runbook_core::report::Rehearsal) {
    let time: u64 = r.runs.iter().map(|x| x.duration_ms).sum();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}.rehearsal\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        xml_escape(name),
        r.runs.len(),
        r.runs.iter().filter(|x| !x.passed).count(),
        time as f64 / 1000.0
    );
    for run in &r.runs {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.rehearsal\" name=\"{}: {}\" time=\"{:.3}\"",
            xml_escape(name),
            xml_escape(&run.phase),
            xml_escape(&run.command),
            run.duration_ms as f64 / 1000.0
        );
        if run.passed {
            out.push_str("/>\n");
            continue;
        }
        let _ = writeln!(
            out,
            ">\n      <failure message=\"{}\"/>\n      <system-out>{}</system-out>\n    </testcase>",
            xml_escape(&r.failure),
            xml_escape(&run.output)
        );
    }
    out.push_str("  </testsuite>\n");
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions<'a> {
    runbook: String,
    tested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tested_at: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    target: BTreeMap<&'static str, &'a str>,
    tools: BTreeMap<&'a str, ToolEntry<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    platform: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    charts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kubernetes_apis: Vec<String>,
}

#[derive(Serialize)]
struct ToolEntry<'a> {
    required: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tested: Option<&'a str>,
}

/// `versions.yaml`: every tool, platform, image, chart and Kubernetes API version tested.
pub fn versions(runbook: &Runbook, report: Option<&Report>) -> String {
    let mut target = BTreeMap::new();
    let t = &runbook.target;
    for (k, v) in [
        ("platform", &t.platform),
        ("cloud", &t.cloud),
        ("kubernetes", &t.kubernetes_version),
        ("architecture", &t.architecture),
    ] {
        if let Some(v) = v {
            target.insert(k, v.as_str());
        }
    }
    let mut tools = BTreeMap::new();
    for p in &runbook.prerequisites {
        let tested = report
            .and_then(|r| r.preflight.iter().find(|x| x.tool == p.tool))
            .and_then(|x| x.detected.as_deref());
        tools.insert(
            p.tool.as_str(),
            ToolEntry {
                required: &p.version,
                tested,
            },
        );
    }
    let mut platform = BTreeMap::new();
    if let Some(r) = report {
        for (k, v) in &r.sandbox.versions {
            platform.insert(k.as_str(), v.as_str());
        }
        if !r.sandbox.os.is_empty() {
            platform.insert("os", r.sandbox.os.as_str());
        }
        if let Some(image) = &r.sandbox.image {
            platform.insert("image", image.name.as_str());
            platform.insert("image-id", image.id.as_str());
            if let Some(digest) = image.digests.first() {
                platform.insert("image-digest", digest.as_str());
            }
            if !image.os_release.is_empty() {
                platform.insert("image-os", image.os_release.as_str());
            }
        }
    }
    let mut images = Vec::new();
    let mut apis = Vec::new();
    for f in &runbook.config_files {
        for line in f.content.lines() {
            if let Some(image) = line.trim_start().strip_prefix("image:") {
                let image = image.trim().trim_matches(['"', '\'']);
                if !image.is_empty() {
                    images.push(image.to_owned());
                }
            }
        }
        for (api, kind, _) in manifest_headers(&f.content) {
            apis.push(format!("{api} {kind}"));
        }
    }
    let mut charts = Vec::new();
    for s in &runbook.steps {
        for line in s.run.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words
                .windows(2)
                .position(|w| w[0] == "helm" && matches!(w[1], "install" | "upgrade"))
            {
                let chart = words.get(i + 3).copied().unwrap_or("");
                let version = words
                    .iter()
                    .position(|w| *w == "--version")
                    .and_then(|v| words.get(v + 1))
                    .map_or_else(|| "latest (unpinned)".to_owned(), |v| (*v).to_owned());
                charts.push(format!("{chart} {version}"));
            }
        }
    }
    for list in [&mut images, &mut apis, &mut charts] {
        list.sort();
        list.dedup();
    }
    runbook_core::to_yaml(&Versions {
        runbook: format!("{} {}", runbook.metadata.name, runbook.metadata.version)
            .trim()
            .to_owned(),
        tested: report.is_some(),
        tested_at: report.map(|r| r.started_at.as_str()),
        target,
        tools,
        platform,
        images,
        charts,
        kubernetes_apis: apis,
    })
}
