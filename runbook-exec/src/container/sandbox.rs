//! The sandbox: [`ContainerSandbox`], one container, and its [`Sandbox`] implementation:
//! commands through exec as the sandbox's user, files written as that user, typed probes
//! by their shell form from inside, and teardown that leaves no container or network.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptions;
use runbook_core::report::{ImageFacts, SandboxDescription};
use runbook_core::{Lifetime, Probe, SandboxLimits};

use super::engine::{self, EngineSocket, is_status};
use super::exec::{self, Discard, ExecRequest};
use super::{HOME, TMP, USER_NAME};
use crate::local::{LocalSandbox, MARKER_VAR};
use crate::{CommandSpec, ExecError, Exit, Observation, OutputSink, Result, Sandbox, Stream};

/// A container as a sandbox. See the [module docs](super).
pub struct ContainerSandbox {
    pub(super) local: LocalSandbox,
    pub(super) docker: Docker,
    pub(super) socket: EngineSocket,
    /// The container's name.
    pub(super) container: String,
    /// The sandbox's own network, when it has one.
    pub(super) network: Option<String>,
    pub(super) image: ImageFacts,
    pub(super) limits: SandboxLimits,
    /// The `PATH` commands see (the image's).
    pub(super) path: String,
    /// `uid:gid` commands run as.
    pub(super) user: String,
    pub(super) engine_version: String,
    pub(super) kernel: String,
    pub(super) shell_version: String,
    /// Numbers the commands (their kill markers).
    pub(super) commands: AtomicU64,
    /// The out-of-memory kills already reported.
    pub(super) oom_seen: AtomicU64,
    /// Cleared when torn down or kept: dropping it then removes nothing.
    pub(super) alive: bool,
}

impl std::fmt::Debug for ContainerSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSandbox")
            .field("container", &self.container)
            .field("image", &self.image.name)
            .finish_non_exhaustive()
    }
}

impl ContainerSandbox {
    /// The container's name on the engine.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The image it runs.
    pub fn image(&self) -> &ImageFacts {
        &self.image
    }

    /// Runs a shell script as root in the container (setup, diagnostics), its output kept.
    pub(super) async fn as_root(&self, script: &str) -> Result<(Exit, String)> {
        root_script(&self.docker, &self.container, script).await
    }

    /// The out-of-memory kills in the container's memory cgroup so far (cgroup v2 or v1).
    async fn oom_kills(&self) -> Option<u64> {
        let (_, text) = self
            .as_root(
                "cat /sys/fs/cgroup/memory.events 2>/dev/null || \
                 cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null",
            )
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// A command as the sandbox's user, in its work directory, with its environment.
    fn request<'a>(&'a self, spec: &CommandSpec, workdir: &'a str) -> ExecRequest<'a> {
        let mut argv = vec!["bash".to_owned()];
        if spec.errexit {
            argv.extend(["-e".into(), "-o".into(), "pipefail".into()]);
        }
        argv.extend(["-c".into(), spec.command.clone()]);
        let mut env: BTreeMap<String, String> = [
            ("PATH", self.path.clone()),
            ("LANG", "C.UTF-8".into()),
            ("LC_ALL", "C.UTF-8".into()),
            ("HOME", HOME.into()),
            ("TMPDIR", TMP.into()),
            ("USER", USER_NAME.into()),
            ("LOGNAME", USER_NAME.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Last: nothing may override the sandbox's marker.
        env.insert(MARKER_VAR.into(), self.local.id().to_owned());
        ExecRequest {
            container: &self.container,
            argv,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            user: &self.user,
            workdir,
            marker: None,
            timeout: spec.timeout,
            stdin: None,
            socket: Some(&self.socket),
        }
    }
}

/// Runs `script` as root in `container`, its output kept (at most what a setup prints).
pub(super) async fn root_script(
    docker: &Docker,
    container: &str,
    script: &str,
) -> Result<(Exit, String)> {
    struct Keep(Vec<u8>);
    impl OutputSink for Keep {
        fn output(&mut self, _: Stream, bytes: &[u8]) {
            if self.0.len() < 1 << 20 {
                self.0.extend_from_slice(bytes);
            }
        }
    }
    let mut keep = Keep(Vec::new());
    let request = ExecRequest {
        container,
        argv: vec!["/bin/sh".into(), "-c".into(), script.to_owned()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        user: "0:0",
        workdir: "/",
        marker: None,
        timeout: Duration::from_secs(60),
        stdin: None,
        socket: None,
    };
    let exit = exec::run(docker, request, &mut keep).await?;
    Ok((exit, String::from_utf8_lossy(&keep.0).into_owned()))
}

/// Removes a container (and what runs in it) and its network; gone already is fine.
/// Says whether the container was there.
pub(super) async fn remove(
    docker: &Docker,
    container: &str,
    network: Option<&str>,
) -> Result<bool> {
    let existed = match docker
        .remove_container(
            container,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
    {
        Ok(()) => true,
        Err(e) if is_status(&e, 404) => false,
        Err(e) => {
            return Err(engine::failed(format!(
                "cannot remove container {container}"
            ))(e));
        }
    };
    if let Some(network) = network {
        match docker.remove_network(network).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(engine::failed(format!("cannot remove network {network}"))(
                    e,
                ));
            }
        }
    }
    Ok(existed)
}

/// The work directory of a command: the sandbox's, or a relative path inside it.
fn workdir(spec: &CommandSpec) -> Result<String> {
    match &spec.workdir {
        None => Ok(HOME.to_owned()),
        Some(w) => Ok(format!(
            "{HOME}/{}",
            crate::local::relative(w)?.to_string_lossy()
        )),
    }
}

#[async_trait]
impl Sandbox for ContainerSandbox {
    fn id(&self) -> &str {
        self.local.id()
    }

    fn control_dir(&self) -> &Path {
        self.local.control_dir()
    }

    async fn run(&self, spec: &CommandSpec, out: &mut dyn OutputSink) -> Result<Exit> {
        let dir = workdir(spec)?;
        let marker = format!(
            "{}-{}",
            self.local.id(),
            self.commands.fetch_add(1, Ordering::Relaxed)
        );
        let mut request = self.request(spec, &dir);
        request.marker = Some(&marker);
        let exit = exec::run(&self.docker, request, out).await?;
        if exit.code != Some(0)
            && self.limits.memory.is_some()
            && let Some(kills) = self.oom_kills().await
            && kills > self.oom_seen.swap(kills, Ordering::Relaxed)
        {
            let line = format!(
                "\nrunbook: the sandbox's memory limit ({}) was reached: the kernel killed a \
                 process of this command (out of memory)\n",
                self.limits.memory.as_deref().unwrap_or_default()
            );
            out.output(Stream::Stderr, line.as_bytes());
        }
        Ok(exit)
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        // Written by the sandbox's user, not by the engine as root: a link a step planted
        // can only lead where that user may write anyway.
        let rel = crate::local::relative(path)?.to_string_lossy().into_owned();
        struct Errors(Vec<u8>);
        impl OutputSink for Errors {
            fn output(&mut self, _: Stream, bytes: &[u8]) {
                if self.0.len() < 4096 {
                    self.0.extend_from_slice(bytes);
                }
            }
        }
        // First, without the contents: only a regular file (or none yet) that the user
        // may write is written; a FIFO or a device a step planted in its place is refused,
        // not written into. (Said now: a command that ends without reading its input may
        // lose what it printed to the engine's complaint about the unread input.)
        let scripts: [(&str, Option<&[u8]>); 2] = [
            (
                r#"if [ -e "$0" ] && [ ! -f "$0" ]; then echo "$0: not a regular file" >&2; exit 1; fi
mkdir -p -- "$(dirname -- "$0")"
if [ -e "$0" ]; then [ -w "$0" ]; else [ -w "$(dirname -- "$0")" ]; fi || { echo "$0: Permission denied (the sandbox's user may not write it)" >&2; exit 1; }"#,
                None,
            ),
            (r#"cat > "$0""#, Some(contents)),
        ];
        for (script, stdin) in scripts {
            let mut request = self.request(
                &CommandSpec {
                    command: script.into(),
                    env: BTreeMap::new(),
                    workdir: None,
                    timeout: Duration::from_secs(60),
                    errexit: true,
                },
                HOME,
            );
            request.argv.push(rel.clone());
            request.stdin = stdin;
            let mut errors = Errors(Vec::new());
            let exit = exec::run(&self.docker, request, &mut errors).await?;
            if exit.code != Some(0) {
                let why = String::from_utf8_lossy(&errors.0).trim().to_owned();
                return Err(ExecError::Provider(format!(
                    "cannot write `{rel}` in container {}: {}",
                    self.container,
                    match (why.is_empty(), exit.timed_out) {
                        (false, _) => why,
                        (true, true) => "no end within 60s".into(),
                        (true, false) => format!(
                            "exited {}",
                            exit.code.map_or("by a signal".into(), |c| c.to_string())
                        ),
                    }
                )));
            }
        }
        Ok(())
    }

    async fn describe(&self) -> Result<SandboxDescription> {
        let os = if self.image.os_release.is_empty() {
            format!("Linux {}", self.kernel)
        } else {
            format!("{} (Linux {})", self.image.os_release, self.kernel)
        };
        let mut versions = BTreeMap::from([
            ("kernel".to_owned(), self.kernel.clone()),
            ("bash".to_owned(), self.shell_version.clone()),
        ]);
        if !self.engine_version.is_empty() {
            versions.insert("container-engine".into(), self.engine_version.clone());
        }
        Ok(SandboxDescription {
            provider: "container".into(),
            id: self.local.id().to_owned(),
            lifetime: Some(self.local.lifetime()),
            os,
            nodes: 1,
            network_isolated: self.network.is_none(),
            user: if self.user == "0:0" {
                "root".into()
            } else {
                USER_NAME.into()
            },
            path: self.path.clone(),
            versions,
            image: Some(self.image.clone()),
            limits: self.limits.clone(),
        })
    }

    async fn probe(&self, probe: &Probe) -> Result<Observation> {
        // From inside the container, by the probe's one shell form: the very command the
        // package's scripts run on the target.
        let Some(command) = probe.shell() else {
            return Err(ExecError::Unsupported {
                provider: "container".into(),
                what: format!("this kind of check ({})", crate::sandbox::probe_kind(probe)),
            });
        };
        let timeout = match probe {
            Probe::Http(h) => h
                .timeout
                .map_or(Duration::from_secs(10), |t| t.as_duration()),
            _ => Duration::from_secs(10),
        } + Duration::from_secs(5);
        let spec = CommandSpec {
            command: command.clone(),
            env: BTreeMap::new(),
            workdir: None,
            timeout,
            errexit: false,
        };
        let exit = self.run(&spec, &mut Discard).await?;
        Ok(Observation {
            satisfied: exit.code == Some(0),
            actual: match exit.code {
                Some(0) => "as expected".into(),
                Some(c) => format!("`{command}` exited {c} in the container"),
                None => format!("`{command}` did not finish in the container"),
            },
        })
    }

    async fn diagnostics(&self) -> Option<String> {
        // What the limits did: a step killed by them says little on its own.
        let script = r#"limit() { v=$(cat "$1" 2>/dev/null); case $v in max|"") echo none;; *) [ ${#v} -ge 19 ] && echo none || echo "$v";; esac; }
v1=/sys/fs/cgroup/memory
if [ -f /sys/fs/cgroup/memory.events ]; then
  echo "memory: $(cat /sys/fs/cgroup/memory.current) bytes in use, peak $(cat /sys/fs/cgroup/memory.peak 2>/dev/null || echo unknown), limit $(limit /sys/fs/cgroup/memory.max)"
  grep oom_kill /sys/fs/cgroup/memory.events
  echo "processes: $(cat /sys/fs/cgroup/pids.current 2>/dev/null) of $(limit /sys/fs/cgroup/pids.max)"
elif [ -d $v1 ]; then
  echo "memory: $(cat $v1/memory.usage_in_bytes) bytes in use, peak $(cat $v1/memory.max_usage_in_bytes), limit $(limit $v1/memory.limit_in_bytes)"
  grep oom_kill $v1/memory.oom_control
  echo "processes: $(cat /sys/fs/cgroup/pids/pids.current 2>/dev/null) of $(limit /sys/fs/cgroup/pids/pids.max)"
fi"#;
        let (_, text) = self.as_root(script).await.ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| format!("container {}:\n{text}", self.container))
    }

    async fn teardown(&mut self) -> Result<()> {
        self.alive = false;
        let removed = remove(&self.docker, &self.container, self.network.as_deref()).await;
        self.local.teardown().await?;
        removed.map(drop)
    }

    fn keep(&mut self) {
        self.alive = false;
        self.local.keep();
    }
}

impl Drop for ContainerSandbox {
    fn drop(&mut self) {
        // Dropped without teardown (an error, a panic, a cancelled run, a signal): the
        // container goes now, from a thread of its own (the caller's runtime may be the
        // one that is stopping); the reaper finds it by its labels otherwise.
        if !self.alive || self.local.lifetime() == Lifetime::Persistent {
            return;
        }
        let (socket, container, network) = (
            self.socket.clone(),
            self.container.clone(),
            self.network.clone(),
        );
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let docker = engine::client(&socket).ok()?;
                remove(&docker, &container, network.as_deref()).await.ok()
            })
        });
        let _ = cleanup.join();
    }
}
