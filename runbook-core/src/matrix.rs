//! A version matrix: the targets a runbook is tested against at once (`targets:`), each
//! with its image (container provider), kube context (kube provider) or nothing (local),
//! the values that differ on it, and whether it is expected to work.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One target of the matrix.
///
/// ```
/// let yaml = "name: pg17\nimage: localhost/pg:17\nexpect: fail\nreason: PostgreSQL 17 refuses it\n";
/// let t: runbook_core::MatrixTarget = serde_saphyr::from_str(yaml).unwrap();
/// assert_eq!(t.expect, runbook_core::Expectation::Fail);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatrixTarget {
    /// A lowercase slug (`pg15`, `staging`): its package's directory and its column.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 40))]
    pub name: String,
    /// The image that stands for this target (the container provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The kube context of this target (the kube provider); it must be allowed as a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Variable values that differ on this target (over the sandbox values and `--var`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// Whether the runbook is expected to work here (default `pass`).
    #[serde(default, skip_serializing_if = "Expectation::is_pass")]
    pub expect: Expectation,
    /// Why it is expected to fail: the package says "not supported on NAME, because …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MatrixTarget {
    /// A target named `name` with nothing set.
    pub fn new(name: impl Into<String>) -> Self {
        MatrixTarget {
            name: name.into(),
            image: None,
            context: None,
            values: BTreeMap::new(),
            expect: Expectation::Pass,
            reason: None,
        }
    }

    /// What is wrong with it, if anything: a name that is no slug, `expect: fail`
    /// without a reason.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let slug = !self.name.is_empty()
            && self.name.len() <= 40
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.name.starts_with('-')
            && !self.name.ends_with('-');
        if !slug {
            out.push(format!(
                "target name `{}` is not a lowercase slug of at most 40 characters (`pg15`, `staging`)",
                self.name
            ));
        }
        if self.expect == Expectation::Fail && self.reason.as_deref().is_none_or(str::is_empty) {
            out.push(format!(
                "target `{}` is expected to fail without a `reason`: say why, the package repeats it",
                self.name
            ));
        }
        out
    }
}

/// Whether a target is expected to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// The runbook must pass here.
    #[default]
    Pass,
    /// The runbook must fail here (a version it does not support).
    Fail,
}

impl Expectation {
    fn is_pass(&self) -> bool {
        *self == Expectation::Pass
    }
}
