//! The production adaptation checklist and the limitations of sandbox testing.

use std::fmt::Write;

use runbook_core::report::Report;
use runbook_core::{Category, Runbook, Variable};

use crate::text::code;

/// One checklist line for a variable, in the seed's form:
/// `**Namespace** (`NAMESPACE`): change from `sandbox-test` to your target namespace.`
pub fn checklist_item(v: &Variable) -> String {
    let sandbox = if v.hides_value() {
        None
    } else {
        v.sandbox.as_deref()
    };
    let from = |what: &str| match sandbox {
        Some(s) => format!("{what} from {}", code(s)),
        None => what.to_owned(),
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
    } else {
        match v.category {
            Category::Namespace => format!("{} to your target namespace", from("change")),
            Category::Endpoint => format!("{} to your production endpoint", from("update")),
            Category::Credential => format!(
                "{} to the production credential from your secret manager",
                from("replace")
            ),
            Category::Resources => format!("{} to production values", from("increase")),
            Category::Replicas => format!(
                "{} to your HA requirements (minimum 2 for stateless services, 3 for stateful)",
                from("increase")
            ),
            Category::StorageClass => match sandbox {
                Some(s) => format!(
                    "verify the StorageClass name matches your cluster (sandbox used {})",
                    code(s)
                ),
                None => "verify the StorageClass name matches your cluster".to_owned(),
            },
            Category::Hostname => format!("{} to your production domain", from("update")),
            Category::Tls => format!(
                "configure the production certificate ({})",
                from("replacing the sandbox setting")
            ),
            Category::NetworkPolicy => {
                "verify the included NetworkPolicy manifests match your cluster's policy model"
                    .to_owned()
            }
            Category::Other => format!("{} to the production value", from("change")),
        }
    };
    let mut line = format!("**{}** ({}): {action}.", v.category.label(), code(&v.name));
    if !v.production.trim().is_empty() {
        let _ = write!(line, " Production: {}", v.production.trim());
        if !line.ends_with('.') {
            line.push('.');
        }
    }
    line
}

/// The checklist as markdown list items (`- [ ] …`).
pub fn checklist_items(runbook: &Runbook) -> String {
    let mut out = String::new();
    for v in &runbook.variables {
        let _ = writeln!(out, "- [ ] {}", checklist_item(v));
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
    out.push_str(&checklist_items(runbook));
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
