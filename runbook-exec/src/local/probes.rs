//! Typed probes: how the local sandbox observes each kind (in-process, through `files.rs`,
//! or by a command inside the sandbox's network namespace), and those evaluated
//! in-process: a TCP connection, an HTTP request, a process by name. (Files are in
//! `files.rs`: they need the no-link-followed rules.)

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use runbook_core::HttpProbe;

use super::files;
use super::sandbox::LocalSandbox;
use crate::{CommandSpec, ExecError, Observation, OutputSink, Result, Sandbox};

impl LocalSandbox {
    /// Observes `probe` from where the sandbox's commands would (the body of
    /// [`Sandbox::probe`]).
    pub(super) async fn probe_local(
        &self,
        probe: &runbook_core::Probe,
    ) -> Result<crate::Observation> {
        match probe {
            runbook_core::Probe::File(f) => {
                let (root, f) = (self.work_dir(), f.clone());
                tokio::task::spawn_blocking(move || files::observe_file(&root, &f))
                    .await
                    .map_err(|e| ExecError::Provider(format!("a file check failed: {e}")))?
            }
            // Inside a network namespace, ports and URLs are only reachable from a process
            // in it: the probe's one shell form, the one the scripts run, run there.
            runbook_core::Probe::Tcp(_) | runbook_core::Probe::Http(_)
                if self.meta.netns.is_some() =>
            {
                let command = probe.shell().ok_or_else(|| {
                    ExecError::Provider("a TCP or HTTP check has a shell form".into())
                })?;
                self.probe_by_command(command).await
            }
            runbook_core::Probe::Tcp(t) => {
                let (host, port) = (t.host.clone(), t.port.clone());
                tokio::task::spawn_blocking(move || Ok(tcp(&host, &port, Duration::from_secs(5))))
                    .await
                    .map_err(|e| ExecError::Provider(format!("a TCP check failed: {e}")))?
            }
            runbook_core::Probe::Http(h) => {
                let h = h.clone();
                tokio::task::spawn_blocking(move || Ok(http(&h)))
                    .await
                    .map_err(|e| ExecError::Provider(format!("an HTTP check failed: {e}")))?
            }
            runbook_core::Probe::Process(p) => {
                let pids = self.processes().await.unwrap_or_default();
                Ok(process_named(&pids, &p.name))
            }
            runbook_core::Probe::Command(_) | runbook_core::Probe::Kube(_) => {
                Err(ExecError::Unsupported {
                    provider: "local".into(),
                    what: format!("this kind of check ({})", crate::sandbox::probe_kind(probe)),
                })
            }
        }
    }

    /// A typed probe evaluated by a shell command in the sandbox (where in-process cannot
    /// see what the sandbox sees): satisfied when it exits 0.
    async fn probe_by_command(&self, command: String) -> Result<crate::Observation> {
        struct Discard;
        impl OutputSink for Discard {
            fn output(&mut self, _: crate::Stream, _: &[u8]) {}
        }
        let spec = CommandSpec {
            command: command.clone(),
            env: BTreeMap::new(),
            workdir: None,
            timeout: Duration::from_secs(15),
            errexit: false,
        };
        let exit = Sandbox::run(self, &spec, &mut Discard).await?;
        Ok(crate::Observation {
            satisfied: exit.code == Some(0),
            actual: match exit.code {
                Some(0) => "as expected".into(),
                Some(c) => format!("`{command}` exited {c}"),
                None => format!("`{command}` was killed"),
            },
        })
    }
}

fn seen(satisfied: bool, actual: String) -> Observation {
    Observation { satisfied, actual }
}

/// Connects to `host:port`, every address it resolves to, within `limit` each.
fn tcp(host: &str, port: &str, limit: Duration) -> Observation {
    let Ok(port) = port.trim().parse::<u16>() else {
        return seen(false, format!("`{port}` is not a port"));
    };
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return seen(false, format!("`{host}` does not resolve: {e}")),
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(_) => return seen(true, format!("{host}:{port} accepted a connection")),
            Err(e) => last = format!("{host}:{port}: {e}"),
        }
    }
    seen(false, last)
}

/// The most of a response an HTTP probe reads.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// A plain HTTP/1.1 GET (no TLS, no redirects): its status and whether the body holds
/// the text. `https://` URLs are for a command check with `curl`.
fn http(probe: &HttpProbe) -> Observation {
    let Some(rest) = probe.url.strip_prefix("http://") else {
        return seen(
            false,
            format!(
                "`{}` is not a plain http:// URL; use a command check (curl) for https",
                probe.url
            ),
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p),
        _ => (authority, "80"),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let limit = probe
        .timeout
        .map_or(Duration::from_secs(10), |t| t.as_duration());
    let Ok(port) = port.parse::<u16>() else {
        return seen(false, format!("`{}` has no valid port", probe.url));
    };
    let addr = match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => return seen(false, format!("`{host}` does not resolve")),
    };
    let mut stream = match TcpStream::connect_timeout(&addr, limit) {
        Ok(s) => s,
        Err(e) => return seen(false, format!("{}: {e}", probe.url)),
    };
    let _ = stream.set_read_timeout(Some(limit));
    let _ = stream.set_write_timeout(Some(limit));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: runbook-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return seen(false, format!("{}: {e}", probe.url));
    }
    let mut response = Vec::new();
    if let Err(e) = stream.take(MAX_RESPONSE).read_to_end(&mut response)
        && response.is_empty()
    {
        return seen(false, format!("{}: {e}", probe.url));
    }
    let text = String::from_utf8_lossy(&response);
    let status: Option<u16> = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    let Some(status) = status else {
        return seen(false, format!("{} answered no HTTP status", probe.url));
    };
    if status != probe.status {
        return seen(false, format!("{} answered {status}", probe.url));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    match &probe.body_contains {
        Some(want) if !body.contains(want.as_str()) => seen(
            false,
            format!(
                "{} answered {status} without the text in its body",
                probe.url
            ),
        ),
        _ => seen(true, format!("{} answered {status}", probe.url)),
    }
}

/// Whether one of `pids` runs under `name` (the kernel's command name, 15 characters).
fn process_named(pids: &[i32], name: &str) -> Observation {
    let want: String = name.chars().take(15).collect();
    let running = pids.iter().any(|p| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim_end() == want)
    });
    if running {
        seen(true, format!("a process named `{want}` runs"))
    } else {
        seen(
            false,
            format!(
                "no process named `{want}` among the sandbox's {}",
                pids.len()
            ),
        )
    }
}
