//! Tested infrastructure runbooks: describe a change, test it in a sandbox you provision
//! yourself (never production), and hand off a verified package.
//!
//! This facade re-exports the three crates of the workspace:
//!
//! - the model ([`runbook_core`], re-exported at the root): [`Runbook`], [`Step`],
//!   [`Check`], [`Rollback`], [`Variable`], [`Limitation`], [`Prerequisite`],
//!   [`Lifetime`], the lint rules and the file format;
//! - [`exec`]: providers, sandboxes and the deploy -> validate -> document [`exec::Session`];
//! - [`render`]: the handoff [`render::Package`];
//! - the rehearsal ([`rehearse`]): the package's own scripts, run in a fresh sandbox with
//!   other values, before it is handed over.
//!
//! Features (all default): `kube` adds the Kubernetes provider, `mcp` the
//! Model Context Protocol server (`runbook mcp`), `cli` the `runbook` command. A library user takes
//! `default-features = false` and adds what it needs: without `kube` nothing of kube is
//! built, without `cli` no argument parser.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use runbook::{Category, Check, Runbook, Step, Variable};
//! use runbook::exec::{LocalProvider, RunMode, RunOptions, run_all};
//!
//! let runbook = Runbook::builder("greeting")
//!     .variable(Variable::new("GREETING", Category::Other).sandbox("hello").production("Your greeting"))
//!     .step(Step::new("write", "Write the greeting")
//!         .run("printf '%s\\n' \"$GREETING\" > greeting.txt")
//!         .verify(Check::file("greeting.txt").contains("${GREETING}").within(Duration::from_secs(5)))
//!         .verify(Check::command("wc -l < greeting.txt").stdout_equals("1"))
//!         .rollback("rm greeting.txt"))
//!     .build()?
//!     .runbook;
//! # let root = tempfile::tempdir()?;
//! # std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
//! let provider = LocalProvider::with_root(root.path());
//! let outcome = run_all(&provider, runbook, RunOptions::default(), RunMode { exercise_rollback: true, ..RunMode::default() }).await?;
//! runbook::write_package(&outcome, &root.path().join("handoff-package"), false)?;
//! assert!(root.path().join("handoff-package/scripts/deploy.sh").exists());
//! # Ok(()) }
//! ```

pub use runbook_core::*;

/// Sandboxes, providers and the engine (the `runbook-exec` crate).
pub mod exec {
    pub use runbook_exec::*;
}

/// The handoff package (the `runbook-render` crate).
pub mod render {
    pub use runbook_render::*;
}

use std::path::Path;

pub mod findings;
pub mod matrix;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod ops;
mod rehearsal;
pub use rehearsal::{RehearsalOptions, rehearse, sandbox_values};

/// The README's code compiles (it is checked as a doctest).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Renders and writes the handoff package of a finished sandbox run: the amended
/// runbook with the values the run used, its evidence and its log. Refuses (and writes nothing) if any file would hold
/// one of the run's secrets. `replace` allows replacing a package this library wrote and
/// nobody changed since; a directory holding anything else is never replaced
/// ([`render::check_target`]).
pub fn write_package(
    outcome: &exec::Outcome,
    dir: &Path,
    replace: bool,
) -> Result<(), render::RenderError> {
    render_package(outcome)?.write_to(dir, replace)
}

/// Renders the handoff package of a finished sandbox run in memory (see
/// [`write_package`]): to rehearse it, or to write it yourself.
pub fn render_package(outcome: &exec::Outcome) -> Result<render::Package, render::RenderError> {
    let secrets: Vec<&str> = outcome.redactor.secrets().collect();
    let evidence = render::Evidence {
        report: &outcome.report,
        log: Some(outcome.log()),
    };
    render::Package::render_run(&outcome.runbook, &outcome.values, evidence, &secrets)
}
