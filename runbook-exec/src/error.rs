//! The executor's errors.

use std::path::PathBuf;

/// Why the executor could not do what was asked. Step failures are not errors: they
/// are recorded in the report; these are failures of the machinery around them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The runbook has lint errors and must not run.
    #[error("the runbook has lint errors:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Lint(Vec<runbook_core::Diagnostic>),
    /// A variable has no sandbox value and none was given.
    #[error(
        "variable `{0}` has no sandbox value: give one with `--var {0}=VALUE` (or `sandbox:` in the runbook)"
    )]
    MissingValue(String),
    /// A prerequisite is missing or has the wrong version.
    #[error("pre-flight failed:\n{}", .0.join("\n"))]
    Preflight(Vec<String>),
    /// A sandbox could not be found.
    #[error("no sandbox `{0}`: `runbook sandbox list` shows the ones that exist")]
    NotFound(String),
    /// Another process is using the sandbox.
    #[error("sandbox `{id}` is in use by {holder}; wait for it to finish, or stop that process")]
    Locked {
        /// The sandbox.
        id: String,
        /// Who holds it (pid, host, since when).
        holder: String,
    },
    /// The sandbox cannot run this kind of check (a Kubernetes check on a local sandbox).
    #[error("unsupported by the {provider} provider: {what}")]
    Unsupported {
        /// The provider.
        provider: String,
        /// What it cannot do.
        what: String,
    },
    /// A step that already passed cannot be amended.
    #[error("step `{0}` already passed: go back before it with `rewind_to` first, then amend it")]
    StepPassed(String),
    /// A rollback failed while the session went back before a step that passed, to redo
    /// it; the report's `restores` say which. The rollbacks before it ran.
    #[error(
        "a rollback failed while going back before step `{0}` (see the report's `restores`): \
         fix it in the sandbox (`runbook sandbox exec`), or start over with a new run"
    )]
    RewindFailed(String),
    /// Only a persistent sandbox can be resumed (or entered): this one is torn down with
    /// its run.
    #[error(
        "sandbox `{id}` is {lifetime}, not persistent: only persistent sandboxes can be resumed"
    )]
    NotPersistent {
        /// The sandbox.
        id: String,
        /// Its lifetime.
        lifetime: runbook_core::Lifetime,
    },
    /// A path given to look inside a sandbox ([`Session::read_file`](crate::Session::read_file))
    /// that is not a readable file of its working directory.
    #[error("`{path}`: {why}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        why: String,
    },
    /// The runbook has no step by that id.
    #[error("no step `{0}` in the runbook")]
    NoSuchStep(String),
    /// `retry` was called with no failing step.
    #[error("there is no failing step to retry")]
    NothingToRetry,
    /// The image a container sandbox needs is not on the engine (and pulling it was not
    /// allowed).
    #[error(
        "image `{image}` is not on the container engine at {engine}: build or load it \
         (`podman import`, `docker load`), or allow pulling it with --pull"
    )]
    ImageMissing {
        /// The image name.
        image: String,
        /// The engine's socket.
        engine: String,
    },
    /// The container engine does not answer (not running, or this user may not use it).
    #[error(
        "the container engine at {engine} does not answer: {why}. Is Docker or Podman's \
         service running, and may this user use its socket?"
    )]
    EngineUnreachable {
        /// The engine's socket and who named it.
        engine: String,
        /// What the connection said.
        why: String,
    },
    /// The API was used in a way it does not support (another kind of mistake).
    #[error("{0}")]
    Usage(String),
    /// A file or directory operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The provider failed, in its own words.
    #[error("{0}")]
    Provider(String),
    /// The provider failed because something under it failed (the Kubernetes API, a
    /// kubeconfig, a state file): the cause is kept, typed, as the source.
    #[error("{what}")]
    Failed {
        /// What was being done.
        what: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ExecError {
    /// The error and each of its causes, once: for a report line or a log.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    /// A failure of `what`, caused by `source`.
    pub(crate) fn failed(
        what: impl Into<String>,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ExecError {
        let what = what.into();
        move |source| ExecError::Failed { what, source }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ExecError {
        let path = path.into();
        move |source| ExecError::Io {
            action,
            path,
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_cause_typed_and_prints_it_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no way");
        let e = ExecError::failed("cannot read the kubeconfig")(Box::new(io));
        assert_eq!(e.to_string(), "cannot read the kubeconfig");
        let cause = std::error::Error::source(&e).unwrap();
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(e.chain(), "cannot read the kubeconfig: no way");
    }
}
