//! Lint rules that catch weak runbooks before they run.
//!
//! Each finding ([`Diagnostic`]) names its [`Rule`] (a stable code), a
//! [`Severity`], the path in the runbook (`steps[2].verify[0]`), what is wrong and
//! how to fix it. Errors stop a run; warnings travel with the runbook.

mod path;
mod removed_apis;
mod rules;
pub(crate) use rules::{MAX_NAME, reserved_names};
mod walk;

use std::fmt;

use serde::Serialize;

pub(crate) use path::{FieldPath, PathPart};
pub use removed_apis::{REMOVED_APIS, RemovedApi, manifest_headers, removed_api};
pub(crate) use rules::is_slug;
pub use rules::{SHELL_ENVIRONMENT, is_shell_environment, lint};
pub use walk::{RunbookText, TextKind};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The runbook is weaker than it should be.
    Warning,
    /// The runbook must not run.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! rules {
    ($($variant:ident $code:literal $sev:ident $doc:literal;)*) => {
        /// A lint rule. Its code (`duplicate-step-id`) is stable and shows in every finding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Rule {
            $(#[doc = $doc] $variant,)*
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &[Rule] = &[$(Rule::$variant),*];

            /// The stable code, e.g. `duplicate-step-id`.
            pub fn code(self) -> &'static str {
                match self { $(Rule::$variant => $code,)* }
            }

            /// The severity of the rule's findings.
            pub fn severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$sev,)* }
            }

            /// What the rule checks.
            pub fn description(self) -> &'static str {
                match self { $(Rule::$variant => $doc,)* }
            }
        }
    };
}

rules! {
    DuplicateStepId "duplicate-step-id" Error "Two steps share an id.";
    InvalidName "invalid-name" Error "A runbook name or step id is not a lowercase slug, or a variable name is not UPPER_SNAKE.";
    DuplicateVariable "duplicate-variable" Error "Two variables share a name.";
    UndeclaredVariable "undeclared-variable" Error "A command, check, rollback or config file uses a variable that is not declared.";
    MissingVerification "missing-verification" Error "A step has no verification: success must be confirmed, not assumed.";
    EmptyCommand "empty-command" Error "A step, check or rollback has an empty command.";
    ConfigPath "config-path" Error "A config file path is absolute, leaves `config/`, is repeated, or a step names a file that is not declared.";
    SecretLiteral "secret-literal" Error "A secret's sandbox value appears literally in the runbook.";
    InvalidSemver "invalid-semver" Error "A prerequisite's version requirement is not a valid semver requirement.";
    InvalidRegex "invalid-regex" Error "A `matches` condition or version pattern is not a valid regular expression.";
    RemovedApi "removed-api" Error "A manifest uses an apiVersion/kind removed in the target Kubernetes version.";
    DurationLimit "duration-limit" Error "A timeout, deadline or interval is longer than a sandbox run may last (7 days).";
    WorkdirOutside "workdir-outside" Error "A step's `workdir` is absolute or leaves the sandbox's work directory.";
    NulByte "nul-byte" Error "A text holds a NUL byte, which no command line, environment or shell script can carry: the sandbox and the package would differ.";
    ReservedVariable "reserved-variable" Error "A variable's name is one the dynamic loader, the shell or the sandbox reads or sets itself (`LD_PRELOAD`, `BASH_ENV`, `PATH`, …): its value would change what runs, not what the step does.";
    CredentialNotSecret "credential-not-secret" Error "A `credential` variable is neither `secret:` nor `generate: true`: its value would be shown and shipped.";
    UnusedVariable "unused-variable" Warning "A declared variable is never used.";
    NoRollback "no-rollback" Warning "A step changes something but has no rollback.";
    UnverifiedRollback "unverified-rollback" Warning "A rollback has no check: nothing confirms that it undid the step.";
    SandboxValueInCheck "sandbox-value-in-check" Warning "A check expects a variable's sandbox value literally: it fails wherever the value differs.";
    HardcodedEndpoint "hardcoded-endpoint" Warning "A command hard-codes a sandbox endpoint instead of using a variable.";
    HelmWithoutWait "helm-without-wait" Warning "`helm install`/`upgrade` without `--wait`: the next step may start before the release is ready.";
    ExitCodeOnly "exit-code-only" Warning "A verification only repeats the step's own command and exit code.";
    NoSandboxValue "no-sandbox-value" Warning "A variable has no sandbox value and is not generated: every run must pass it.";
    NoProductionGuidance "no-production-guidance" Warning "A variable says nothing about its production value.";
    UnaddressedLesson "unaddressed-lesson" Warning "A lesson from the lessons library applies to the runbook, which does not carry its pre-flight check or known issue.";
    Custom "custom" Warning "A rule of the caller's own (a `LintRule`); the finding carries its code.";
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The rule that fired ([`Rule::Custom`] for a caller's own rule).
    pub rule: Rule,
    /// The code of a caller's own rule (see [`LintRule`]).
    pub custom_code: Option<&'static str>,
    /// Its severity.
    pub severity: Severity,
    /// Where in the runbook: `steps[2].verify[0].run`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl Diagnostic {
    pub(crate) fn new(rule: Rule, path: String, message: String, help: impl Into<String>) -> Self {
        Diagnostic {
            rule,
            custom_code: None,
            severity: rule.severity(),
            path,
            message,
            help: help.into(),
        }
    }

    /// A finding of a caller's own rule: its code (`team-naming`), severity, the path in
    /// the runbook (`steps[2]`), what is wrong and how to fix it.
    pub fn custom(
        code: &'static str,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            rule: Rule::Custom,
            custom_code: Some(code),
            severity,
            path: path.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The rule's code: a built-in rule's, or a caller's own.
    pub fn code(&self) -> &str {
        self.custom_code.unwrap_or(self.rule.code())
    }

    /// Whether the finding is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}] {}: {} (fix: {})",
            self.severity,
            self.code(),
            self.path,
            self.message,
            self.help
        )
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Diagnostic", 5)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("help", &self.help)?;
        st.end()
    }
}

/// A rule of the caller's own, run beside the built-in ones by
/// [`Runbook::lint_with`](crate::Runbook::lint_with): a test suite's house rules.
///
/// ```
/// use runbook_core::lint::{Diagnostic, LintRule, Severity};
/// use runbook_core::{Check, Runbook, Step};
///
/// /// Every step id starts with a team prefix.
/// struct TeamPrefix;
/// impl LintRule for TeamPrefix {
///     fn check(&self, runbook: &Runbook) -> Vec<Diagnostic> {
///         runbook.steps.iter().enumerate()
///             .filter(|(_, s)| !s.id.starts_with("pay-"))
///             .map(|(i, s)| Diagnostic::custom("team-prefix", Severity::Error, format!("steps[{i}].id"),
///                 format!("step `{}` lacks the `pay-` prefix", s.id), "rename it `pay-…`"))
///             .collect()
///     }
/// }
/// let rb = Runbook::builder("demo")
///     .step(Step::new("deploy", "Deploy").run("true").read_only()
///         .verify(Check::command("echo ok").stdout_equals("ok")))
///     .build()?.runbook;
/// let findings = rb.lint_with(&[&TeamPrefix]);
/// assert_eq!(findings[0].code(), "team-prefix");
/// assert!(findings[0].is_error());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait LintRule {
    /// The findings on `runbook` (build them with [`Diagnostic::custom`]).
    fn check(&self, runbook: &crate::Runbook) -> Vec<Diagnostic>;
}
