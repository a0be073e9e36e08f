//! The runbook: header, metadata, target, and everything the steps need.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    ConfigFile, Diagnostic, Lifetime, Limitation, PreflightCheck, Prerequisite, Scenario, Severity,
    Step, Variable, lint,
};

/// The format version of a runbook file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// `runbook/v1`.
    #[default]
    #[serde(rename = "runbook/v1")]
    V1,
}

/// The kind of document; always `Runbook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// A runbook.
    #[default]
    Runbook,
}

/// A tested infrastructure runbook: the typed model behind `runbook.yaml`.
///
/// Build one with [`Runbook::builder`], or read one with [`crate::from_yaml_str`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Runbook {
    /// Always `runbook/v1`.
    pub api_version: ApiVersion,
    /// Always `Runbook`.
    pub kind: Kind,
    /// Name, title, description, version.
    pub metadata: Metadata,
    /// The environment the runbook targets.
    #[serde(default, skip_serializing_if = "Target::is_empty")]
    pub target: Target,
    /// Requirements gathered from the human.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// What success means, in the human's terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_criteria: Vec<String>,
    /// Tools that must be present, with version requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Values that change between the sandbox and production.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
    /// Checks run before step 1 changes anything: in the sandbox, and by `deploy.sh` on
    /// the target. Lessons learnt from production failures land here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightCheck>,
    /// Config files shipped with the runbook (templates under `config/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFile>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What sandbox testing could not cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limitations: Vec<Limitation>,
    /// Extra production adaptation checklist items, beyond those derived from the variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<String>,
    /// How the runbook should be sandboxed.
    #[serde(default, skip_serializing_if = "SandboxHints::is_empty")]
    pub sandbox: SandboxHints,
    /// The targets `runbook run --matrix` tests it against at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<crate::MatrixTarget>,
}

/// Name, title, description and version of a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// A lowercase slug (`postgres`), used in sandbox names.
    pub name: String,
    /// Human title ("Deploy PostgreSQL 15 for myapp").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// What the change is and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The runbook's own version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// The environment the runbook targets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// `kubernetes`, `linux`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `aws`, `gcp`, `azure`, `on-prem`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Target Kubernetes version (`1.29`); enables the removed-API lint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// `amd64`, `arm64`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The container image that stands for the target (`localhost/base:bookworm`,
    /// `docker.io/library/debian:12`): the container provider runs the sandbox in it
    /// (`--image` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Target {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Target::default()
    }
}

/// How the runbook should be sandboxed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxHints {
    /// An explicit lifetime; overrides the recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
    /// What the run is for; drives [`crate::recommend_lifetime`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    /// What the sandbox may use (the container provider enforces them).
    #[serde(default, skip_serializing_if = "SandboxLimits::is_empty")]
    pub limits: SandboxLimits,
}

/// What a sandbox may use: memory, processes, CPUs. The container provider enforces
/// them (a step past the memory limit is killed, one past the process limit cannot
/// fork); the report records them.
///
/// ```
/// use runbook_core::SandboxLimits;
/// let limits = SandboxLimits { memory: Some("512Mi".into()), pids: Some(256), cpus: Some("1.5".into()) };
/// assert_eq!(limits.memory_bytes(), Ok(Some(512 * 1024 * 1024)));
/// assert_eq!(limits.nano_cpus(), Ok(Some(1_500_000_000)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxLimits {
    /// Memory: bytes, or a number with `Ki`, `Mi`, `Gi` (binary) or `k`, `M`, `G`
    /// (decimal) after it (`512Mi`); at least 6 MiB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "memory_limit"
    )]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub memory: Option<String>,
    /// The most processes (and threads) at once, from 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "pid_limit"
    )]
    #[schemars(range(min = 1))]
    pub pids: Option<u32>,
    /// CPUs, in decimal (`"0.5"`, `"2"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cpu_limit"
    )]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub cpus: Option<String>,
}

impl SandboxLimits {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == SandboxLimits::default()
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> Result<Option<u64>, String> {
        self.memory.as_deref().map(parse_memory).transpose()
    }

    /// The CPU limit in billionths of a CPU, as container engines take it.
    pub fn nano_cpus(&self) -> Result<Option<i64>, String> {
        self.cpus.as_deref().map(parse_cpus).transpose()
    }

    /// `other`'s limits where it sets one, else these.
    pub fn overridden_by(&self, other: &SandboxLimits) -> SandboxLimits {
        SandboxLimits {
            memory: other.memory.clone().or_else(|| self.memory.clone()),
            pids: other.pids.or(self.pids),
            cpus: other.cpus.clone().or_else(|| self.cpus.clone()),
        }
    }
}

/// The smallest memory limit container engines accept.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// `512Mi`, `1.5Gi`, `600M`, `268435456` in bytes.
fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "T" => 1000_u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "memory `{text}` has an unknown unit `{unit}`: use bytes, or Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal), as in `512Mi`"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("memory `{text}` is not a number with a unit, as in `512Mi`"))?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes < MIN_MEMORY as f64 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!(
            "memory `{text}` is out of range: a sandbox needs at least 6Mi"
        ));
    }
    Ok(bytes as u64)
}

/// `0.5`, `2` in billionths of a CPU.
fn parse_cpus(text: &str) -> Result<i64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|_| text.trim().chars().all(|c| c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("cpus `{text}` is not a decimal number, as in `0.5` or `2`"))?;
    let nano = (value * 1e9).round();
    if !(1e7..=1e12).contains(&nano) {
        return Err(format!("cpus `{text}` is out of range: use 0.01 to 1000"));
    }
    Ok(nano as i64)
}

fn memory_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    parse_memory(&text).map_err(serde::de::Error::custom)?;
    Ok(Some(text))
}

fn pid_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(serde::de::Error::custom(
            "pids 0 is out of range: a sandbox needs at least 1 process",
        )),
        n => Ok(Some(n)),
    }
}

fn cpu_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    parse_cpus(&text).map_err(serde::de::Error::custom)?;
    Ok(Some(text))
}

impl SandboxHints {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == SandboxHints::default()
    }
}

impl Runbook {
    /// Starts building a runbook named `name` (a lowercase slug).
    pub fn builder(name: impl Into<String>) -> RunbookBuilder {
        RunbookBuilder {
            runbook: Runbook {
                api_version: ApiVersion::V1,
                kind: Kind::Runbook,
                metadata: Metadata {
                    name: name.into(),
                    ..Metadata::default()
                },
                target: Target::default(),
                requirements: Vec::new(),
                success_criteria: Vec::new(),
                prerequisites: Vec::new(),
                variables: Vec::new(),
                preflight: Vec::new(),
                config_files: Vec::new(),
                steps: Vec::new(),
                limitations: Vec::new(),
                checklist: Vec::new(),
                sandbox: SandboxHints::default(),
                targets: Vec::new(),
            },
        }
    }

    /// Runs every lint rule; see [`crate::lint`].
    pub fn lint(&self) -> Vec<Diagnostic> {
        lint::lint(self)
    }

    /// Runs every lint rule, then the caller's own rules (see [`lint::LintRule`]).
    pub fn lint_with(&self, rules: &[&dyn lint::LintRule]) -> Vec<Diagnostic> {
        let mut out = self.lint();
        for rule in rules {
            out.extend(rule.check(self));
        }
        out
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The variable with this name.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The config file at this path.
    pub fn config_file(&self, path: &str) -> Option<&ConfigFile> {
        self.config_files.iter().find(|f| f.path == path)
    }

    /// The title, or the name when there is no title.
    pub fn display_title(&self) -> &str {
        if self.metadata.title.is_empty() {
            &self.metadata.name
        } else {
            &self.metadata.title
        }
    }
}

/// Builds a [`Runbook`] fluently; [`RunbookBuilder::build`] lints it.
///
/// ```
/// use std::time::Duration;
/// use runbook_core::{Category, Check, Runbook, Step, Variable};
/// let built = Runbook::builder("postgres")
///     .title("PostgreSQL for myapp")
///     .variable(Variable::new("PGPORT", Category::Endpoint).sandbox("55432")
///         .production("The port of your PostgreSQL server"))
///     .step(Step::new("check-server", "Check the server answers")
///         .run("pg_isready -p \"$PGPORT\"")
///         .read_only()
///         .verify(Check::command("pg_isready -p \"$PGPORT\"")
///             .stdout_contains("accepting connections")
///             .within(Duration::from_secs(30))))
///     .build()?;
/// assert!(built.warnings.is_empty());
/// assert_eq!(built.runbook.steps[0].id, "check-server");
/// # Ok::<(), runbook_core::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RunbookBuilder {
    runbook: Runbook,
}

/// A runbook that passed every error-level lint rule, with the warnings found.
#[derive(Debug, Clone)]
pub struct Built {
    /// The runbook.
    pub runbook: Runbook,
    /// Warning-level findings; the runbook is usable, but weaker than it should be.
    pub warnings: Vec<Diagnostic>,
}

/// A runbook that failed error-level lint rules.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the runbook has {} error(s):\n{}", self.errors().count(), render(&self.diagnostics))]
pub struct BuildError {
    /// Every finding, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl BuildError {
    /// The error-level findings.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl RunbookBuilder {
    /// Sets the human title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.runbook.metadata.title = title.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.runbook.metadata.description = text.into();
        self
    }

    /// Sets the runbook's own version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.runbook.metadata.version = version.into();
        self
    }

    /// Sets the target environment.
    pub fn target(mut self, target: Target) -> Self {
        self.runbook.target = target;
        self
    }

    /// Adds a requirement.
    pub fn requirement(mut self, text: impl Into<String>) -> Self {
        self.runbook.requirements.push(text.into());
        self
    }

    /// Adds a success criterion.
    pub fn success_criterion(mut self, text: impl Into<String>) -> Self {
        self.runbook.success_criteria.push(text.into());
        self
    }

    /// Adds a prerequisite tool.
    pub fn prerequisite(mut self, prerequisite: Prerequisite) -> Self {
        self.runbook.prerequisites.push(prerequisite);
        self
    }

    /// Adds an adaptation variable.
    pub fn variable(mut self, variable: Variable) -> Self {
        self.runbook.variables.push(variable);
        self
    }

    /// Adds an item to the pre-flight checklist.
    pub fn preflight(mut self, item: PreflightCheck) -> Self {
        self.runbook.preflight.push(item);
        self
    }

    /// Adds a config file.
    pub fn config_file(mut self, file: ConfigFile) -> Self {
        self.runbook.config_files.push(file);
        self
    }

    /// Adds a step.
    pub fn step(mut self, step: Step) -> Self {
        self.runbook.steps.push(step);
        self
    }

    /// Adds a limitation of sandbox testing.
    pub fn limitation(mut self, limitation: Limitation) -> Self {
        self.runbook.limitations.push(limitation);
        self
    }

    /// Adds an extra item to the production adaptation checklist.
    pub fn checklist_item(mut self, text: impl Into<String>) -> Self {
        self.runbook.checklist.push(text.into());
        self
    }

    /// Declares what the sandbox run is for (drives the lifetime recommendation).
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.runbook.sandbox.scenario = Some(scenario);
        self
    }

    /// Chooses the sandbox lifetime explicitly.
    pub fn lifetime(mut self, lifetime: Lifetime) -> Self {
        self.runbook.sandbox.lifetime = Some(lifetime);
        self
    }

    /// Lints the runbook: errors fail the build, warnings travel with the result.
    pub fn build(self) -> Result<Built, BuildError> {
        let diagnostics = self.runbook.lint();
        if diagnostics.iter().any(|d| d.severity == Severity::Error) {
            return Err(BuildError { diagnostics });
        }
        Ok(Built {
            runbook: self.runbook,
            warnings: diagnostics,
        })
    }

    /// The runbook without linting (for tests that want a broken one).
    pub fn build_unchecked(self) -> Runbook {
        self.runbook
    }
}
