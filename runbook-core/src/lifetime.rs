//! Sandbox lifetimes and the seed's table for choosing one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Runbook;

/// How long a sandbox lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Lifetime {
    /// Minutes: destroyed when the run ends, whatever happens.
    Ephemeral,
    /// Hours: kept across many calls of one session; destroyed when the session ends.
    Session,
    /// Days: survives the process; resumed by id later (upgrade paths, benchmarks).
    Persistent,
}

impl Lifetime {
    /// `ephemeral`, `session` or `persistent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::Ephemeral => "ephemeral",
            Lifetime::Session => "session",
            Lifetime::Persistent => "persistent",
        }
    }
}

impl std::fmt::Display for Lifetime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Lifetime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ephemeral" => Ok(Lifetime::Ephemeral),
            "session" => Ok(Lifetime::Session),
            "persistent" => Ok(Lifetime::Persistent),
            other => Err(format!(
                "unknown lifetime `{other}`: use ephemeral, session or persistent"
            )),
        }
    }
}

/// What the sandbox run is for; picks the lifetime as the seed's table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Scenario {
    /// Validate a single manifest or build: one step, pass/fail.
    Validation,
    /// Deploy several dependent components in order.
    Deployment,
    /// Debug a failure iteratively.
    Debugging,
    /// Test an upgrade from one version to the next (needs the old state).
    UpgradePath,
    /// A long-running performance benchmark.
    Benchmark,
}

/// A recommended lifetime and the reason, from the seed's "Choosing the Right Environment".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifetimeRecommendation {
    /// The lifetime to use.
    pub lifetime: Lifetime,
    /// Why, in the seed's words.
    pub reason: &'static str,
}

/// Picks a sandbox lifetime for `runbook`.
///
/// An explicit `sandbox.lifetime` wins. Otherwise: an upgrade path or a benchmark
/// needs a persistent sandbox; debugging or several dependent steps need a session;
/// one stateless step is ephemeral.
///
/// ```
/// use runbook_core::{recommend_lifetime, Check, Lifetime, Runbook, Step};
/// let one = Runbook::builder("lint-chart")
///     .step(Step::new("template", "Render the chart").run("helm template ./chart").read_only()
///         .verify(Check::command("helm lint ./chart").stdout_contains("0 chart(s) failed")))
///     .build_unchecked();
/// assert_eq!(recommend_lifetime(&one).lifetime, Lifetime::Ephemeral);
/// ```
pub fn recommend_lifetime(runbook: &Runbook) -> LifetimeRecommendation {
    if let Some(lifetime) = runbook.sandbox.lifetime {
        return LifetimeRecommendation {
            lifetime,
            reason: "chosen explicitly in the runbook",
        };
    }
    let (lifetime, reason) = match runbook.sandbox.scenario {
        Some(Scenario::UpgradePath) => (
            Lifetime::Persistent,
            "needs v1 state before starting the v2 upgrade",
        ),
        Some(Scenario::Benchmark) => (Lifetime::Persistent, "needs sustained load over time"),
        Some(Scenario::Debugging) => (
            Lifetime::Session,
            "iterative, needs state from previous attempts",
        ),
        _ if runbook.steps.len() > 1 => (
            Lifetime::Session,
            "multiple steps, dependency order matters",
        ),
        _ => (Lifetime::Ephemeral, "one step, no state needed"),
    };
    LifetimeRecommendation { lifetime, reason }
}
