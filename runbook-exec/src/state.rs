//! Persistent sandbox state: written atomically after every step, locked while in use.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use runbook_core::report::Report;
use runbook_core::{Lifetime, Runbook};
use serde::{Deserialize, Serialize};

use crate::{ExecError, Result};

/// What a persistent sandbox remembers between processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    /// Format version of this file.
    pub format: u32,
    /// The sandbox id.
    pub id: String,
    /// The provider that owns it.
    pub provider: String,
    /// Its lifetime.
    pub lifetime: Lifetime,
    /// The runbook as amended so far.
    pub runbook: Runbook,
    /// Variable values used in the sandbox (generated secrets included; the file is 0600).
    pub values: BTreeMap<String, String>,
    /// Names of the variables whose values are secret.
    pub secrets: Vec<String>,
    /// Ids of the steps that passed, in order.
    pub completed: Vec<String>,
    /// The report so far.
    pub report: Report,
}

const STATE_FILE: &str = "state.json";

/// Writes the state file atomically: a temporary file in the same directory, synced,
/// then renamed over the old one. A crash leaves the old state or the new, never half.
pub(crate) fn save(dir: &Path, state: &SessionState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| ExecError::failed("cannot encode the sandbox state")(Box::new(e)))?;
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .map_err(ExecError::io("write the state file", &tmp))?;
    f.write_all(&bytes)
        .map_err(ExecError::io("write the state file", &tmp))?;
    f.sync_all()
        .map_err(ExecError::io("sync the state file", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(ExecError::io("replace the state file", &path))?;
    Ok(())
}

/// Reads the state file of a sandbox, if it has one.
pub fn load(dir: &Path) -> Result<Option<SessionState>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ExecError::Provider(format!(
                "the state file `{}` is damaged ({e}); destroy the sandbox with `runbook sandbox destroy`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExecError::io("read the state file", path)(e)),
    }
}
