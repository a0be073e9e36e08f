//! The container provider (feature `container`): one container per sandbox, through the
//! Docker Engine API, so Docker and Podman's Docker-compatible service alike, rootful
//! or rootless.
//!
//! The image stands for the target: the runbook's `target.image` or the caller's
//! ([`ContainerProvider::image`]); it is never pulled unless that is allowed
//! ([`ContainerProvider::pull`]), and the report records its name, id, digests and
//! `os-release`. Each sandbox is a container `rb-<sandbox id>` labelled with the runbook,
//! the sandbox id, the lifetime and an expiry, beside a local control directory (the
//! local provider's: the sandbox log, the state and the lock).
//!
//! Inside, the container is the boundary:
//!
//! - **a user of its own**: steps run as `runbook` (uid 10001), created in the container,
//!   with `no-new-privileges`, so a setuid binary of the image cannot make them root;
//!   their work directory is `/sandbox/work` (also `HOME`), `TMPDIR` is `/sandbox/tmp`;
//! - **limits**: memory (swap included), processes and CPUs, from the runbook's
//!   `sandbox.limits` or the caller's; a command the kernel kills for memory says so in
//!   its output;
//! - **the network**: none but loopback by default; or a network of the sandbox's own
//!   ([`ContainerNetwork::Private`]), with ports published on the host's loopback only
//!   when asked;
//! - **nothing outlives it**: teardown removes the container (and everything running in
//!   it) and its network, also when the run is dropped or signalled; a command that
//!   times out is killed with everything it started; the reaper removes what a killed
//!   run left, by label.
//!
//! Config files are written by the sandbox's user (a link a step planted cannot turn the
//! write into root's), typed checks run by their shell form inside the container (the
//! same command the package's scripts run on the target).

mod engine;
mod exec;
mod sandbox;

pub use engine::{EngineSocket, locate};
pub use sandbox::ContainerSandbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions,
};
use futures_util::StreamExt;
use runbook_core::report::ImageFacts;
use runbook_core::{Lifetime, SandboxLimits};

use self::engine::{failed, is_status};
use crate::local::{LocalProvider, LocalSandbox, RunAs};
use crate::{ExecError, Provider, ProvisionRequest, Reaped, Result, Sandbox, SandboxInfo};

/// The label every sandbox container (and network) carries.
pub const MANAGED_BY: &str = "runbook.dev/managed-by";
/// The label with the runbook's name.
pub const LABEL_RUNBOOK: &str = "runbook.dev/runbook";
/// The label with the sandbox id.
pub const LABEL_SANDBOX: &str = "runbook.dev/sandbox";
/// The label with the sandbox's lifetime.
pub const LABEL_LIFETIME: &str = "runbook.dev/lifetime";
/// The label with the time (RFC 3339) after which the reaper may remove the container.
pub const LABEL_EXPIRES: &str = "runbook.dev/expires-at";
/// The label with the image name the sandbox was made from.
pub const LABEL_IMAGE: &str = "runbook.dev/image";
/// The label with the limits (JSON).
const LABEL_LIMITS: &str = "runbook.dev/limits";
/// The label with the sandbox's network, when it has one.
const LABEL_NETWORK: &str = "runbook.dev/network";
/// The label with the sandbox's control directory: the reaper takes a container for an
/// orphan only when that directory is gone (another state root's sandbox, on an engine
/// several users or jobs share, is theirs to reap).
const LABEL_CONTROL: &str = "runbook.dev/control";

/// The sandbox user's name inside the container.
const USER_NAME: &str = "runbook";
/// Its `uid:gid`.
const USER_SPEC: &str = "10001:10001";
/// Its work directory (and `HOME`).
const HOME: &str = "/sandbox/work";
/// Its `TMPDIR`.
const TMP: &str = "/sandbox/tmp";
/// The `PATH` when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The network a sandbox container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerNetwork {
    /// Loopback only: a step cannot reach anything off the sandbox (the default).
    #[default]
    None,
    /// A bridge network of the sandbox's own: it reaches out as the engine's containers
    /// do, other sandboxes cannot reach it, and its ports are published (on the host's
    /// loopback) only when asked.
    Private,
}

/// Provisions containers as sandboxes. See the [module docs](self).
///
/// ```no_run
/// # async fn demo() -> runbook_exec::Result<()> {
/// use runbook_exec::{ContainerProvider, LocalProvider};
/// let provider = ContainerProvider::connect(LocalProvider::new()?, None).await? // $DOCKER_HOST, $CONTAINER_HOST or the usual sockets
///     .image("localhost/base:bookworm")   // unless the runbook names one (`target.image`)
///     .pull(false);                        // the default: a missing image is an error
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ContainerProvider {
    docker: Docker,
    socket: EngineSocket,
    engine_version: String,
    local: LocalProvider,
    image: Option<String>,
    pull: bool,
    limits: SandboxLimits,
    network: ContainerNetwork,
    publish: Vec<u16>,
    as_root: bool,
    expire_after: Duration,
}

impl std::fmt::Debug for ContainerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerProvider")
            .field("socket", &self.socket)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl ContainerProvider {
    /// Connects to the engine at `engine` (a socket path or `unix://PATH`), or where
    /// [`locate`] finds one. The control directories live under `local`'s state root.
    pub async fn connect(local: LocalProvider, engine: Option<&str>) -> Result<Self> {
        let socket = locate(engine)?;
        let docker = engine::connect(&socket).await?;
        let engine_version = match docker.version().await {
            Ok(v) => v
                .components
                .and_then(|c| c.into_iter().next())
                .map(|c| format!("{} {}", c.name, c.version))
                .or(v.version)
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        Ok(ContainerProvider {
            docker,
            socket,
            engine_version,
            // The control side only: the container is the sandbox's boundary.
            local: local.run_as(RunAs::CurrentUser),
            image: None,
            pull: false,
            limits: SandboxLimits::default(),
            network: ContainerNetwork::None,
            publish: Vec::new(),
            as_root: false,
            expire_after: Duration::from_secs(24 * 3600),
        })
    }

    /// The image of every sandbox, over the runbook's `target.image`.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Whether a missing image may be pulled from its registry (default: no, and a
    /// missing image is an error naming it).
    pub fn pull(mut self, allowed: bool) -> Self {
        self.pull = allowed;
        self
    }

    /// Limits over the runbook's `sandbox.limits` (each one given wins).
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The network of new sandboxes (default: [`ContainerNetwork::None`]).
    pub fn network(mut self, network: ContainerNetwork) -> Self {
        self.network = network;
        self
    }

    /// Publishes a container port on a free port of the host's loopback (needs
    /// [`ContainerNetwork::Private`]).
    pub fn publish(mut self, port: u16) -> Self {
        self.publish.push(port);
        self
    }

    /// Runs the steps as root in the container instead of its own user.
    pub fn as_root(mut self, yes: bool) -> Self {
        self.as_root = yes;
        self
    }

    /// How long after creation the reaper may remove a non-persistent sandbox's container
    /// (persistent ones get seven times as long). By default, 24 hours.
    pub fn expire_after(mut self, after: Duration) -> Self {
        self.expire_after = after;
        self
    }

    /// The engine's socket and where it was found.
    pub fn socket(&self) -> &EngineSocket {
        &self.socket
    }

    /// The container of sandbox `id`.
    pub fn container_of(id: &str) -> String {
        format!("rb-{id}")
    }

    /// The image's facts, pulling it first when that is allowed.
    async fn image_facts(&self, name: &str) -> Result<ImageFacts> {
        let inspected = match self.docker.inspect_image(name).await {
            Ok(i) => i,
            Err(e) if is_status(&e, 404) && self.pull => {
                let mut pulling = self.docker.create_image(
                    Some(CreateImageOptions {
                        from_image: Some(name.to_owned()),
                        ..Default::default()
                    }),
                    None,
                    None,
                );
                while let Some(step) = pulling.next().await {
                    step.map_err(failed(format!("cannot pull image `{name}`")))?;
                }
                self.docker
                    .inspect_image(name)
                    .await
                    .map_err(failed(format!("cannot read image `{name}`")))?
            }
            Err(e) if is_status(&e, 404) => {
                return Err(ExecError::ImageMissing {
                    image: name.to_owned(),
                    engine: self.socket.path.display().to_string(),
                });
            }
            Err(e) => return Err(failed(format!("cannot read image `{name}`"))(e)),
        };
        Ok(ImageFacts {
            name: name.to_owned(),
            id: inspected.id.unwrap_or_default(),
            digests: inspected.repo_digests.unwrap_or_default(),
            os_release: String::new(),
        })
    }

    /// The image's `PATH`, when its config sets one.
    async fn image_path(&self, name: &str) -> Option<String> {
        let config = self.docker.inspect_image(name).await.ok()?.config?;
        config
            .env?
            .into_iter()
            .find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
    }

    /// The container of a new sandbox whose control side is `local`.
    async fn create(
        &self,
        local: LocalSandbox,
        request: &ProvisionRequest,
    ) -> Result<ContainerSandbox> {
        let image_name = self
            .image
            .clone()
            .or_else(|| request.image.clone())
            .ok_or_else(|| {
                ExecError::Provider(
                    "the container provider needs an image: give one with --image, or as \
                     `target.image` in the runbook"
                        .into(),
                )
            })?;
        let image = self.image_facts(&image_name).await?;
        let limits = request.limits.overridden_by(&self.limits);
        let memory = limits.memory_bytes().map_err(ExecError::Usage)?;
        let nano_cpus = limits.nano_cpus().map_err(ExecError::Usage)?;
        let id = local.id().to_owned();
        let name = Self::container_of(&id);
        let lifetime = request.lifetime;
        let ttl = if lifetime == Lifetime::Persistent {
            self.expire_after * 7
        } else {
            self.expire_after
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut labels = HashMap::from([
            (MANAGED_BY.to_owned(), "runbook".to_owned()),
            (LABEL_RUNBOOK.to_owned(), request.runbook.clone()),
            (LABEL_SANDBOX.to_owned(), id.clone()),
            (LABEL_LIFETIME.to_owned(), lifetime.to_string()),
            (
                LABEL_EXPIRES.to_owned(),
                crate::time::rfc3339(now + ttl.as_secs()),
            ),
            (LABEL_IMAGE.to_owned(), image_name.clone()),
            (
                LABEL_CONTROL.to_owned(),
                local.control_dir().to_string_lossy().into_owned(),
            ),
            (
                LABEL_LIMITS.to_owned(),
                serde_json::to_string(&limits).unwrap_or_default(),
            ),
        ]);
        let network = match self.network {
            ContainerNetwork::None => {
                if !self.publish.is_empty() {
                    return Err(ExecError::Usage(
                        "publishing a port needs the sandbox's own network (ContainerNetwork::Private, --network private)"
                            .into(),
                    ));
                }
                None
            }
            ContainerNetwork::Private => {
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("bridge".into()),
                        labels: Some(labels.clone()),
                        ..Default::default()
                    })
                    .await
                    .map_err(failed(format!("cannot create network {name}")))?;
                labels.insert(LABEL_NETWORK.to_owned(), name.clone());
                Some(name.clone())
            }
        };
        let port_bindings = (!self.publish.is_empty()).then(|| {
            self.publish
                .iter()
                .map(|p| {
                    (
                        format!("{p}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(String::new()),
                        }]),
                    )
                })
                .collect()
        });
        let body = ContainerCreateBody {
            image: Some(image_name.clone()),
            // The container's own process only waits (on its input, which stays open and
            // empty); the steps run beside it via exec. Not `sleep`: a check that a step
            // started a process of that name would find this one.
            entrypoint: Some(vec!["sh".into()]),
            cmd: Some(vec!["-c".into(), "while read -r _; do :; done".into()]),
            open_stdin: Some(true),
            stdin_once: Some(false),
            labels: Some(labels),
            host_config: Some(HostConfig {
                init: Some(true),
                memory: memory.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                // Swap counts against the limit: past it the step is killed, not slowed.
                memory_swap: memory.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                pids_limit: limits.pids.map(i64::from),
                nano_cpus,
                network_mode: Some(network.clone().unwrap_or_else(|| "none".into())),
                port_bindings,
                security_opt: Some(vec!["no-new-privileges".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        if let Err(e) = created {
            let _ = sandbox::remove(&self.docker, &name, network.as_deref()).await;
            return Err(failed(format!(
                "cannot create container {name} from image `{image_name}`"
            ))(e));
        }
        let path = self
            .image_path(&image_name)
            .await
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        Ok(self.handle(local, name, network, image, limits, path))
    }

    /// The handle on a sandbox's container, before it is started and prepared.
    fn handle(
        &self,
        local: LocalSandbox,
        container: String,
        network: Option<String>,
        image: ImageFacts,
        limits: SandboxLimits,
        path: String,
    ) -> ContainerSandbox {
        ContainerSandbox {
            local,
            docker: self.docker.clone(),
            socket: self.socket.clone(),
            container,
            network,
            image,
            limits,
            path,
            user: if self.as_root {
                "0:0".into()
            } else {
                USER_SPEC.into()
            },
            engine_version: self.engine_version.clone(),
            kernel: String::new(),
            shell_version: String::new(),
            commands: AtomicU64::new(0),
            oom_seen: AtomicU64::new(0),
            alive: true,
        }
    }

    /// Starts the container (again), makes sure the sandbox's user and directories
    /// exist, and reads what the report records of it.
    async fn open(&self, sandbox: ContainerSandbox, fresh: bool) -> Result<ContainerSandbox> {
        let mut sandbox = sandbox;
        let opened = self.prepare(&mut sandbox).await;
        if let Err(e) = opened {
            // A new container the steps cannot use is not left behind.
            if fresh {
                let _ = sandbox.teardown().await;
            }
            return Err(e);
        }
        Ok(sandbox)
    }

    async fn prepare(&self, sandbox: &mut ContainerSandbox) -> Result<()> {
        match self.docker.start_container(&sandbox.container, None).await {
            Ok(()) => {}
            // Already running (a resumed sandbox).
            Err(e) if is_status(&e, 304) => {}
            Err(e) => {
                return Err(failed(format!(
                    "cannot start container {}",
                    sandbox.container
                ))(e));
            }
        }
        let setup = format!(
            "set -e
command -v bash >/dev/null || {{ echo 'the image has no bash: steps run with bash' >&2; exit 3; }}
if ! grep -q '^{USER_NAME}:' /etc/passwd; then
  echo '{USER_NAME}:x:10001:10001:runbook sandbox:{HOME}:/bin/bash' >> /etc/passwd
  grep -q '^{USER_NAME}:' /etc/group || echo '{USER_NAME}:x:10001:' >> /etc/group
fi
mkdir -p {HOME} {TMP}
chown 10001:10001 {HOME} {TMP}
chmod 0700 {HOME} {TMP}
echo \"kernel=$(uname -r)\"
echo \"bash=$(bash -c 'echo $BASH_VERSION')\"
sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '\"' | sed 's/^/os=/'
"
        );
        let (exit, text) = sandbox.as_root(&setup).await?;
        if exit.code != Some(0) {
            return Err(ExecError::Provider(format!(
                "cannot prepare container {} (image `{}`) for the steps: {}",
                sandbox.container,
                sandbox.image.name,
                text.trim()
            )));
        }
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("kernel=") {
                sandbox.kernel = v.to_owned();
            } else if let Some(v) = line.strip_prefix("bash=") {
                sandbox.shell_version = v.to_owned();
            } else if let Some(v) = line.strip_prefix("os=") {
                sandbox.image.os_release = v.to_owned();
            }
        }
        Ok(())
    }

    /// The sandbox containers on the engine, with their labels.
    async fn containers(&self, filter: &str) -> Result<Vec<(String, HashMap<String, String>)>> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![filter.to_owned()],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(failed("cannot list the sandbox containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.into_iter().next()?;
                Some((
                    name.trim_start_matches('/').to_owned(),
                    c.labels.unwrap_or_default(),
                ))
            })
            .collect())
    }

    /// Removes sandbox `id`'s container and network: those labelled with it, and those
    /// named after it that carry its labels (a label lookup that finds nothing must not
    /// leave one behind; a container or network of the operator's own that happens to be
    /// called `rb-<id>` is no sandbox and stays).
    async fn remove_sandbox(&self, id: &str) -> Result<bool> {
        // An id that no sandbox can have finds none: `label=KEY=` with nothing after the
        // `=` matches every container that has the label at all.
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Ok(false);
        }
        let name = Self::container_of(id);
        let ours = |labels: &HashMap<String, String>| {
            labels.get(MANAGED_BY).map(String::as_str) == Some("runbook")
                && labels.get(LABEL_SANDBOX).map(String::as_str) == Some(id)
        };
        let mut found = self.containers(&format!("{LABEL_SANDBOX}={id}")).await?;
        found.retain(|(_, labels)| ours(labels));
        if !found.iter().any(|(n, _)| *n == name)
            && let Ok(inspected) = self.docker.inspect_container(&name, None).await
            && let Some(labels) = inspected.config.and_then(|c| c.labels)
            && ours(&labels)
        {
            found.push((name.clone(), labels));
        }
        let mut existed = false;
        for (container, labels) in found {
            let network = labels.get(LABEL_NETWORK).map(String::as_str);
            existed |= sandbox::remove(&self.docker, &container, network).await?;
        }
        // Its network, left alone when making the container failed half-way.
        if let Ok(network) = self.docker.inspect_network(&name, None).await
            && network.labels.as_ref().is_some_and(ours)
        {
            match self.docker.remove_network(&name).await {
                Ok(()) => existed = true,
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(failed(format!("cannot remove network {name}"))(e)),
            }
        }
        Ok(existed)
    }
}

#[async_trait]
impl Provider for ContainerProvider {
    fn name(&self) -> &str {
        "container"
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Box<dyn Sandbox>> {
        let local = self.local.provision_local(request)?;
        let id = local.id().to_owned();
        match self.create(local, request).await {
            Ok(s) => Ok(Box::new(self.open(s, true).await?)),
            Err(e) => {
                // Its control directory goes too (a persistent one is not dropped away).
                let _ = self.local.destroy_local(&id);
                Err(e)
            }
        }
    }

    async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>> {
        let local = self.local.resume_local(id)?;
        let found = self.containers(&format!("{LABEL_SANDBOX}={id}")).await?;
        let Some((name, labels)) = found
            .into_iter()
            .find(|(_, labels)| labels.get(LABEL_SANDBOX).map(String::as_str) == Some(id))
        else {
            return Err(ExecError::Provider(format!(
                "sandbox `{id}`: its container is gone (reaped or removed); destroy the sandbox"
            )));
        };
        let image_name = labels.get(LABEL_IMAGE).cloned().unwrap_or_default();
        let image = self.image_facts(&image_name).await?;
        let limits = labels
            .get(LABEL_LIMITS)
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        let path = self
            .image_path(&image_name)
            .await
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let network = labels.get(LABEL_NETWORK).cloned();
        let sandbox = self.handle(local, name, network, image, limits, path);
        Ok(Box::new(self.open(sandbox, false).await?))
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        let known: BTreeMap<String, SandboxInfo> = self
            .local
            .list_local()?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let mut out = Vec::new();
        for (name, labels) in self.containers(&format!("{MANAGED_BY}=runbook")).await? {
            let Some(id) = labels.get(LABEL_SANDBOX).cloned() else {
                continue;
            };
            // Another state root's (another user or job on the same engine): theirs to
            // list, and to destroy with `--all`.
            if !known.contains_key(&id)
                && labels
                    .get(LABEL_CONTROL)
                    .is_some_and(|dir| std::path::Path::new(dir).exists())
            {
                continue;
            }
            out.push(SandboxInfo::labelled(
                "container",
                id.clone(),
                labels.get(LABEL_RUNBOOK),
                labels.get(LABEL_LIFETIME),
                known.get(&id),
                Some(format!("container {name}")),
            ));
        }
        Ok(out)
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        let removed = self.remove_sandbox(id).await?;
        match self.local.destroy_local(id) {
            // Its control directory was gone already (another state root, a reaped one).
            Err(ExecError::NotFound(_)) if removed => Ok(()),
            other => other,
        }
    }

    /// Ephemeral and session sandboxes whose run died without tearing them down, and
    /// containers past their expiry or whose control directory is gone: removed. Busy and
    /// damaged sandboxes are reported and left alone.
    async fn reap(&self) -> Result<Reaped> {
        let mut reaped = self.local.reap().await?;
        let known: BTreeMap<String, SandboxInfo> = self
            .local
            .list_local()?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let now = crate::time::now_rfc3339();
        let doomed = |id: &String, labels: &HashMap<String, String>, destroyed: &[String]| {
            let expired = labels
                .get(LABEL_EXPIRES)
                .is_some_and(|at| at.as_str() < now.as_str());
            let persistent = labels.get(LABEL_LIFETIME).map(String::as_str) == Some("persistent");
            // Its control directory gone: nobody can use it any more. A sandbox of another
            // state root (its directory there) is left to that root's reaper or its expiry.
            let orphan = !known.contains_key(id)
                && !persistent
                && labels
                    .get(LABEL_CONTROL)
                    .is_some_and(|dir| !std::path::Path::new(dir).exists());
            expired || orphan || destroyed.contains(id)
        };
        let mut remaining = std::collections::BTreeSet::new();
        for (name, labels) in self.containers(&format!("{MANAGED_BY}=runbook")).await? {
            let Some(id) = labels.get(LABEL_SANDBOX) else {
                continue;
            };
            if !doomed(id, &labels, &reaped.destroyed) {
                remaining.insert(id.clone());
                continue;
            }
            match sandbox::remove(
                &self.docker,
                &name,
                labels.get(LABEL_NETWORK).map(String::as_str),
            )
            .await
            {
                Ok(_) => {
                    if !reaped.destroyed.contains(id) {
                        reaped.destroyed.push(id.clone());
                    }
                }
                Err(e) => {
                    remaining.insert(id.clone());
                    reaped.skipped.push((id.clone(), e.to_string()));
                }
            }
        }
        // Networks without their container: a run stopped between making the network and
        // making the container.
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{MANAGED_BY}=runbook")],
                )])),
            }))
            .await
            .map_err(failed("cannot list the sandbox networks"))?;
        for network in networks {
            let (Some(name), Some(labels)) = (network.name, network.labels) else {
                continue;
            };
            let Some(id) = labels.get(LABEL_SANDBOX) else {
                continue;
            };
            if remaining.contains(id) || !doomed(id, &labels, &reaped.destroyed) {
                continue;
            }
            match self.docker.remove_network(&name).await {
                Ok(()) => {
                    if !reaped.destroyed.contains(id) {
                        reaped.destroyed.push(id.clone());
                    }
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => reaped.skipped.push((
                    id.clone(),
                    failed(format!("cannot remove network {name}"))(e).to_string(),
                )),
            }
        }
        Ok(reaped)
    }
}
