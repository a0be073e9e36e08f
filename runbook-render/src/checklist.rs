//! The production adaptation checklist and the limitations of sandbox testing.

use std::fmt::Write;

use runbook_core::report::Report;
use runbook_core::{Category, ConfigFile, Runbook, ValueKind, Variable};

use crate::text::code;

/// What the package is about and what it holds. The checklist's and the README's words
/// follow these: a NetworkPolicy manifest is "included" only when one is, a cluster is
/// named only for a runbook that targets Kubernetes.
pub(crate) struct Facts<'a> {
    /// The runbook targets Kubernetes ([`runbook_core::targets_kubernetes`]).
    pub(crate) kubernetes: bool,
    /// Config files that are Kubernetes manifests (an `apiVersion:` and a `kind:` line)
    /// holding a NetworkPolicy.
    pub(crate) network_policies: Vec<&'a str>,
}

impl<'a> Facts<'a> {
    /// The facts of `runbook` (and of its run, when it was tested).
    pub(crate) fn of(runbook: &'a Runbook, report: Option<&Report>) -> Self {
        let has_line = |content: &str, key: &str| {
            content
                .lines()
                .any(|l| l.trim_start().trim_start_matches("- ").starts_with(key))
        };
        let manifests: Vec<&ConfigFile> = runbook
            .config_files
            .iter()
            .filter(|f| has_line(&f.content, "apiVersion:") && has_line(&f.content, "kind:"))
            .collect();
        let network_policies = manifests
            .iter()
            .filter(|f| {
                f.content.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.trim().trim_start_matches("- ") == "kind" && v.trim() == "NetworkPolicy"
                    })
                })
            })
            .map(|f| f.path.as_str())
            .collect();
        Facts {
            kubernetes: runbook_core::targets_kubernetes(runbook, report),
            network_policies,
        }
    }
}

/// One checklist line for a variable of `runbook`, in the seed's form:
/// `**Namespace** (`NAMESPACE`): change from `sandbox-test` to your target namespace.`
///
/// Its words follow the target platform, the variable's category, what its value is
/// (a port is a port, an address range an address range) and what the package holds:
/// "the included NetworkPolicy manifests" only when it includes some.
pub fn checklist_item(runbook: &Runbook, report: Option<&Report>, v: &Variable) -> String {
    item(&Facts::of(runbook, report), v)
}

fn item(facts: &Facts<'_>, v: &Variable) -> String {
    let sandbox = if v.hides_value() {
        None
    } else {
        v.sandbox.as_deref()
    };
    let kind = sandbox.map(|s| v.value_kind(s));
    let from = |what: &str| match sandbox {
        Some(s) => format!("{what} from {}", code(s)),
        None => what.to_owned(),
    };
    let k8s = facts.kubernetes;
    let port =
        kind == Some(ValueKind::Port) && matches!(v.category, Category::Endpoint | Category::Other);
    let label = match v.category {
        _ if port => "Port",
        Category::Namespace if !k8s => "Scope",
        Category::StorageClass if !k8s => "Storage",
        Category::NetworkPolicy if !k8s => "Network access",
        c => c.label(),
    };
    let action = if let Some(secret) = &v.secret {
        let origin = if v.generate {
            "the throwaway value generated for each sandbox run"
        } else {
            "the sandbox value"
        };
        format!(
            "replace {origin} with the production value from {} ({})",
            secret.source.label(),
            code(&secret.reference)
        )
    } else if port {
        format!("{} to the port it uses in production", from("change"))
    } else {
        match v.category {
            Category::Namespace if k8s => format!("{} to your target namespace", from("change")),
            Category::Namespace => format!(
                "{} to the scope (prefix, tenant or instance name) of your production deployment",
                from("change")
            ),
            Category::Endpoint => {
                let what = match kind {
                    Some(ValueKind::Address) => "address",
                    Some(ValueKind::Cidr) => "address ranges",
                    Some(ValueKind::Url) => "URL",
                    Some(ValueKind::Hostname) => "hostname",
                    _ => "endpoint",
                };
                format!("{} to your production {what}", from("update"))
            }
            Category::Credential => format!(
                "{} to the production credential from your secret manager",
                from("replace")
            ),
            Category::Resources => format!("{} to production values", from("increase")),
            Category::Replicas => format!(
                "{} to your HA requirements (minimum 2 for stateless services, 3 for stateful)",
                from("increase")
            ),
            Category::StorageClass => {
                let what = if k8s {
                    "verify the StorageClass name matches your cluster"
                } else {
                    "verify the storage matches your production hosts' volumes"
                };
                match sandbox {
                    Some(s) => format!("{what} (sandbox used {})", code(s)),
                    None => what.to_owned(),
                }
            }
            Category::Hostname => format!("{} to your production domain", from("update")),
            Category::Tls => format!(
                "configure the production certificate ({})",
                from("replacing the sandbox setting")
            ),
            Category::NetworkPolicy if !facts.network_policies.is_empty() => {
                let files: Vec<String> = facts.network_policies.iter().map(|f| code(f)).collect();
                format!(
                    "verify the included NetworkPolicy manifests ({}) match your cluster's policy model{}",
                    files.join(", "),
                    sandbox
                        .map(|s| format!(" (sandbox used {})", code(s)))
                        .unwrap_or_default()
                )
            }
            Category::NetworkPolicy if k8s => format!(
                "{} to what your cluster's network policies allow",
                from("change")
            ),
            Category::NetworkPolicy => match kind {
                Some(ValueKind::Cidr) => format!(
                    "{} to the address ranges allowed to connect in production",
                    from("change")
                ),
                Some(ValueKind::Address) => format!(
                    "{} to the addresses allowed to connect in production",
                    from("change")
                ),
                _ => format!(
                    "{} to the access rule of your production network (firewall, allow-list)",
                    from("change")
                ),
            },
            Category::Other => format!("{} to the production value", from("change")),
        }
    };
    let mut line = format!("**{label}** ({}): {action}.", code(&v.name));
    if !v.production.trim().is_empty() {
        let _ = write!(line, " Production: {}", v.production.trim());
        if !line.ends_with('.') {
            line.push('.');
        }
    }
    line
}

/// The checklist as markdown list items (`- [ ] …`).
pub fn checklist_items(runbook: &Runbook, report: Option<&Report>) -> String {
    let facts = Facts::of(runbook, report);
    let mut out = String::new();
    for v in &runbook.variables {
        let _ = writeln!(out, "- [ ] {}", item(&facts, v));
    }
    for item in &runbook.checklist {
        let _ = writeln!(out, "- [ ] {}", item.trim());
    }
    out
}

/// `adaptation-checklist.md`.
pub fn adaptation_checklist(runbook: &Runbook, report: Option<&Report>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Production Adaptation Checklist: {}\n",
        runbook.display_title()
    );
    let _ = writeln!(out, "> {}\n", crate::scripts::verdict_line(report));
    out.push_str("Before executing this runbook on production, update the following. Every script refuses to\n");
    out.push_str("start until each variable below is set in its environment.\n\n");
    out.push_str(&checklist_items(runbook, report));
    let limits = limitations(runbook, report);
    if !limits.is_empty() {
        out.push_str("\n## Not covered by the sandbox test\n\n");
        for l in &limits {
            for p in &l.production {
                let _ = writeln!(out, "- [ ] {} ({})", p.trim(), l.headline());
            }
        }
    }
    out
}

/// The runbook's limitations, plus those the sandbox implies (defined in the model:
/// [`runbook_core::limitations`]).
pub use runbook_core::limitations;

/// The "Limitations of Sandbox Testing" section body.
pub fn limitations_markdown(runbook: &Runbook, report: Option<&Report>) -> String {
    let mut out = String::new();
    let limits = limitations(runbook, report);
    if limits.is_empty() {
        out.push_str("No limitations were declared. A sandbox is not production: review the steps with your\nenvironment in mind.\n");
    }
    for l in limits {
        let _ = writeln!(out, "**{}.**", l.headline().trim_end_matches('.'));
        if !l.untested.is_empty() {
            out.push_str("The following were not tested in this sandbox:\n");
            for u in &l.untested {
                let _ = writeln!(out, "- {}", u.trim());
            }
        }
        if !l.production.is_empty() {
            out.push_str("Before production:\n");
            for p in &l.production {
                let _ = writeln!(out, "- {}", p.trim());
            }
        }
        out.push('\n');
    }
    out
}
