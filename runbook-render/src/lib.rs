//! Render the verified handoff package of a runbook.
//!
//! Everything the human receives comes from one typed model: the
//! [`Runbook`](runbook_core::Runbook) and, when it was tested, its
//! [`Report`](runbook_core::report::Report). [`Package::render`] builds the whole
//! package in memory; [`Package::write_to`] writes it atomically.
//!
//! ```text
//! README.md                       the human runbook (markdown)
//! runbook.yaml                    the machine-readable runbook; parses back to the same model
//! runbook.schema.json             the JSON Schema of runbook.yaml
//! config/…                        every config file, ready to apply once the variables are set
//! scripts/deploy.sh               every step and its checks; stops at the first failure; --from STEP
//! scripts/rollback.sh             every rollback in reverse order, with its checks
//! scripts/verify.sh               the checks alone
//! test-results/sandbox-log.txt    the full, redacted log of the sandbox run
//! test-results/test-summary.yaml  per step: attempts, durations, verdicts
//! test-results/junit.xml          the same for CI systems
//! adaptation-checklist.md         what to change for production
//! versions.yaml                   every tool / platform / image / chart / API version tested
//! SHA256SUMS                      the digest of every file above
//! ```
//!
//! Guarantees: no secret value reaches any file (checked before anything is written);
//! the same inputs give the same bytes; nothing is written outside the package; a
//! failure never leaves half a package.

mod checklist;
mod evidence;
mod markdown;
mod package;
mod scripts;
mod text;

pub use checklist::{adaptation_checklist, checklist_item, limitations};
pub use evidence::{junit, test_summary, versions};
pub use markdown::readme;
pub use package::{Evidence, MARKER, Package, RenderError, check_target, read_package};
pub use scripts::{deploy_script, probe_shell, rollback_script, verdict_line, verify_script};
