//! Ending a session: the verdict, the state, teardown or keep, and what is handed over.

use std::collections::BTreeMap;

use runbook_core::report::{Report, Verdict};
use runbook_core::{Lifetime, Runbook};

use super::{Session, millis};
use crate::Result;
use crate::events::Event;
use crate::redact::Redactor;
use crate::state::{self, SessionState};

/// What a finished session hands over: the amended runbook, the values it ran with, the
/// report, the log.
#[derive(Debug)]
pub struct Outcome {
    /// The runbook as amended during the session (known issues included). Its variables
    /// keep their authored `sandbox:` values: the values the run used are in
    /// [`values`](Outcome::values).
    pub runbook: Runbook,
    /// The value each variable had in the sandbox (after `--var`, the provider's fixed
    /// values and values chosen at run time), for every variable whose value may be shown:
    /// never a secret's nor a generated one's
    /// ([`Variable::hides_value`](runbook_core::Variable::hides_value)), so nothing here
    /// needs redacting. The package records them as the sandbox values; the rehearsal
    /// picks others.
    pub values: BTreeMap<String, String>,
    /// The evidence.
    pub report: Report,
    /// The redacted sandbox log as it ships: each command's output keeps its first and
    /// last MiB, with the full size and SHA-256 of what was left out (the complete log
    /// stays in the sandbox's control directory, [`log_path`](super::log_path), while the sandbox exists).
    pub log: String,
    /// The session's secrets, for checking that nothing about to be shipped holds one.
    pub redactor: Redactor,
    /// What the pre-flight found missing or too old (then no step ran); empty when it passed.
    pub preflight_problems: Vec<String>,
}

impl Outcome {
    /// The sandbox log as text.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.report.verdict == Verdict::Passed
    }
}

impl Session {
    /// Ends the session: ephemeral and session sandboxes are destroyed, persistent ones
    /// kept (and resumable). Returns the amended runbook, the values it ran with, the
    /// report and the log.
    ///
    /// The verdict is the session's [`Session::verdict`]: `failed` while a failure stands,
    /// also after a rollback gave up on it.
    pub async fn finish(mut self) -> Result<Outcome> {
        self.settle()?;
        self.report.duration_ms += millis(self.started.elapsed());
        self.save()?;
        let destroy = self.lifetime != Lifetime::Persistent;
        self.log_line(&format!(
            "### sandbox {} {}\n",
            self.sandbox.id(),
            if destroy {
                "destroyed"
            } else {
                "kept (persistent)"
            }
        ));
        // Read before teardown removes it: bounded, so it is held in memory, never copied
        // to a shared directory.
        let log = self.log.read_excerpt(self.sandbox.control_dir())?;
        if destroy {
            self.sandbox.teardown().await?;
        } else {
            self.sandbox.keep();
        }
        self.options.observer.event(&Event::Teardown {
            id: self.sandbox.id().to_owned(),
            destroyed: destroy,
        });
        // Only values that may be shown leave the session: the outcome is rendered.
        let mut values = self.values;
        values.retain(|name, _| !self.secret_names.contains(name));
        Ok(Outcome {
            runbook: self.runbook,
            values,
            report: self.report,
            log,
            redactor: self.redactor,
            preflight_problems: Vec::new(),
        })
    }

    /// Brings the report's verdict up to date and, for a persistent sandbox, saves the
    /// state (so that `resume` finds it).
    pub(super) fn save(&mut self) -> Result<()> {
        self.report.verdict = self.verdict();
        if self.lifetime != Lifetime::Persistent {
            return Ok(());
        }
        state::save(
            self.sandbox.control_dir(),
            &SessionState {
                format: 1,
                id: self.sandbox.id().to_owned(),
                provider: self.provider.clone(),
                lifetime: self.lifetime,
                runbook: self.runbook.clone(),
                values: self.values.clone(),
                secrets: self.secret_names.clone(),
                completed: self.completed.clone(),
                report: self.report.clone(),
            },
        )
    }
}
