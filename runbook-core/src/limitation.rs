//! What a sandbox could not test, said honestly.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Runbook;
use crate::report::Report;

/// A limitation of sandbox testing: what was not tested, and what to do about it
/// before production.
///
/// ```
/// use runbook_core::{Limitation, LimitationKind};
/// let l = Limitation::standard(LimitationKind::SingleNode);
/// assert!(l.untested.iter().any(|u| u.contains("anti-affinity")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limitation {
    /// The kind of gap.
    pub kind: LimitationKind,
    /// A headline; defaults to the kind's own ("Single-node sandbox").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What was not tested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untested: Vec<String>,
    /// What to do in production before relying on the change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub production: Vec<String>,
}

/// The kinds of sandbox gap the seed names, plus custom ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LimitationKind {
    /// No production traffic patterns; no load test.
    NoRealTraffic,
    /// One node, limited resources: multi-node behaviour untested.
    SingleNode,
    /// Synthetic or empty data.
    NoProductionData,
    /// A fresh cloud account without accumulated state.
    CleanCloudAccount,
    /// The sandbox had no network access beyond loopback.
    NetworkIsolated,
    /// Anything else; give a title.
    Custom,
}

impl LimitationKind {
    /// The headline of this kind.
    pub fn title(self) -> &'static str {
        match self {
            LimitationKind::NoRealTraffic => "Load testing not included",
            LimitationKind::SingleNode => "Single-node sandbox",
            LimitationKind::NoProductionData => "No production data tested",
            LimitationKind::CleanCloudAccount => "Clean cloud account",
            LimitationKind::NetworkIsolated => "Network-isolated sandbox",
            LimitationKind::Custom => "Other limitation",
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Limitation {
    /// A limitation of `kind` with nothing filled in.
    pub fn new(kind: LimitationKind) -> Self {
        Limitation {
            kind,
            title: None,
            untested: Vec::new(),
            production: Vec::new(),
        }
    }

    /// A custom limitation with a title.
    pub fn custom(title: impl Into<String>) -> Self {
        Limitation {
            title: Some(title.into()),
            ..Limitation::new(LimitationKind::Custom)
        }
    }

    /// The seed's standard wording for `kind`: what goes untested and what to do.
    pub fn standard(kind: LimitationKind) -> Self {
        Self::standard_for(kind, true)
    }

    /// The standard wording for a runbook that targets Kubernetes (`kubernetes`) or
    /// hosts: a runbook that writes files on a host gets no item about pods or
    /// autoscalers.
    pub fn standard_for(kind: LimitationKind, kubernetes: bool) -> Self {
        let (untested, production): (&[&str], &[&str]) = match kind {
            LimitationKind::NoRealTraffic if !kubernetes => (
                &["Behaviour under production traffic patterns and load"],
                &[
                    "Run a load test with your expected traffic profile",
                    "Watch CPU, memory and connection use under concurrent load",
                ],
            ),
            LimitationKind::SingleNode if !kubernetes => (
                &["Behaviour across several hosts (failover, replication)"],
                &["Exercise it on a multi-host staging environment before production"],
            ),
            LimitationKind::NoProductionData if !kubernetes => (
                &[
                    "Migrations against real data volumes",
                    "Performance with production data",
                    "Backup and restore with real data",
                ],
                &[
                    "Rehearse on a staging host with a copy of production data",
                    "Run the migration there and verify data integrity",
                    "Only then run it on production",
                ],
            ),
            LimitationKind::NoRealTraffic => (
                &["Behaviour under production traffic patterns and load"],
                &[
                    "Run a load test with your expected traffic profile",
                    "Verify that the Horizontal Pod Autoscaler triggers at the configured thresholds",
                    "Test database connection pool exhaustion under concurrent load",
                ],
            ),
            LimitationKind::SingleNode => (
                &[
                    "Pod anti-affinity rules (require multiple nodes)",
                    "Zone-aware topology spread constraints",
                    "Node failure recovery and pod rescheduling",
                    "PodDisruptionBudget behavior during rolling updates",
                ],
                &["Exercise these on a multi-node staging cluster before production"],
            ),
            LimitationKind::NoProductionData => (
                &[
                    "Schema migrations against real data volumes",
                    "Query performance with production data",
                    "Backup and restore with real data",
                ],
                &[
                    "Deploy to a staging namespace with a copy of production data",
                    "Run the schema migration and verify data integrity",
                    "Test the application against real data patterns",
                    "Only then deploy to the production namespace",
                ],
            ),
            LimitationKind::CleanCloudAccount => (
                &["Interaction with pre-existing IAM policies, VPCs and security groups"],
                &[
                    "VPC CIDR ranges do not conflict with the proposed subnet allocation",
                    "Security groups allow the required port ranges",
                    "IAM role trust policies reference the correct OIDC provider",
                    "Service quotas are sufficient (cluster and instance limits)",
                ],
            ),
            LimitationKind::NetworkIsolated => (
                &["Reachability of external services (registries, APIs, DNS) from the target"],
                &["Verify outbound access and firewall rules from the production hosts"],
            ),
            LimitationKind::Custom => (&[], &[]),
        };
        Limitation {
            kind,
            title: None,
            untested: strings(untested),
            production: strings(production),
        }
    }

    /// Adds something that was not tested.
    pub fn untested(mut self, item: impl Into<String>) -> Self {
        self.untested.push(item.into());
        self
    }

    /// Adds something to do in production.
    pub fn in_production(mut self, item: impl Into<String>) -> Self {
        self.production.push(item.into());
        self
    }

    /// The headline: the title, or the kind's.
    pub fn headline(&self) -> &str {
        self.title.as_deref().unwrap_or(self.kind.title())
    }
}

/// The runbook's limitations, plus those the sandbox itself implies (one node, no real
/// traffic, network isolation), each kind once, the runbook's own wording first.
pub fn limitations(runbook: &Runbook, report: Option<&Report>) -> Vec<Limitation> {
    let kubernetes = targets_kubernetes(runbook, report);
    // A limitation declared by kind alone gets the seed's standard wording, for the
    // platform the runbook targets.
    let mut out: Vec<Limitation> = runbook
        .limitations
        .iter()
        .map(|l| {
            let standard = Limitation::standard_for(l.kind, kubernetes);
            Limitation {
                untested: if l.untested.is_empty() {
                    standard.untested
                } else {
                    l.untested.clone()
                },
                production: if l.production.is_empty() {
                    standard.production
                } else {
                    l.production.clone()
                },
                ..l.clone()
            }
        })
        .collect();
    if let Some(report) = report {
        let mut implied = vec![LimitationKind::NoRealTraffic];
        // 0 means the provider could not count the nodes: no claim either way. One host
        // only limits a runbook meant for a cluster.
        if report.sandbox.nodes == 1 && kubernetes {
            implied.push(LimitationKind::SingleNode);
        }
        if report.sandbox.network_isolated {
            implied.push(LimitationKind::NetworkIsolated);
        }
        for kind in implied {
            if !out.iter().any(|l| l.kind == kind) {
                out.push(Limitation::standard_for(kind, kubernetes));
            }
        }
    }
    out
}

/// Whether the runbook is about Kubernetes: its target platform, a target version, a
/// typed Kubernetes check, `kubectl`/`helm` in its commands, or a run on the kube
/// provider. The package's words follow it (a namespace, a cluster, pods).
pub fn targets_kubernetes(runbook: &Runbook, report: Option<&Report>) -> bool {
    runbook
        .target
        .platform
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("kubernetes"))
        || runbook.target.kubernetes_version.is_some()
        || report.is_some_and(|r| r.sandbox.provider == "kube")
        || runbook.steps.iter().any(|s| {
            s.run.contains("kubectl ")
                || s.run.contains("helm ")
                || s.verify
                    .iter()
                    .any(|c| matches!(c.probe, crate::Probe::Kube(_)))
        })
}
