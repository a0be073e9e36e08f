//! The pre-flight checklist: checks that run on the target before step 1 changes anything.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Check;

/// One item of the pre-flight checklist: a check the sandbox runs before step 1, and
/// `deploy.sh` runs on the target before it changes anything. A failing item stops the
/// run (or the deploy) with nothing changed.
///
/// Items come from the runbook's author, or from a [`crate::Lesson`] learnt from a
/// production failure (then `lesson` names it and `origin` says where it was learnt).
///
/// ```
/// use runbook_core::{Check, PreflightCheck};
/// let item = PreflightCheck::new("port-free", "Nothing listens on the server port yet",
///     Check::command("! (exec 3<>/dev/tcp/127.0.0.1/\"$PGPORT\") 2>/dev/null"));
/// assert_eq!(item.lesson, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreflightCheck {
    /// A lowercase slug, unique in the checklist (`port-free`).
    pub id: String,
    /// What it confirms, for the human ("Nothing listens on the server port yet").
    pub title: String,
    /// The check: a command or a typed probe, with its expectation.
    pub check: Check,
    /// The id of the lesson this item carries, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<String>,
    /// Where the item was learnt ("postgres 1.0.0, step `start-server`, deploy on a
    /// target: could not bind IPv4 address").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl PreflightCheck {
    /// An item of the runbook's own.
    pub fn new(id: impl Into<String>, title: impl Into<String>, check: Check) -> Self {
        PreflightCheck {
            id: id.into(),
            title: title.into(),
            check,
            lesson: None,
            origin: None,
        }
    }

    /// The item's name in messages: its title, and the lesson it carries.
    pub fn label(&self) -> String {
        match &self.lesson {
            Some(l) => format!("{} (lesson `{l}`)", self.title),
            None => self.title.clone(),
        }
    }
}
