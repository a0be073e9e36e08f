//! The two traits every sandbox provider implements.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use runbook_core::report::SandboxDescription;
use runbook_core::{Lifetime, Probe};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A command for a sandbox to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command text, run by the sandbox's shell exactly as written.
    pub command: String,
    /// Environment variables to add (the runbook's variables, among others).
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the sandbox root.
    pub workdir: Option<String>,
    /// Kill the command (and everything it started in its process group) after this long.
    pub timeout: Duration,
    /// Stop at the first failing line (`set -e -o pipefail`): steps and rollbacks run so,
    /// in the sandbox and in the package's scripts; checks run as written, since their
    /// exit code is what they are judged by.
    pub errexit: bool,
}

/// Receives a command's output as it is produced, in chunks of any size.
pub trait OutputSink: Send {
    /// One chunk of bytes from `stream`. Chunks may split lines and UTF-8 characters.
    fn output(&mut self, stream: Stream, bytes: &[u8]);
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Wall time.
    pub duration: Duration,
}

/// What a provider needs to provision a sandbox.
///
/// ```
/// use runbook_core::Lifetime;
/// use runbook_exec::ProvisionRequest;
/// let request = ProvisionRequest::new("postgres", Lifetime::Ephemeral).image("localhost/pg:15");
/// assert_eq!(request.image.as_deref(), Some("localhost/pg:15"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionRequest {
    /// The runbook's name (a slug), used in the sandbox id.
    pub runbook: String,
    /// How long the sandbox lives.
    pub lifetime: Lifetime,
    /// The image that stands for the target (the runbook's `target.image`), for the
    /// providers that run one.
    pub image: Option<String>,
    /// What the sandbox may use (the runbook's `sandbox.limits`), for the providers
    /// that enforce limits.
    pub limits: runbook_core::SandboxLimits,
}

impl ProvisionRequest {
    /// A sandbox for `runbook` (its name) that lives `lifetime`, with no image or limits.
    pub fn new(runbook: impl Into<String>, lifetime: Lifetime) -> Self {
        ProvisionRequest {
            runbook: runbook.into(),
            lifetime,
            image: None,
            limits: runbook_core::SandboxLimits::default(),
        }
    }

    /// The request with an image.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// The request with limits.
    pub fn limits(mut self, limits: runbook_core::SandboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The request a runbook makes: its name, its image and its limits.
    pub fn for_runbook(runbook: &runbook_core::Runbook, lifetime: Lifetime) -> Self {
        ProvisionRequest {
            runbook: runbook.metadata.name.clone(),
            lifetime,
            image: runbook.target.image.clone(),
            limits: runbook.sandbox.limits.clone(),
        }
    }
}

/// A sandbox as listed by its provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    /// The sandbox id.
    pub id: String,
    /// The provider.
    pub provider: String,
    /// The runbook it was made for.
    pub runbook: String,
    /// Its lifetime.
    pub lifetime: Lifetime,
    /// Seconds since the Unix epoch when it was created.
    pub created_unix: u64,
    /// The last step that passed in it, if any.
    pub last_step: Option<String>,
    /// Why its metadata cannot be read, when it is damaged (its runbook and lifetime are
    /// then unknown: the lifetime says persistent, so nothing reaps it by accident; it
    /// can still be destroyed by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// Where to look at it: the local provider's working directory of its commands, the
    /// kube provider's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[cfg(any(feature = "kube", feature = "container"))]
impl SandboxInfo {
    /// A sandbox a remote provider found by its labels (`runbook`, `lifetime`), with what
    /// its local control directory knows (`known`), if any. An unknown lifetime reads as
    /// persistent, so nothing reaps it by accident.
    pub(crate) fn labelled(
        provider: &str,
        id: String,
        runbook: Option<&String>,
        lifetime: Option<&String>,
        known: Option<&SandboxInfo>,
        location: Option<String>,
    ) -> Self {
        SandboxInfo {
            id,
            provider: provider.into(),
            runbook: runbook.cloned().unwrap_or_default(),
            lifetime: lifetime
                .and_then(|l| l.parse().ok())
                .unwrap_or(Lifetime::Persistent),
            created_unix: known.map_or(0, |k| k.created_unix),
            last_step: known.and_then(|k| k.last_step.clone()),
            damaged: known.and_then(|k| k.damaged.clone()),
            location,
        }
    }
}

/// What [`Provider::reap`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The sandboxes destroyed.
    pub destroyed: Vec<String>,
    /// The sandboxes left alone, each with why (busy, damaged, failed to destroy).
    pub skipped: Vec<(String, String)>,
}

/// Provisions, finds and destroys sandboxes of one kind (local directories,
/// Kubernetes namespaces, …).
///
/// # Writing a provider
///
/// A provider makes a [`Sandbox`] for a lifetime and can find it again by id. Its
/// sandboxes run commands with the environment they are given, write files under
/// their root, describe themselves, and tear down. Ephemeral and session sandboxes
/// must also clean up when dropped without [`Sandbox::teardown`] (a panic, a
/// cancelled future): do it synchronously in `Drop`.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use async_trait::async_trait;
/// use runbook_exec::{CommandSpec, Exit, OutputSink, Provider, ProvisionRequest, Result,
///     Sandbox, SandboxInfo, Stream, ExecError};
/// use runbook_core::report::SandboxDescription;
///
/// /// A "sandbox" that echoes commands instead of running them: enough to show the shape.
/// struct DryRun;
/// struct DryRunSandbox { dir: PathBuf }
///
/// #[async_trait]
/// impl Provider for DryRun {
///     fn name(&self) -> &str { "dry-run" }
///     async fn provision(&self, _req: &ProvisionRequest) -> Result<Box<dyn Sandbox>> {
///         Ok(Box::new(DryRunSandbox { dir: std::env::temp_dir() }))
///     }
///     async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>> { Err(ExecError::NotFound(id.into())) }
///     async fn list(&self) -> Result<Vec<SandboxInfo>> { Ok(Vec::new()) }
///     async fn destroy(&self, id: &str) -> Result<()> { Err(ExecError::NotFound(id.into())) }
/// }
///
/// #[async_trait]
/// impl Sandbox for DryRunSandbox {
///     fn id(&self) -> &str { "dry-run-1" }
///     fn control_dir(&self) -> &Path { &self.dir }
///     async fn run(&self, spec: &CommandSpec, out: &mut dyn OutputSink) -> Result<Exit> {
///         out.output(Stream::Stdout, format!("would run: {}\n", spec.command).as_bytes());
///         Ok(Exit { code: Some(0), timed_out: false, duration: Default::default() })
///     }
///     async fn write_file(&self, _path: &str, _contents: &[u8]) -> Result<()> { Ok(()) }
///     async fn describe(&self) -> Result<SandboxDescription> {
///         Ok(SandboxDescription { provider: "dry-run".into(), id: "dry-run-1".into(), nodes: 1, ..Default::default() })
///     }
///     async fn teardown(&mut self) -> Result<()> { Ok(()) }
/// }
///
/// let provider: Box<dyn Provider> = Box::new(DryRun);
/// assert_eq!(provider.name(), "dry-run");
/// ```
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name (`local`, `kube`, `container`).
    fn name(&self) -> &str;

    /// Makes a new sandbox.
    async fn provision(&self, request: &ProvisionRequest) -> Result<Box<dyn Sandbox>>;

    /// Finds a persistent sandbox again by id.
    async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>>;

    /// The sandboxes this provider owns.
    async fn list(&self) -> Result<Vec<SandboxInfo>>;

    /// Destroys a sandbox by id (killing what runs in it).
    async fn destroy(&self, id: &str) -> Result<()>;

    /// Destroys the sandboxes a crashed run left behind (expired, or not persistent and
    /// in use by nobody), going on past any it cannot destroy; says which it destroyed
    /// and which it left, and why. By default, none.
    async fn reap(&self) -> Result<Reaped> {
        Ok(Reaped::default())
    }
}

/// One sandbox: an isolated place where a runbook's commands run.
///
/// A sandbox is exclusively its holder's from provisioning (or resuming) until it is
/// dropped: a provider takes its lock (an `flock` on its control directory) before
/// anything else can see it, so no other process can resume, reap or destroy it meanwhile.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// The sandbox id.
    fn id(&self) -> &str;

    /// A local directory, private to the executor, for the sandbox log and state.
    fn control_dir(&self) -> &Path;

    /// Runs `spec` and streams its output into `out`.
    async fn run(&self, spec: &CommandSpec, out: &mut dyn OutputSink) -> Result<Exit>;

    /// Writes a file at `path`, relative to the sandbox root.
    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()>;

    /// Provider, OS, versions, node count.
    async fn describe(&self) -> Result<SandboxDescription>;

    /// Evaluates a typed probe (every kind but a command, which [`Sandbox::run`] runs),
    /// its `${NAME}` placeholders already filled. By default: unsupported (never
    /// "passed"); a provider implements the kinds it can observe.
    async fn probe(&self, probe: &Probe) -> Result<Observation> {
        Err(crate::ExecError::Unsupported {
            provider: self
                .describe()
                .await
                .map(|d| d.provider)
                .unwrap_or_default(),
            what: format!("this kind of check ({})", probe_kind(probe)),
        })
    }

    /// Values the sandbox imposes on the runbook's variables (the kube provider's
    /// `NAMESPACE` is the sandbox namespace, whatever the runbook's sandbox value says).
    /// By default, none.
    fn fixed_values(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Secret values the sandbox itself holds (the kube provider's step token), masked
    /// like the runbook's secrets wherever output is recorded. By default, none.
    fn secret_values(&self) -> Vec<String> {
        Vec::new()
    }

    /// What to record when a step fails, beyond its own output (pod status, events and
    /// logs, for the kube provider). By default, nothing. The engine redacts it.
    async fn diagnostics(&self) -> Option<String> {
        None
    }

    /// The processes still running in the sandbox, when the provider can tell (the local
    /// provider: everything in its cgroup, or marked with its id). By default, unknown.
    async fn processes(&self) -> Option<Vec<i32>> {
        None
    }

    /// Destroys the sandbox and everything running in it.
    async fn teardown(&mut self) -> Result<()>;

    /// Leaves the sandbox in place (persistent lifetime): dropping it must not destroy it.
    fn keep(&mut self) {}
}

/// The kind of a probe, in words, for errors.
pub(crate) fn probe_kind(probe: &Probe) -> &'static str {
    match probe {
        Probe::Command(_) => "a command",
        Probe::Kube(_) => "a Kubernetes check, which needs the kube provider",
        Probe::File(_) => "a file check",
        Probe::Tcp(_) => "a TCP check",
        Probe::Http(_) => "an HTTP check",
        Probe::Process(_) => "a process check",
    }
}

/// What a typed probe observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Whether the expectation holds.
    pub satisfied: bool,
    /// What was seen, in words.
    pub actual: String,
}
