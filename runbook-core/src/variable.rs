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
    /// What kind of value it is; drives the adaptation checklist wording.
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
    /// is derived from the category: another free port, a suffixed name or directory, a
    /// new random secret).
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
