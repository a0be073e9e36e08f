//! The typed model of a tested infrastructure runbook.
//!
//! A [`Runbook`] is a list of [`Step`]s, each with the command exactly as the human
//! will run it, its [`Check`]s (positive confirmations, retried until a deadline
//! for states that become true eventually), its [`Rollback`] and the
//! [`KnownIssue`]s met while testing it. Values that change between the sandbox and
//! production are [`Variable`]s (some of them secrets); config files are
//! [`ConfigFile`] templates; what the sandbox could not test is a [`Limitation`];
//! the tools needed are [`Prerequisite`]s with semver requirements; the sandbox
//! [`Lifetime`] is recommended by [`recommend_lifetime`].
//!
//! Runbooks are built in Rust with [`Runbook::builder`] or read from YAML/JSON
//! ([`from_yaml_str`], [`load`]), checked by the [`lint`] rules, and described by a
//! JSON Schema ([`json_schema`]). The evidence of a sandbox run is a [`report::Report`].
//!
//! This crate has no runtime: no tokio, no processes. `runbook-exec` runs runbooks,
//! `runbook-render` writes the handoff package.
//!
//! ```
//! use std::time::Duration;
//! use runbook_core::{Category, Check, Rollback, Runbook, Step, Variable};
//!
//! let built = Runbook::builder("postgres")
//!     .title("Deploy PostgreSQL")
//!     .variable(Variable::new("NAMESPACE", Category::Namespace)
//!         .sandbox("sandbox-test")
//!         .production("Your target namespace"))
//!     .step(Step::new("deploy-db", "Deploy PostgreSQL")
//!         .run("helm install db bitnami/postgresql -n \"$NAMESPACE\" --wait --timeout 120s")
//!         .verify(Check::command("kubectl get pods -n \"$NAMESPACE\" -o jsonpath='{.items[0].status.phase}'")
//!             .stdout_equals("Running")
//!             .within(Duration::from_secs(60)))
//!         .rollback_with(Rollback::new("helm uninstall db -n \"$NAMESPACE\" --wait")
//!             .verify(Check::command("helm status db -n \"$NAMESPACE\"").exit_code(1))))
//!     .build()?;
//! assert!(built.warnings.is_empty());
//!
//! let yaml = runbook_core::to_yaml_string(&built.runbook);
//! assert_eq!(runbook_core::from_yaml_str(&yaml)?, built.runbook);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;
mod duration;
mod fast_yaml;
pub mod feedback;
mod format;
mod lesson;
mod lifetime;
mod limitation;
pub mod lint;
mod matrix;
mod plain;
mod preflight;
pub mod prerequisite;
pub mod report;
mod role;
mod runbook;
mod scalars;
mod schema;
pub mod shell;
mod step;
pub mod template;
mod variable;

pub use check::{
    Check, DEFAULT_CHECK_TIMEOUT, Expect, FileProbe, HttpProbe, KubeCheck, KubeObjectRef, Probe,
    ProcessProbe, Retry, TcpProbe, TextMatch,
};
pub use duration::{DurationError, HumanDuration};
pub use feedback::Feedback;
pub use format::{
    ParseError, SourceMap, careful_from_yaml_str, feedback_from_yaml_str, from_json_str,
    from_yaml_str, lesson_from_yaml_str, load, load_feedback, load_lessons, report_from_yaml_str,
    to_json_string, to_yaml, to_yaml_string, without_values,
};
pub use lesson::{
    Adoption, Applies, Lesson, LessonDraft, LessonError, LessonKind, LessonOrigin, ToolMatcher,
    invoked_tools, slugify, unaddressed_lessons,
};
pub use lifetime::{Lifetime, LifetimeRecommendation, Scenario, recommend_lifetime};
pub use limitation::{Limitation, LimitationKind, limitations, targets_kubernetes};
pub use lint::{Diagnostic, Rule, RunbookText, Severity, TextKind};
pub use matrix::{Expectation, MatrixTarget};
pub use preflight::PreflightCheck;
pub use prerequisite::Prerequisite;
pub use role::LessonRole;
pub use runbook::{
    ApiVersion, BuildError, Built, Kind, Metadata, Runbook, RunbookBuilder, SandboxHints,
    SandboxLimits, Target,
};
pub use schema::{
    feedback_json_schema, finish_schema, json_schema, json_schema_value, lesson_json_schema,
};
pub use step::{DEFAULT_STEP_TIMEOUT, KnownIssue, Rollback, Step};
pub use variable::{Category, ConfigFile, SecretRef, SecretSource, ValueKind, Variable};
