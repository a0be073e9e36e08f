//! An unprivileged identity of its own for every sandbox (when this process is root):
//! two sandboxes cannot read each other's files or signal each other's processes.
//!
//! The user is created with `useradd` when the sandbox is provisioned (so tools that
//! need their uid to resolve to a name, such as PostgreSQL's `initdb`, work) and removed
//! with `userdel` when it is destroyed. Its comment field names the sandbox, and a user
//! is only ever removed when that comment says it is ours.

use std::process::Command;

use nix::unistd::User;

use crate::{ExecError, Result};

/// The comment that marks a user as the identity of sandbox `id`.
fn comment(id: &str) -> String {
    format!("runbook sandbox {id}")
}

/// The user name of the sandbox whose id ends in `suffix` (at most 32 characters,
/// as `useradd` requires).
pub(super) fn user_name(suffix: &str) -> String {
    format!("rb-{suffix}")
}

/// Creates the sandbox's user and its group; `home` is the sandbox's work directory.
pub(super) fn create(name: &str, id: &str, home: &std::path::Path) -> Result<User> {
    let out = Command::new("useradd")
        .args(["--system", "--no-create-home", "--user-group"])
        .arg("--shell")
        .arg("/usr/sbin/nologin")
        .arg("--home-dir")
        .arg(home)
        .arg("--comment")
        .arg(comment(id))
        .arg(name)
        .output()
        .map_err(|e| {
            ExecError::Provider(format!(
                "a sandbox gets a user of its own, created with `useradd` (package passwd): {e}; \
                 install it, or choose who commands run as with `RunAs::User`"
            ))
        })?;
    if !out.status.success() {
        return Err(ExecError::Provider(format!(
            "`useradd {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    User::from_name(name).ok().flatten().ok_or_else(|| {
        ExecError::Provider(format!("user `{name}` was created but cannot be found"))
    })
}

/// The sandbox's user, if it exists and is ours.
pub(super) fn find(name: &str, id: &str) -> Option<User> {
    User::from_name(name)
        .ok()
        .flatten()
        .filter(|u| u.gecos.to_str().is_ok_and(|g| g == comment(id)))
}

/// Removes the sandbox's user and group, if they exist and are ours, with what the user
/// left in the machine's shared places (see `leftovers.rs`). Its processes must be gone
/// first (`userdel` refuses otherwise). While anything of the user's remains, the user
/// stays, so that its uid is not given to another sandbox.
pub(super) fn remove(name: &str, id: &str) -> Result<()> {
    let Some(user) = find(name, id) else {
        return Ok(());
    };
    let left = super::leftovers::remove(user.uid.as_raw());
    if !left.is_empty() {
        return Err(ExecError::Provider(format!(
            "user `{name}` of sandbox `{id}` still owns what could not be removed ({});              the user is kept, so that its uid goes to no other sandbox: remove them, then              destroy the sandbox again",
            left.join("; ")
        )));
    }
    let out = Command::new("userdel")
        .arg(name)
        .output()
        .map_err(|e| ExecError::Provider(format!("cannot run `userdel {name}`: {e}")))?;
    if out.status.success() || find(name, id).is_none() {
        Ok(())
    } else {
        Err(ExecError::Provider(format!(
            "`userdel {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Users this library created for sandboxes whose directory is gone (its state root was
/// deleted without destroying them): `(user name, sandbox id)`.
pub(super) fn orphans() -> Vec<(String, String)> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, gecos, home) = (fields.first()?, fields.get(4)?, fields.get(5)?);
            let id = gecos.strip_prefix("runbook sandbox ")?;
            // The home is the sandbox's work directory; its parent is the sandbox, which
            // is assembled under a hidden name before it gets its own.
            let sandbox = std::path::Path::new(home).parent()?;
            let staging = sandbox.with_file_name(format!(".{id}.new"));
            (name.starts_with("rb-") && !sandbox.exists() && !staging.exists())
                .then(|| ((*name).to_owned(), id.to_owned()))
        })
        .collect()
}
