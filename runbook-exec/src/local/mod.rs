//! The local provider: a directory per sandbox on this machine.
//!
//! Each sandbox is `<state root>/local/<id>/` with `work/` (the working directory,
//! `HOME`), `tmp/` (`TMPDIR`) and `control/` (the executor's log, state and lock, out of
//! the commands' reach). Commands run through `bash -c` in a clean environment (only
//! `PATH`, the locale, the runbook's variables and what the caller adds).
//!
//! When this process runs as root, the sandbox is a boundary:
//!
//! - **its own identity**: a user created for the sandbox ([`RunAs::PerSandbox`]), so
//!   two sandboxes cannot read each other's files (`work/` and `tmp/` are 0700) or
//!   signal each other's processes;
//! - **containment**: every command runs in a cgroup v2 of its own under the sandbox's,
//!   so a timeout, an interruption or teardown kills everything it started, daemons
//!   that called `setsid` or double-forked included;
//! - **no link followed**: config files are written without following any link a step
//!   planted (see `files.rs`), and nothing is ever written to a predictable name in a
//!   shared directory.
//!
//! Without root, commands run as the current user in a process group of their own;
//! teardown also kills what carries the sandbox's marker variable or works inside its
//! directory (docs/providers.md says what that cannot catch).

// The provider: `LocalProvider`, its builder and its `Provider` implementation.
mod provider;
// The on-disk store: sandbox directories, their `meta.json`, and provisioning, resuming,
// listing, destroying and reaping them.
mod store;
// The sandbox: `LocalSandbox`, its `Sandbox` implementation, how a command is assembled.
mod sandbox;
// Typed probes: their dispatch, and those evaluated in-process.
mod probes;

// Beneath them: cgroups, config files, per-sandbox users, what those users leave behind,
// running a command, and starting it behind the sandbox's walls.
mod contain;
mod files;
mod identity;
mod leftovers;
pub(crate) mod process;
mod spawn;

use std::time::Duration;

pub use provider::{LocalProvider, RunAs};
pub use sandbox::LocalSandbox;
#[cfg(feature = "container")]
pub(crate) use sandbox::relative;

/// The environment variable that marks every process of a sandbox.
pub const MARKER_VAR: &str = "RUNBOOK_SANDBOX_ID";

/// How long teardown waits for a sandbox's processes to die.
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// The control file naming the command in flight, so that a later process can end what
/// an interrupted attempt left running.
const RUNNING_FILE: &str = "running";

pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
