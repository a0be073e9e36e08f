//! How a session runs: its options, what [`run_all`](super::run_all) does besides the
//! steps, and the amendments an agent makes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runbook_core::{Check, ConfigFile, Rollback};

use runbook_core::Lifetime;

use super::millis;
use crate::events::{NoObserver, Observer};

/// How a session runs.
#[derive(Clone)]
pub struct RunOptions {
    /// The sandbox lifetime. By default, [`runbook_core::recommend_lifetime`] picks it.
    pub lifetime: Option<Lifetime>,
    /// Values that override the runbook's sandbox values (`--var NAME=VALUE`).
    pub vars: BTreeMap<String, String>,
    /// Timeout of a step without its own (default 10 minutes).
    pub step_timeout: Duration,
    /// Timeout of one check attempt without a retry deadline (default 60 seconds); with
    /// one, an attempt gets the time left until it
    /// ([`Retry::attempt_limit`](runbook_core::Retry::attempt_limit)).
    pub check_timeout: Duration,
    /// Bytes of each stream kept in memory per attempt (default 1 MiB); the rest is
    /// counted, and written in full to the sandbox log.
    pub output_cap: usize,
    /// Where events go (default: nowhere).
    pub observer: Arc<dyn Observer>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lifetime: None,
            vars: BTreeMap::new(),
            step_timeout: runbook_core::DEFAULT_STEP_TIMEOUT,
            check_timeout: runbook_core::DEFAULT_CHECK_TIMEOUT,
            output_cap: 1024 * 1024,
            observer: Arc::new(NoObserver),
        }
    }
}

impl RunOptions {
    /// The defaults in force, as the report records them for the scripts.
    pub(super) fn settings(&self) -> runbook_core::report::RunSettings {
        runbook_core::report::RunSettings {
            step_timeout_ms: millis(self.step_timeout),
            check_timeout_ms: millis(self.check_timeout),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("lifetime", &self.lifetime)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("step_timeout", &self.step_timeout)
            .field("check_timeout", &self.check_timeout)
            .field("output_cap", &self.output_cap)
            .finish_non_exhaustive()
    }
}

/// A change to a failing step, made by the agent that is debugging it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Amendment {
    /// A new command.
    pub run: Option<String>,
    /// New checks (replacing the old ones).
    pub verify: Option<Vec<Check>>,
    /// A new rollback (`Some(None)` removes it).
    pub rollback: Option<Option<Rollback>>,
    /// New config files for the step (replacing its list).
    pub files: Option<Vec<String>>,
    /// A new timeout (`Some(None)` returns to the default).
    pub timeout: Option<Option<Duration>>,
    /// New content for config files of the runbook, found by `path`: each replaces that
    /// file's content (and its description, when not empty). A path the runbook has no
    /// config file at is refused. When a step that passed uses a changed file, the
    /// session must go back before that step: [`Session::amend_and_rewind`] does it.
    ///
    /// [`Session::amend_and_rewind`]: super::Session::amend_and_rewind
    pub configs: Vec<ConfigFile>,
}

impl Amendment {
    /// Replaces the command.
    pub fn run(command: impl Into<String>) -> Self {
        Amendment {
            run: Some(command.into()),
            ..Amendment::default()
        }
    }

    /// Replaces the checks too. By default, the checks stay.
    pub fn verify(mut self, checks: Vec<Check>) -> Self {
        self.verify = Some(checks);
        self
    }

    /// Replaces (or with `None`, removes) the rollback. By default, it stays.
    pub fn rollback(mut self, rollback: Option<Rollback>) -> Self {
        self.rollback = Some(rollback);
        self
    }

    /// Replaces the step's config files. By default, they stay.
    pub fn files(mut self, files: Vec<String>) -> Self {
        self.files = Some(files);
        self
    }

    /// Sets (or with `None`, clears) the step's timeout. By default, it stays.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Replaces the content of the runbook's config file at `path` (which must exist).
    /// Any step may use it, not only the amended one.
    pub fn config(mut self, path: impl Into<String>, content: impl Into<String>) -> Self {
        self.configs.push(ConfigFile::new(path, content));
        self
    }
}

/// What [`run_all`](super::run_all) does besides running the steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    /// After a successful run, run every rollback in reverse order and verify it.
    pub exercise_rollback: bool,
    /// After a failed run, roll back the completed steps in reverse order.
    pub rollback_on_failure: bool,
}
