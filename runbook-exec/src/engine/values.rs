//! The sandbox values of a session: overrides, kept values, the runbook's, or new secrets.

use std::collections::BTreeMap;
use std::fs::File;

use runbook_core::Runbook;

use crate::{ExecError, Result};

/// Resolves every variable's sandbox value: an override, a value kept from an earlier
/// session, the runbook's sandbox value, or a freshly generated secret.
pub(super) fn resolve_values(
    runbook: &Runbook,
    overrides: &BTreeMap<String, String>,
    kept: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut values = BTreeMap::new();
    let mut secrets = Vec::new();
    for v in &runbook.variables {
        let value = if let Some(o) = overrides.get(&v.name) {
            o.clone()
        } else if let Some(k) = kept.get(&v.name) {
            k.clone()
        } else if let Some(s) = &v.sandbox {
            s.clone()
        } else if v.generate {
            generate_secret()?
        } else {
            return Err(ExecError::MissingValue(v.name.clone()));
        };
        if v.hides_value() {
            secrets.push(v.name.clone());
        }
        values.insert(v.name.clone(), value);
    }
    Ok((values, secrets))
}

/// 32 hex characters from the kernel's random source.
fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut f = File::open("/dev/urandom").map_err(ExecError::io("open", "/dev/urandom"))?;
    std::io::Read::read_exact(&mut f, &mut bytes).map_err(ExecError::io("read", "/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
