//! The rehearsal's values: for each variable, one other than the sandbox's, of the same
//! kind (another free port, a suffixed name, a new secret), unless given or fixed, or
//! unless it is a value no second sandbox can change (an address, a CIDR, a URL, a
//! hostname, a version): that one stays, and the evidence says so.

use std::collections::BTreeMap;

use runbook_core::report::RehearsalValue;
use runbook_core::{Runbook, ValueKind, Variable};
use runbook_exec::{ExecError, Sandbox};

use super::RehearsalOptions;

/// The values of a rehearsal, and what the evidence and a failure's description need of
/// them.
pub(super) struct Values {
    /// The rehearsal's value of every variable.
    pub(super) values: BTreeMap<String, String>,
    /// How each was chosen, for the evidence (secrets masked).
    pub(super) shown: Vec<RehearsalValue>,
    /// The secret values, to redact.
    pub(super) secrets: Vec<String>,
    /// The sandbox's value of every variable that had one: what the rehearsal's differ
    /// from.
    pub(super) sandbox: BTreeMap<String, String>,
}

/// Chooses the rehearsal's value of every variable of `runbook`. The sandbox's value of a
/// variable is its value in `used`, else its `sandbox:` value.
pub(super) fn rehearsal_values(
    runbook: &Runbook,
    sandbox: &dyn Sandbox,
    used: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<Values, ExecError> {
    let fixed = sandbox.fixed_values();
    let mut out = Values {
        values: BTreeMap::new(),
        shown: Vec::new(),
        secrets: Vec::new(),
        sandbox: BTreeMap::new(),
    };
    for v in &runbook.variables {
        let secret = v.hides_value();
        let before = used.get(&v.name).or(v.sandbox.as_ref()).cloned();
        if let Some(b) = &before {
            out.sandbox.insert(v.name.clone(), b.clone());
        }
        let before = before.unwrap_or_default();
        let (value, how) = if let Some(f) = fixed.get(&v.name) {
            (
                f.clone(),
                "fixed by the provider: it cannot change".to_owned(),
            )
        } else if let Some(given) = options.vars.get(&v.name) {
            (given.clone(), "given".to_owned())
        } else if let Some(r) = &v.rehearsal {
            (r.clone(), "its `rehearsal:` value".to_owned())
        } else if secret {
            (random_hex()?, "a new random value".to_owned())
        } else if before.is_empty() {
            return Err(ExecError::MissingValue(v.name.clone()));
        } else {
            derive(v, &before)
        };
        if secret {
            out.secrets.push(value.clone());
        }
        out.shown.push(RehearsalValue {
            name: v.name.clone(),
            sandbox: if secret { "***".into() } else { before },
            rehearsal: if secret { "***".into() } else { value.clone() },
            how,
        });
        out.values.insert(v.name.clone(), value);
    }
    Ok(out)
}

/// A value of the same kind as the sandbox's `value` of `v` ([`ValueKind`]): another free
/// port for a port; a suffixed path or name; for what a second sandbox on the same host
/// cannot change (an address, an address range, a URL, a hostname, a version, a number),
/// the same value, and the words say so.
fn derive(v: &Variable, value: &str) -> (String, String) {
    let kind = v.value_kind(value);
    match kind {
        ValueKind::Port => {
            for _ in 0..20 {
                if let Some(port) = free_port()
                    && port.to_string() != value
                {
                    return (port.to_string(), "another free port".into());
                }
            }
            (
                value.to_owned(),
                "unchanged: a port, and no other was free".into(),
            )
        }
        ValueKind::Path | ValueKind::Name => {
            let suffix = if value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                "_rehearsal"
            } else {
                "-rehearsal"
            };
            (
                format!("{value}{suffix}"),
                "the sandbox value, suffixed".into(),
            )
        }
        // Another value of these would not be the same kind of thing: a suffixed CIDR is
        // no CIDR, another address may not exist on the host.
        ValueKind::Address
        | ValueKind::Cidr
        | ValueKind::Url
        | ValueKind::Hostname
        | ValueKind::Version
        | ValueKind::Number => (value.to_owned(), format!("unchanged: {}", kind.label())),
    }
}

fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

fn random_hex() -> Result<String, ExecError> {
    let mut bytes = [0u8; 16];
    let mut f = std::fs::File::open("/dev/urandom").map_err(|e| {
        ExecError::Provider(format!(
            "cannot open /dev/urandom for a rehearsal secret: {e}"
        ))
    })?;
    std::io::Read::read_exact(&mut f, &mut bytes)
        .map_err(|e| ExecError::Provider(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_core::Category;

    #[test]
    fn derived_values_differ_and_keep_their_kind() {
        let v = |name: &str, category| Variable::new(name, category);
        let (port, how) = derive(&v("APP_PORT", Category::Endpoint), "8080");
        assert!(port.parse::<u16>().is_ok() && port != "8080", "{port}");
        assert_eq!(how, "another free port");
        assert_eq!(
            derive(&v("DB_HOST", Category::Endpoint), "127.0.0.1"),
            ("127.0.0.1".into(), "unchanged: an address".into())
        );
        assert_eq!(
            derive(&v("ALLOW_CIDR", Category::NetworkPolicy), "127.0.0.1/32"),
            (
                "127.0.0.1/32".into(),
                "unchanged: an address range (CIDR)".into()
            )
        );
        for (value, how) in [
            ("https://example.test/x", "unchanged: a URL"),
            ("15.6.0", "unchanged: a version"),
        ] {
            assert_eq!(
                derive(&v("SOURCE", Category::Other), value),
                (value.into(), how.into())
            );
        }
        assert_eq!(
            derive(&v("APP_DB", Category::Other), "notify").0,
            "notify_rehearsal"
        );
        assert_eq!(
            derive(&v("APP_DIR", Category::Other), "app/data").0,
            "app/data-rehearsal"
        );
    }
}
