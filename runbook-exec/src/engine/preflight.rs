//! Pre-flight: every prerequisite present, in a version that satisfies its requirement.

use runbook_core::Step;
use runbook_core::report::{ToolVersion, Verdict};

use super::Session;
use super::capture::Capture;
use crate::events::{Event, NoObserver};
use crate::{ExecError, Result};

impl Session {
    /// Checks that every prerequisite is present in a satisfying version; the detected
    /// versions become the report's version metadata. When it fails, the session runs no
    /// step until a pre-flight passes (see [`Session::preflight_problems`]).
    pub async fn preflight(&mut self) -> Result<Vec<ToolVersion>> {
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for p in self.runbook.prerequisites.clone() {
            let spec = self.spec(p.detect_command(), None, self.options.check_timeout);
            let mut sink = Capture::new(
                "preflight",
                64 * 1024,
                &self.redactor,
                &mut self.log,
                &NoObserver,
            );
            let exit = self.sandbox.run(&spec, &mut sink).await?;
            let out = sink.finish();
            let detected = if exit.code == Some(0) {
                p.parse_version(&format!("{}\n{}", out.stdout, out.stderr))
            } else {
                None
            };
            let satisfied = match (&detected, p.requirement()) {
                (Some(v), Ok(req)) => req.matches(v),
                _ => false,
            };
            if !satisfied {
                problems.push(match &detected {
                    None if exit.code == Some(127) => format!(
                        "- {} is not installed (`{}`: command not found)",
                        p.tool,
                        p.detect_command()
                    ),
                    None => format!(
                        "- {}: could not read its version from `{}`",
                        p.tool,
                        p.detect_command()
                    ),
                    Some(v) => format!("- {} {v} does not satisfy `{}`", p.tool, p.version),
                });
            }
            self.options.observer.event(&Event::Preflight {
                tool: p.tool.clone(),
                detected: detected.as_ref().map(ToString::to_string),
                satisfied,
            });
            let location = self.locate(&p.tool).await?;
            found.push(ToolVersion {
                tool: p.tool.clone(),
                required: p.version.clone(),
                detected: detected.map(|v| v.to_string()),
                satisfied,
                location,
            });
        }
        // The checklist guards the first change: once a step of this runbook ran, what it
        // checks (a free port, say) is no longer the state before the deploy.
        let untouched = !self
            .runbook
            .steps
            .iter()
            .any(|s| self.completed.contains(&s.id));
        if problems.is_empty() && untouched {
            problems.extend(self.preflight_checks().await?);
        }
        self.report.preflight = found.clone();
        self.log_line(&format!(
            "### pre-flight: {}\n",
            found
                .iter()
                .map(|t| format!("{} {}", t.tool, t.detected.as_deref().unwrap_or("missing")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.preflight_problems = problems.clone();
        if problems.is_empty() {
            Ok(found)
        } else {
            self.report.verdict = Verdict::Failed;
            Err(ExecError::Preflight(problems))
        }
    }

    /// Runs the runbook's pre-flight checklist; what failed, naming the item and its lesson.
    async fn preflight_checks(&mut self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for item in self.runbook.preflight.clone() {
            // Checks run like a step's, in the work directory, under the item's id.
            let at = Step::new(format!("preflight-{}", item.id), item.title.clone());
            let record = self.run_check(&at, &item.check).await?;
            self.log_line(&format!(
                "### pre-flight check `{}`: {}\n",
                item.id,
                if record.passed { "passed" } else { "FAILED" }
            ));
            if !record.passed {
                let origin = item
                    .origin
                    .as_deref()
                    .map(|o| format!(" Learnt from {o}."))
                    .unwrap_or_default();
                problems.push(format!(
                    "- pre-flight check `{}` failed: {}: expected {}; saw {}.{origin} Nothing was changed.",
                    item.id,
                    item.label(),
                    record.expected,
                    record.actual
                ));
            }
        }
        Ok(problems)
    }

    /// Where the sandbox finds `tool` (`command -v`), so the package can say it.
    async fn locate(&mut self, tool: &str) -> Result<Option<String>> {
        let quoted = format!("'{}'", tool.replace('\'', r"'\''"));
        let spec = self.spec(
            format!("command -v -- {quoted}"),
            None,
            self.options.check_timeout,
        );
        let mut sink = Capture::new(
            "preflight",
            4096,
            &self.redactor,
            &mut self.log,
            &NoObserver,
        );
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        let out = sink.finish();
        Ok((exit.code == Some(0))
            .then(|| out.stdout.trim().to_owned())
            .filter(|l| !l.is_empty()))
    }
}
