//! Adaptation variables and config file templates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A value that changes between the sandbox and production.
///
/// Commands use it as a shell variable (`"$NAMESPACE"`), config files as a
/// `${NAMESPACE}` placeholder. The sandbox value is used in the sandbox only; the
/// production guidance goes into the adaptation checklist.
///
/// ```
/// use runbook_core::{Category, SecretSource, Variable};
/// let ns = Variable::new("NAMESPACE", Category::Namespace)
///     .sandbox("sandbox-test")
///     .production("Your target namespace");
/// let password = Variable::new("DB_PASSWORD", Category::Credential)
///     .secret(SecretSource::Vault, "secret/data/myapp/db#password")
///     .generated();
/// assert!(password.is_secret() && !ns.is_secret());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variable {
    /// UPPER_SNAKE name.
    pub name: String,
    /// What the value is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What kind of value it is; with the platform, the value's kind and what the package
    /// holds, it drives the adaptation checklist wording.
    #[serde(default)]
    pub category: Category,
    /// The value used in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Generate a fresh random sandbox value for each run (for secrets).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate: bool,
    /// What the human should use in production.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub production: String,
    /// Where the production value of a secret comes from. Its presence makes the variable a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// The value to use when the package is rehearsed in a second sandbox (by default one
    /// is derived from what the value is, [`Variable::value_kind`]: another free port, a
    /// suffixed name or directory, a new random secret; an address, a CIDR, a URL, a
    /// hostname or a version is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<String>,
}

impl Variable {
    /// A variable with a name and a category.
    pub fn new(name: impl Into<String>, category: Category) -> Self {
        Variable {
            name: name.into(),
            description: String::new(),
            category,
            sandbox: None,
            generate: false,
            production: String::new(),
            secret: None,
            rehearsal: None,
        }
    }

    /// Whether its value must never be shown or shipped: a secret, or a generated
    /// (throwaway) value. The one test of it, for the engine and the renderer alike.
    pub fn hides_value(&self) -> bool {
        self.is_secret() || self.generate
    }

    /// Sets the value the rehearsal uses instead of the sandbox value. By
    /// default, one is derived from the category.
    pub fn rehearsal(mut self, value: impl Into<String>) -> Self {
        self.rehearsal = Some(value.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the sandbox value.
    pub fn sandbox(mut self, value: impl Into<String>) -> Self {
        self.sandbox = Some(value.into());
        self
    }

    /// Generates a fresh sandbox value for every run.
    pub fn generated(mut self) -> Self {
        self.generate = true;
        self
    }

    /// Sets the production guidance.
    pub fn production(mut self, guidance: impl Into<String>) -> Self {
        self.production = guidance.into();
        self
    }

    /// Makes the variable a secret whose production value comes from `source` at `reference`.
    pub fn secret(mut self, source: SecretSource, reference: impl Into<String>) -> Self {
        self.secret = Some(SecretRef {
            source,
            reference: reference.into(),
        });
        self
    }

    /// Whether the variable is a secret.
    pub fn is_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// What `value` (one of this variable's values) is: see [`ValueKind`].
    pub fn value_kind(&self, value: &str) -> ValueKind {
        let value = value.trim();
        let port_like = self.category == Category::Endpoint
            || self.name.ends_with("PORT")
            || self.name.ends_with("_PORTS");
        if port_like && value.parse::<u16>().is_ok_and(|p| p > 0) {
            return ValueKind::Port;
        }
        if value.contains("://") {
            return ValueKind::Url;
        }
        // A list of addresses or ranges (`listen_addresses`, an allow-list) is one value.
        let items: Vec<&str> = value.split([',', ' ']).filter(|i| !i.is_empty()).collect();
        if !items.is_empty() && items.iter().all(|i| is_address(i) || is_cidr(i)) {
            return if items.iter().any(|i| is_cidr(i)) {
                ValueKind::Cidr
            } else {
                ValueKind::Address
            };
        }
        if is_version(value) || (self.name.ends_with("VERSION") && is_number(value)) {
            return ValueKind::Version;
        }
        if is_number(value) {
            return ValueKind::Number;
        }
        // `app.conf` has the shape of a DNS name too: a dotted name is a hostname only
        // where the variable is about reaching something.
        let about_hosts = matches!(
            self.category,
            Category::Endpoint | Category::Hostname | Category::Tls | Category::NetworkPolicy
        ) || ["HOST", "DOMAIN", "FQDN"]
            .iter()
            .any(|w| self.name.contains(w));
        if about_hosts
            && (is_hostname(value) || (self.category == Category::Hostname && !value.contains('/')))
        {
            return ValueKind::Hostname;
        }
        if value.contains('/') || value.starts_with(['.', '~']) {
            return ValueKind::Path;
        }
        ValueKind::Name
    }
}

/// What a variable's value is, judged by its shape (and, for a port, by its name or
/// category: `8080` alone may be a count). The adaptation checklist names it by this
/// ("Port"), and the rehearsal picks its value by it: another free port for a port, a
/// suffixed path or name, and the same value for what a second sandbox on the same host
/// cannot change (an address, an address range, a URL, a hostname, a version, a number).
///
/// ```
/// use runbook_core::{Category, ValueKind, Variable};
/// let v = |name: &str, category| Variable::new(name, category);
/// assert_eq!(v("PGPORT", Category::Endpoint).value_kind("55432"), ValueKind::Port);
/// assert_eq!(v("ALLOW", Category::NetworkPolicy).value_kind("127.0.0.1/32"), ValueKind::Cidr);
/// assert_eq!(v("PGHOST", Category::Endpoint).value_kind("127.0.0.1"), ValueKind::Address);
/// assert_eq!(v("APP_DIR", Category::Other).value_kind("app/data"), ValueKind::Path);
/// assert_eq!(v("APP_DB", Category::Other).value_kind("myapp"), ValueKind::Name);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValueKind {
    /// A TCP or UDP port (`55432`).
    Port,
    /// An IP address, a list of them, `localhost` or `*` (every address).
    Address,
    /// An address range (`127.0.0.1/32`, `10.0.0.0/8,192.168.0.0/16`).
    Cidr,
    /// A URL (`https://example.com/x`).
    Url,
    /// A DNS name (`db.example.com`).
    Hostname,
    /// A version (`15.6.0`, `v1.29`).
    Version,
    /// A number or a quantity (`3`, `100m`, `256Mi`).
    Number,
    /// A file or directory path (`app/data`, `/var/lib/x`).
    Path,
    /// A name: of a database, a role, a namespace, a directory (`myapp`).
    Name,
}

impl ValueKind {
    /// What it is, in a few words ("a port", "an address range (CIDR)").
    pub fn label(self) -> &'static str {
        match self {
            ValueKind::Port => "a port",
            ValueKind::Address => "an address",
            ValueKind::Cidr => "an address range (CIDR)",
            ValueKind::Url => "a URL",
            ValueKind::Hostname => "a hostname",
            ValueKind::Version => "a version",
            ValueKind::Number => "a number",
            ValueKind::Path => "a path",
            ValueKind::Name => "a name",
        }
    }
}

fn is_address(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok() || matches!(s, "localhost" | "*")
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

fn is_version(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or(s);
    let core = s.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_hostname(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // The top-level label of a DNS name is never all digits (`1.2.3` is a version).
        && labels
            .last()
            .is_some_and(|l| l.bytes().any(|b| b.is_ascii_alphabetic()))
}

fn is_number(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && unit.len() <= 2
}

/// What kind of value a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// A Kubernetes namespace or similar scope.
    Namespace,
    /// A hostname, URL or connection endpoint.
    Endpoint,
    /// A password, token or key.
    Credential,
    /// CPU / memory requests and limits.
    Resources,
    /// A replica count.
    Replicas,
    /// A storage class name.
    StorageClass,
    /// A public hostname (Ingress).
    Hostname,
    /// Certificates and issuers.
    Tls,
    /// Network policy settings.
    NetworkPolicy,
    /// Anything else.
    #[default]
    Other,
}

impl Category {
    /// The checklist label ("Namespace", "Storage class").
    pub fn label(self) -> &'static str {
        match self {
            Category::Namespace => "Namespace",
            Category::Endpoint => "Endpoint",
            Category::Credential => "Credentials",
            Category::Resources => "Resource requests",
            Category::Replicas => "Replicas",
            Category::StorageClass => "Storage class",
            Category::Hostname => "Hostname",
            Category::Tls => "TLS",
            Category::NetworkPolicy => "Network policies",
            Category::Other => "Setting",
        }
    }
}

/// Where a secret's production value lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The kind of secret store.
    pub source: SecretSource,
    /// The path or name in it (`secret/data/app#password`, `myapp-db-credentials`).
    pub reference: String,
}

/// A kind of secret store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretSource {
    /// HashiCorp Vault.
    Vault,
    /// A Kubernetes Secret referenced by name (`existingSecret`).
    ExistingSecret,
    /// AWS Secrets Manager.
    AwsSecretsManager,
    /// Google Secret Manager.
    GcpSecretManager,
    /// Azure Key Vault.
    AzureKeyVault,
    /// An environment variable set by the operator.
    Environment,
    /// Another store, named in the reference.
    Other,
}

impl SecretSource {
    /// Human name of the store.
    pub fn label(self) -> &'static str {
        match self {
            SecretSource::Vault => "Vault",
            SecretSource::ExistingSecret => "Kubernetes Secret",
            SecretSource::AwsSecretsManager => "AWS Secrets Manager",
            SecretSource::GcpSecretManager => "Google Secret Manager",
            SecretSource::AzureKeyVault => "Azure Key Vault",
            SecretSource::Environment => "environment",
            SecretSource::Other => "secret store",
        }
    }
}

/// A config file shipped with the runbook: Helm values, a manifest, a SQL script.
///
/// Its content is a template: `${NAME}` placeholders are filled with the sandbox
/// values in the sandbox, and from the environment by `deploy.sh` in production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Relative path under `config/` (`config/postgres-values.yaml`).
    pub path: String,
    /// What the file is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The template content.
    pub content: String,
}

impl ConfigFile {
    /// A config file at `path` (under `config/`) with template `content`.
    pub fn new(path: impl Into<String>, content: impl Into<String>) -> Self {
        ConfigFile {
            path: path.into(),
            description: String::new(),
            content: content.into(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_kinds_by_shape() {
        let kind =
            |name: &str, category, value: &str| Variable::new(name, category).value_kind(value);
        assert_eq!(kind("PGPORT", Category::Endpoint, "55432"), ValueKind::Port);
        assert_eq!(kind("CACHE_PORT", Category::Other, "6379"), ValueKind::Port);
        assert_eq!(kind("WORKERS", Category::Other, "8"), ValueKind::Number);
        assert_eq!(
            kind("HBA", Category::NetworkPolicy, "127.0.0.1/32"),
            ValueKind::Cidr
        );
        assert_eq!(
            kind("HBA", Category::Other, "10.0.0.0/8, ::1/128"),
            ValueKind::Cidr
        );
        assert_eq!(
            kind("LISTEN", Category::Other, "127.0.0.1,::1"),
            ValueKind::Address
        );
        assert_eq!(kind("LISTEN", Category::Other, "*"), ValueKind::Address);
        assert_eq!(
            kind("API", Category::Endpoint, "http://127.0.0.1:8080/x"),
            ValueKind::Url
        );
        assert_eq!(
            kind("DB_HOST", Category::Other, "db.example.com"),
            ValueKind::Hostname
        );
        assert_eq!(
            kind("DOMAIN", Category::Hostname, "localhost"),
            ValueKind::Address
        );
        assert_eq!(kind("CONF", Category::Other, "app.conf"), ValueKind::Name);
        assert_eq!(
            kind("IMAGE_TAG", Category::Other, "15.6.0"),
            ValueKind::Version
        );
        assert_eq!(
            kind("PG_VERSION", Category::Other, "15"),
            ValueKind::Version
        );
        assert_eq!(
            kind("DB_MEMORY", Category::Resources, "256Mi"),
            ValueKind::Number
        );
        assert_eq!(kind("PGDATA", Category::Other, "pgdata"), ValueKind::Name);
        assert_eq!(
            kind("PGDATA", Category::Other, "/var/lib/pg"),
            ValueKind::Path
        );
        assert_eq!(
            kind("NAMESPACE", Category::Namespace, "sandbox-test"),
            ValueKind::Name
        );
    }
}
