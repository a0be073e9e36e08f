//! The Kubernetes provider (feature `kube`): a namespace of a real cluster per sandbox.
//!
//! Each sandbox is a namespace `rb-<runbook>-<id>` with labels (managed-by, runbook,
//! lifetime, sandbox id) and an expiry annotation, plus a local directory (the local
//! provider's) where the step commands run with `KUBECONFIG` pointing at a kubeconfig
//! pinned to that namespace and `NAMESPACE` set to it. That kubeconfig holds a
//! short-lived token of the ServiceAccount [`STEP_ACCOUNT`], `admin` in the namespace
//! only, never the caller's credentials: `kubectl` and `helm` in the steps act on the
//! sandbox and nowhere else.
//!
//! **Safety:** the provider refuses to start unless the kubeconfig context is explicitly
//! allowed as a sandbox, by name or pattern (`kind-*`, `k3d-*`) and, for a cluster not
//! served on this machine, by server URL too (`dev@https://sandbox.example.com:*`), given
//! by the caller or in `RUNBOOK_KUBE_CONTEXTS` (an entry from there is reported as such).
//! The agent never touches production.

mod checks;
mod confine;
mod diagnostics;

pub use confine::STEP_ACCOUNT;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use runbook_core::report::SandboxDescription;
use runbook_core::{Lifetime, Probe};

use crate::local::{LocalProvider, LocalSandbox};
use crate::{
    CommandSpec, ExecError, Exit, Observation, OutputSink, Provider, ProvisionRequest, Reaped,
    Result, Sandbox, SandboxInfo,
};

/// The label every sandbox namespace carries.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label with the runbook's name.
pub const LABEL_RUNBOOK: &str = "runbook.dev/runbook";
/// The label with the sandbox's lifetime.
pub const LABEL_LIFETIME: &str = "runbook.dev/lifetime";
/// The label with the sandbox id.
pub const LABEL_SANDBOX: &str = "runbook.dev/sandbox";
/// The longest runbook name the provider takes (the lint's limit too): with the
/// `-` and the 8-hex-digit suffix, the sandbox id fits a label value.
const MAX_RUNBOOK_NAME: usize = 40;
/// The annotation with the time (RFC 3339) after which the reaper may delete the namespace.
pub const EXPIRES_AT: &str = "runbook.dev/expires-at";
/// Comma-separated allow-list entries (see [`context_allowed`]) added from the environment.
pub const CONTEXTS_ENV: &str = "RUNBOOK_KUBE_CONTEXTS";

/// Whether `text` matches `pattern`, where one `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len()
                && text.starts_with(prefix)
                && text.ends_with(suffix)
        }
    }
}

/// Whether an API server URL names this machine (kind and k3d clusters serve there).
fn is_loopback(server: &str) -> bool {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split([':', '/']).next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The allow-list entry that lets `context`, whose API server is `server`, be used as a
/// sandbox, if any. An entry is `CONTEXT` or `CONTEXT@SERVER`, each a name or a pattern
/// with one `*` (`kind-*`, `*-sandbox`, `dev@https://sandbox.example.com:*`). An entry
/// without a server allows the context only on a server of this machine (loopback, as
/// kind and k3d serve): a context named like a sandbox that points at a remote cluster
/// must be allowed with its server spelled out.
///
/// ```
/// use runbook_exec::kube::context_allowed;
/// let allow = ["kind-*".to_owned(), "dev@https://sandbox.example.com:*".to_owned()];
/// assert!(context_allowed("kind-ci", "https://127.0.0.1:41234", &allow).is_some());
/// assert!(context_allowed("kind-ci", "https://prod.example.com:6443", &allow).is_none());
/// assert!(context_allowed("dev", "https://sandbox.example.com:6443", &allow).is_some());
/// ```
pub fn context_allowed<'a>(context: &str, server: &str, entries: &'a [String]) -> Option<&'a str> {
    let server = server.trim_end_matches('/');
    entries.iter().map(|e| e.trim()).find(|entry| {
        if entry.is_empty() {
            return false;
        }
        match entry.split_once('@') {
            Some((name, url)) => glob(name, context) && glob(url.trim_end_matches('/'), server),
            None => glob(entry, context) && is_loopback(server),
        }
    })
}

/// Refuses a context that is not explicitly allowed as a sandbox; says which entry allowed
/// it, and when that entry came from the environment ([`CONTEXTS_ENV`]) rather than the
/// caller, says so: the environment can widen the caller's list, never silently.
pub fn check_context(context: &str, server: &str, allowed: &[String]) -> Result<String> {
    if let Some(entry) = context_allowed(context, server, allowed) {
        return Ok(format!(
            "kube context `{context}` (server {server}) allowed by `{entry}`"
        ));
    }
    let from_env: Vec<String> = std::env::var(CONTEXTS_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    if let Some(entry) = context_allowed(context, server, &from_env) {
        return Ok(format!(
            "kube context `{context}` (server {server}) allowed by `{entry}` from {CONTEXTS_ENV} \
             in the environment, not by the caller's list"
        ));
    }
    let hint = if is_loopback(server) {
        context.to_owned()
    } else {
        format!("{context}@{}", server.trim_end_matches('/'))
    };
    Err(ExecError::Provider(format!(
        "refusing to use kube context `{context}` (server {server}): it is not allowed as a sandbox. A \
         runbook is tested in a sandbox cluster, never production; if it is a sandbox, allow it with \
         --allow-context '{hint}' or {CONTEXTS_ENV}='{hint}' (an entry without `@SERVER` allows only \
         clusters served on this machine)"
    )))
}

fn api_error(what: &str, e: kube::Error) -> ExecError {
    ExecError::failed(what)(Box::new(e))
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Provisions namespaces of an allowed cluster as sandboxes. See the [module docs](self).
#[derive(Clone)]
pub struct KubeProvider {
    client: Client,
    context: String,
    allowed_by: String,
    kubeconfig: Option<Kubeconfig>,
    local: LocalProvider,
    expire_after: Duration,
    teardown_wait: Duration,
    poll: Duration,
}

impl std::fmt::Debug for KubeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeProvider")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl KubeProvider {
    /// Reads the kubeconfig (`KUBECONFIG` or `~/.kube/config`), checks that its current
    /// context is allowed as a sandbox, and connects. Step commands run through `local`.
    pub async fn from_kubeconfig(local: LocalProvider, allowed: &[String]) -> Result<Self> {
        Self::from_kubeconfig_context(local, allowed, None).await
    }

    /// Like [`KubeProvider::from_kubeconfig`], at `context` rather than the current one (a
    /// version matrix's target): it must be allowed as a sandbox just the same.
    pub async fn from_kubeconfig_context(
        local: LocalProvider,
        allowed: &[String],
        context: Option<&str>,
    ) -> Result<Self> {
        let kubeconfig = Kubeconfig::read()
            .map_err(|e| ExecError::failed("cannot read the kubeconfig")(Box::new(e)))?;
        let context = context
            .map(str::to_owned)
            .or_else(|| kubeconfig.current_context.clone())
            .ok_or_else(|| ExecError::Provider("the kubeconfig has no current context".into()))?;
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
            .await
            .map_err(|e| ExecError::failed(format!("kube context `{context}`"))(Box::new(e)))?;
        // Every call is bounded: a stalled API server cannot hold a check past its
        // deadline or a teardown past its bound. kube's own retry (429/503/504, up to 15
        // times with backoff) is off: checks retry within their `within` budget and
        // teardown within its bound, so no hidden loop outlives either.
        let server = config.cluster_url.to_string();
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        config.write_timeout = Some(Duration::from_secs(30));
        config.default_retry = false;
        let client = Client::try_from(config)
            .map_err(|e| api_error("cannot build the Kubernetes client", e))?;
        Ok(Self::new(client, &context, &server, allowed, local)?.kubeconfig(kubeconfig))
    }

    /// A provider over an existing client whose context is `context` with its API server
    /// at `server` (checked against the allow-list like [`KubeProvider::from_kubeconfig`]).
    pub fn new(
        client: Client,
        context: &str,
        server: &str,
        allowed: &[String],
        local: LocalProvider,
    ) -> Result<Self> {
        let allowed_by = check_context(context, server, allowed)?;
        Ok(KubeProvider {
            client,
            context: context.to_owned(),
            allowed_by,
            kubeconfig: None,
            local,
            expire_after: Duration::from_secs(24 * 3600),
            teardown_wait: Duration::from_secs(120),
            poll: Duration::from_secs(1),
        })
    }

    /// The context, its server and the allow-list entry that let it be used (and whether
    /// that entry came from the environment), for the caller to show.
    pub fn allowed_by(&self) -> &str {
        &self.allowed_by
    }

    /// The kubeconfig whose current context the sandboxes' scoped kubeconfigs are cut from.
    pub fn kubeconfig(mut self, kubeconfig: Kubeconfig) -> Self {
        self.kubeconfig = Some(kubeconfig);
        self
    }

    /// How long after creation the reaper may delete a non-persistent sandbox namespace
    /// (persistent ones get seven times as long). By default, 24 hours.
    pub fn expire_after(mut self, after: Duration) -> Self {
        self.expire_after = after;
        self
    }

    /// How long teardown waits for a namespace to be gone, and how often it looks. By
    /// default, 120 s and 1 s.
    pub fn teardown_wait(mut self, limit: Duration, poll: Duration) -> Self {
        self.teardown_wait = limit;
        self.poll = poll;
        self
    }

    /// The namespace of sandbox `id`.
    pub fn namespace_of(id: &str) -> String {
        // The random suffix keeps its full length: only the runbook part is shortened.
        let (stem, suffix) = id.rsplit_once('-').unwrap_or((id, ""));
        let room = 63 - "rb-".len() - suffix.len() - 1;
        let stem: String = stem.chars().take(room).collect();
        let stem = stem.trim_end_matches('-');
        if suffix.is_empty() {
            format!("rb-{stem}")
        } else {
            format!("rb-{stem}-{suffix}")
        }
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    async fn create_namespace(&self, sandbox: &LocalSandbox) -> Result<String> {
        let name = Self::namespace_of(sandbox.id());
        let lifetime = sandbox.lifetime();
        let ttl = if lifetime == Lifetime::Persistent {
            self.expire_after * 7
        } else {
            self.expire_after
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), "runbook".to_owned()),
            (LABEL_RUNBOOK.to_owned(), sandbox.runbook_name().to_owned()),
            (LABEL_LIFETIME.to_owned(), lifetime.to_string()),
            (LABEL_SANDBOX.to_owned(), sandbox.id().to_owned()),
        ]);
        let annotations = BTreeMap::from([(
            EXPIRES_AT.to_owned(),
            crate::time::rfc3339(now + ttl.as_secs()),
        )]);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        self.namespaces()
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| api_error(&format!("cannot create namespace `{name}`"), e))?;
        Ok(name)
    }

    async fn open(&self, mut local: LocalSandbox, namespace: String) -> Result<KubeSandbox> {
        // The steps act as the sandbox's ServiceAccount (admin in its namespace only),
        // with a short-lived token in a kubeconfig only the sandbox user can read.
        let mut step_token = None;
        if let Some(base) = &self.kubeconfig {
            let seconds = confine::token_lifetime(self.expire_after);
            let token = confine::step_token(&self.client, &namespace, seconds).await?;
            step_token = Some(token.clone());
            let config = confine::step_kubeconfig(base, &self.context, &namespace, &token)?;
            local.write_private(".kube/config", &config).await?;
            let path = local.work_dir().join(".kube/config");
            local.set_env("KUBECONFIG", &path.to_string_lossy());
        }
        local.set_env("NAMESPACE", &namespace);
        Ok(KubeSandbox {
            local,
            client: self.client.clone(),
            context: self.context.clone(),
            namespace,
            step_token,
            discovered: checks::Discovered::default(),
            teardown_wait: self.teardown_wait,
            poll: self.poll,
        })
    }

    /// Deletes every sandbox namespace whose expiry has passed, going on past any it
    /// cannot delete (reported); one already being deleted is left to finish. A crashed
    /// run leaves nothing behind for long.
    pub async fn reap_namespaces(&self) -> Result<Reaped> {
        let now = crate::time::now_rfc3339();
        let list = self
            .namespaces()
            .list(&ListParams::default().labels(&format!("{MANAGED_BY}=runbook")))
            .await
            .map_err(|e| api_error("cannot list sandbox namespaces", e))?;
        let mut reaped = Reaped::default();
        for ns in list.items {
            let expired = ns
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(EXPIRES_AT))
                .is_some_and(|at| at.as_str() < now.as_str());
            let Some(name) = ns.metadata.name.clone() else {
                continue;
            };
            if !expired || ns.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match self
                .namespaces()
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => reaped.destroyed.push(name),
                // Gone, or already terminating ("the system is ensuring all content is removed").
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => reaped.skipped.push((
                    name.clone(),
                    api_error(&format!("cannot delete namespace `{name}`"), e).chain(),
                )),
            }
        }
        Ok(reaped)
    }
}

/// Deletes a namespace and waits (bounded) until it is gone.
async fn delete_namespace(
    client: &Client,
    name: &str,
    limit: Duration,
    poll: Duration,
) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => return Ok(()),
        // Already terminating: wait for it as for our own delete.
        Err(e) if is_status(&e, 409) => {}
        Err(e) => return Err(api_error(&format!("cannot delete namespace `{name}`"), e)),
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let phase = match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(ns)) => ns.status.and_then(|s| s.phase).unwrap_or_default(),
            Err(e) => return Err(api_error(&format!("cannot read namespace `{name}`"), e)),
        };
        if tokio::time::Instant::now() + poll > deadline {
            return Err(ExecError::Provider(format!(
                "namespace `{name}` is still {phase} after {}s: look for finalizers that block it \
                 (kubectl get namespace {name} -o yaml); the reaper will retry",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

#[async_trait]
impl Provider for KubeProvider {
    fn name(&self) -> &str {
        "kube"
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Box<dyn Sandbox>> {
        // The sandbox id is a label value (at most 63 characters) and the namespace's name.
        if request.runbook.len() > MAX_RUNBOOK_NAME {
            return Err(ExecError::Provider(format!(
                "runbook name `{}` is {} characters; the Kubernetes provider takes at most \
                 {MAX_RUNBOOK_NAME} (it becomes namespace and label values)",
                request.runbook,
                request.runbook.len()
            )));
        }
        // A name conflict (409) gets a fresh id; anything else is an error.
        let mut last = None;
        for _ in 0..3 {
            let local = self.local.provision_local(request)?;
            match self.create_namespace(&local).await {
                Ok(ns) => {
                    return match self.open(local, ns.clone()).await {
                        Ok(sandbox) => Ok(Box::new(sandbox)),
                        Err(e) => {
                            // A namespace the steps cannot use is not left behind.
                            let _ = delete_namespace(&self.client, &ns, Duration::ZERO, self.poll)
                                .await;
                            Err(e)
                        }
                    };
                }
                Err(e) => {
                    drop(local);
                    let text = e.chain();
                    let conflict = text.contains("409") || text.contains("AlreadyExists");
                    last = Some(e);
                    if !conflict {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ExecError::Provider("cannot create a sandbox namespace".into())))
    }

    async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>> {
        let local = self.local.resume_local(id)?;
        // Found again by its labels, not by a name this process could have guessed.
        let selector = format!("{MANAGED_BY}=runbook,{LABEL_SANDBOX}={id}");
        let found = self
            .namespaces()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_error("cannot list sandbox namespaces", e))?;
        match found.items.into_iter().find_map(|ns| ns.metadata.name) {
            Some(ns) => Ok(Box::new(self.open(local, ns).await?)),
            None => Err(ExecError::Provider(format!(
                "sandbox `{id}`: no namespace labelled {selector} is left (reaped or deleted); destroy the sandbox"
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        let list = self
            .namespaces()
            .list(&ListParams::default().labels(&format!("{MANAGED_BY}=runbook")))
            .await
            .map_err(|e| api_error("cannot list sandbox namespaces", e))?;
        let local: BTreeMap<String, SandboxInfo> = self
            .local
            .list_local()?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let mut out = Vec::new();
        for ns in list.items {
            let labels = ns.metadata.labels.unwrap_or_default();
            let Some(id) = labels.get(LABEL_SANDBOX).cloned() else {
                continue;
            };
            out.push(SandboxInfo::labelled(
                "kube",
                id.clone(),
                labels.get(LABEL_RUNBOOK),
                labels.get(LABEL_LIFETIME),
                local.get(&id),
                ns.metadata.name.clone().map(|n| format!("namespace {n}")),
            ));
        }
        Ok(out)
    }

    async fn reap(&self) -> Result<Reaped> {
        let mut reaped = self.local.reap().await?;
        let namespaces = self.reap_namespaces().await?;
        reaped.destroyed.extend(namespaces.destroyed);
        reaped.skipped.extend(namespaces.skipped);
        Ok(reaped)
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        delete_namespace(
            &self.client,
            &Self::namespace_of(id),
            self.teardown_wait,
            self.poll,
        )
        .await?;
        match self.local.destroy_local(id) {
            Err(ExecError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}

/// A namespace sandbox; commands run locally against it. See the [module docs](self).
pub struct KubeSandbox {
    local: LocalSandbox,
    client: Client,
    context: String,
    namespace: String,
    /// The steps' token, masked in every recorded output.
    step_token: Option<String>,
    discovered: checks::Discovered,
    teardown_wait: Duration,
    poll: Duration,
}

impl std::fmt::Debug for KubeSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSandbox")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeSandbox {
    /// The sandbox namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

#[async_trait]
impl Sandbox for KubeSandbox {
    fn id(&self) -> &str {
        self.local.id()
    }

    fn control_dir(&self) -> &Path {
        self.local.control_dir()
    }

    async fn run(&self, spec: &CommandSpec, out: &mut dyn OutputSink) -> Result<Exit> {
        self.local.run(spec, out).await
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        self.local.write_file(path, contents).await
    }

    async fn describe(&self) -> Result<SandboxDescription> {
        let mut d = self.local.describe().await?;
        d.provider = "kube".into();
        let version = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| api_error("cannot read the API server version", e))?;
        d.versions
            .insert("kubernetes".into(), version.git_version.clone());
        d.versions
            .insert("kube-context".into(), self.context.clone());
        d.nodes = match Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(nodes) => u32::try_from(nodes.items.len()).unwrap_or(u32::MAX),
            // Listing nodes may be forbidden to a namespaced sandbox user: unknown.
            Err(e) if is_status(&e, 403) => 0,
            Err(e) => return Err(api_error("cannot list nodes", e)),
        };
        Ok(d)
    }

    fn secret_values(&self) -> Vec<String> {
        let mut all = self.local.secret_values();
        all.extend(self.step_token.iter().cloned());
        all
    }

    fn fixed_values(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("NAMESPACE".to_owned(), self.namespace.clone())])
    }

    async fn probe(&self, probe: &Probe) -> Result<Observation> {
        match probe {
            Probe::Kube(check) => {
                checks::observe(&self.client, &self.namespace, &self.discovered, check).await
            }
            // Files and processes are local: the step commands' side of the sandbox.
            Probe::File(_) | Probe::Process(_) => self.local.probe(probe).await,
            // A port or URL of the cluster is not reachable from here as it is from a pod.
            Probe::Tcp(_) | Probe::Http(_) | Probe::Command(_) => Err(ExecError::Unsupported {
                provider: "kube".into(),
                what: format!(
                    "{} (use a command check: `kubectl exec` or `kubectl port-forward`)",
                    crate::sandbox::probe_kind(probe)
                ),
            }),
        }
    }

    async fn processes(&self) -> Option<Vec<i32>> {
        self.local.processes().await
    }

    async fn diagnostics(&self) -> Option<String> {
        Some(diagnostics::collect(&self.client, &self.namespace).await)
    }

    async fn teardown(&mut self) -> Result<()> {
        self.local.teardown().await?;
        delete_namespace(&self.client, &self.namespace, self.teardown_wait, self.poll).await
    }

    fn keep(&mut self) {
        self.local.keep();
    }
}

impl Drop for KubeSandbox {
    fn drop(&mut self) {
        // Dropped without teardown (an error, a panic, a cancelled run): the local side
        // cleans itself up; the namespace deletion is started here when a runtime is at
        // hand, and the expiry annotation lets the reaper finish the job otherwise.
        if self.local.is_alive()
            && self.local.lifetime() != Lifetime::Persistent
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let (client, ns) = (self.client.clone(), self.namespace.clone());
            handle.spawn(async move {
                let _ = Api::<Namespace>::all(client)
                    .delete(&ns, &DeleteParams::default())
                    .await;
            });
        }
    }
}
