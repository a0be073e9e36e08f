//! Test runbooks in sandboxes: never production.
//!
//! - [`Provider`] and [`Sandbox`] are the traits every sandbox kind implements
//!   (dyn-compatible, so an agent can pick one at run time).
//! - [`Session`] is the deploy -> validate -> document engine: it runs a runbook step by
//!   step in one sandbox, lets an agent [amend](Session::amend) a failing step and
//!   [retry](Session::retry) it while recording the known issue, exercises rollbacks,
//!   and hands back the amended runbook with its [`report`](runbook_core::report::Report).
//!   [`drive`] runs the whole cycle on a session; [`run_all`] does it in one call.
//! - Typed checks (`file`, `tcp`, `http`, `process`, Kubernetes) go through one
//!   [`Sandbox::probe`] entry, evaluated without a process where the provider can.
//! - Lifetimes: ephemeral sandboxes are destroyed when the run ends (also on error,
//!   panic or cancellation), session sandboxes when the [`Session`] ends or is dropped,
//!   persistent ones survive the process and are [resumed](Session::resume) by id.
//! - [`LocalProvider`] (feature `local`, default) runs sandboxes as directories on this
//!   machine with a clean environment; as root, each with a user and a cgroup of its own,
//!   so nothing a step starts outlives the sandbox and sandboxes cannot touch each other.
//! - Secrets are replaced by `***` in everything recorded or emitted ([`Redactor`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use runbook_core::{Check, Runbook, Step};
//! use runbook_exec::{LocalProvider, RunMode, RunOptions, run_all};
//!
//! let runbook = Runbook::builder("hello")
//!     .step(Step::new("write-greeting", "Write the greeting")
//!         .run("echo hello > greeting.txt")
//!         .verify(Check::command("cat greeting.txt").stdout_equals("hello"))
//!         .rollback("rm greeting.txt"))
//!     .build()?
//!     .runbook;
//! let root = tempfile::tempdir()?;
//! # std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
//! let provider = LocalProvider::with_root(root.path());
//! let outcome = run_all(&provider, runbook, RunOptions::default(), RunMode::default()).await?;
//! assert!(outcome.passed());
//! assert_eq!(outcome.report.steps[0].attempts[0].checks[0].attempts, 1);
//! # Ok(()) }
//! ```

#[cfg(feature = "container")]
pub mod container;
mod engine;
mod error;
mod events;
#[cfg(feature = "kube")]
pub mod kube;
#[cfg(feature = "local")]
pub mod local;
mod lock;
mod redact;
mod sandbox;
mod state;
mod time;

#[cfg(feature = "container")]
pub use container::{ContainerNetwork, ContainerProvider, ContainerSandbox};
pub use engine::{
    Amendment, Canceller, FileExcerpt, Outcome, Phase, READ_LIMIT, RunMode, RunOptions, Session,
    cause_lines, drive, log_path, run_all,
};
pub use error::{ExecError, Result};
pub use events::{Event, NoObserver, Observer, Recorder};
#[cfg(feature = "kube")]
pub use kube::{KubeProvider, KubeSandbox};
#[cfg(feature = "local")]
pub use local::{LocalProvider, LocalSandbox, RunAs};
pub use redact::{MASK, Redactor, StreamRedactor};
pub use sandbox::{
    CommandSpec, Exit, Observation, OutputSink, Provider, ProvisionRequest, Reaped, Sandbox,
    SandboxInfo, Stream,
};
