//! One command in a container, through the engine's exec API: its output streamed as it
//! comes, its timeout, and the kill of everything it started when it times out or its
//! caller goes away.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::engine::{self, EngineSocket, failed};
use crate::{ExecError, Exit, OutputSink, Result, Stream};

/// The environment variable that marks every process a command starts (and everything
/// those start), so that a timeout or an interruption can end them all.
pub(super) const COMMAND_VAR: &str = "RUNBOOK_COMMAND";

/// What to run and how.
pub(super) struct ExecRequest<'a> {
    pub container: &'a str,
    pub argv: Vec<String>,
    /// `NAME=VALUE` entries.
    pub env: Vec<String>,
    /// `uid:gid`, or `0:0`.
    pub user: &'a str,
    pub workdir: &'a str,
    /// This command's marker (the value of [`COMMAND_VAR`]), when it may be killed.
    pub marker: Option<&'a str>,
    pub timeout: Duration,
    /// Bytes for its standard input (closed after them), if any.
    pub stdin: Option<&'a [u8]>,
    /// The engine's socket, for the kill of a command whose future is dropped: from a
    /// client and runtime of its own, since the caller's runtime may be the one stopping.
    pub socket: Option<&'a EngineSocket>,
}

/// Runs `request` and streams its output into `out`.
pub(super) async fn run(
    docker: &Docker,
    request: ExecRequest<'_>,
    out: &mut dyn OutputSink,
) -> Result<Exit> {
    let started = Instant::now();
    let mut env = request.env.clone();
    if let Some(marker) = request.marker {
        // Only ours: an engine may keep the first of two entries of one name.
        env.retain(|e| !e.starts_with(&format!("{COMMAND_VAR}=")));
        env.push(format!("{COMMAND_VAR}={marker}"));
    }
    let created = docker
        .create_exec(
            request.container,
            CreateExecOptions {
                cmd: Some(request.argv.clone()),
                env: Some(env),
                user: Some(request.user.to_owned()),
                working_dir: Some(request.workdir.to_owned()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                attach_stdin: Some(request.stdin.is_some()),
                tty: Some(false),
                ..Default::default()
            },
        )
        .await
        .map_err(failed(format!(
            "cannot start a command in container {}",
            request.container
        )))?;
    // From here on, a dropped future (the caller's own timeout, a cancelled run) must not
    // leave the command running.
    let mut guard = KillOnDrop {
        docker: docker.clone(),
        socket: request.socket.cloned(),
        container: request.container.to_owned(),
        marker: request.marker.map(str::to_owned),
    };
    let started_exec = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: Some(64 * 1024),
            }),
        )
        .await
        .map_err(failed(format!(
            "cannot start a command in container {}",
            request.container
        )))?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started_exec
    else {
        return Err(ExecError::Provider(
            "the container engine detached a command that was to be attached".into(),
        ));
    };
    // The input is written while the output is read, both under the timeout: a command
    // that does not read its input (a FIFO where a file was to be written) cannot hold
    // the run past it. `unread` is set when the command ended without reading all its
    // input: the engine may then reset the connection, which ends its output rather than
    // breaking it.
    let unread = std::sync::atomic::AtomicBool::new(false);
    let written = async {
        use tokio::io::AsyncWriteExt;
        let Some(bytes) = request.stdin else {
            return Ok(());
        };
        match input.write_all(bytes).await {
            Ok(()) => input.shutdown().await,
            // Its exit code and output say why.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                unread.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    let read = async {
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    out.output(Stream::Stdout, &message);
                }
                Ok(LogOutput::StdErr { message }) => out.output(Stream::Stderr, &message),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let streamed = async { tokio::join!(written, read) };
    match tokio::time::timeout(request.timeout, streamed).await {
        Ok((Err(e), _)) => {
            return Err(ExecError::Provider(format!(
                "cannot write a command's input in container {}: {e}",
                request.container
            )));
        }
        Err(_) => {
            kill(docker, request.container, request.marker).await;
            guard.marker = None;
            return Ok(Exit {
                code: None,
                timed_out: true,
                duration: started.elapsed(),
            });
        }
        Ok((_, Err(_))) if unread.load(std::sync::atomic::Ordering::Relaxed) => {}
        Ok((_, Err(e))) => {
            return Err(failed(format!(
                "the output of a command in container {} broke off",
                request.container
            ))(e));
        }
        Ok((Ok(()), Ok(()))) => {}
    }
    guard.marker = None;
    drop(input);
    // The stream ends when the process does; the engine may take a moment to say so.
    let mut code = None;
    for _ in 0..200 {
        let inspected = docker
            .inspect_exec(&created.id)
            .await
            .map_err(failed("cannot read how a command in the container ended"))?;
        if inspected.running != Some(true) {
            code = inspected.exit_code;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Exit {
        // A shell killed by a signal reads as 128 + the signal, as in a shell.
        code: code.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
        timed_out: false,
        duration: started.elapsed(),
    })
}

/// Kills every process of the container that carries `marker`. A process's environment
/// is readable by its own user only (root in a container lacks `CAP_SYS_PTRACE`), so the
/// marker is looked for, and the kill sent, as each user (and group) that has processes.
pub(super) async fn kill(docker: &Docker, container: &str, marker: Option<&str>) {
    let Some(marker) = marker else {
        return;
    };
    let ids = r#"for s in /proc/[0-9]*/status; do
  u=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$s" 2>/dev/null)
  g=$(sed -n 's/^Gid:[[:space:]]*\([0-9]*\).*/\1/p' "$s" 2>/dev/null)
  [ -n "$u" ] && [ -n "$g" ] && echo "$u:$g"
done | sort -u"#;
    let mut found = Keep::default();
    let _ = Box::pin(run(docker, quiet(container, ids.into(), "0:0"), &mut found)).await;
    let users: Vec<String> = String::from_utf8_lossy(&found.0)
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(u, g)| u.parse::<u32>().is_ok() && g.parse::<u32>().is_ok())
        })
        .map(str::to_owned)
        .collect();
    // Twice: a process forked while the first pass ran is caught by the second.
    let script = format!(
        "for pass in 1 2; do for p in /proc/[0-9]*; do \
         if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qxF '{COMMAND_VAR}={marker}'; then \
         kill -KILL \"${{p#/proc/}}\" 2>/dev/null; fi; done; done; true"
    );
    for user in users {
        let _ = Box::pin(run(
            docker,
            quiet(container, script.clone(), &user),
            &mut Discard,
        ))
        .await;
    }
}

/// A short shell script of the provider's own, as `user`.
fn quiet<'a>(container: &'a str, script: String, user: &'a str) -> ExecRequest<'a> {
    ExecRequest {
        container,
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        user,
        workdir: "/",
        marker: None,
        timeout: Duration::from_secs(30),
        stdin: None,
        socket: None,
    }
}

/// An output sink that keeps the first 64 KiB.
#[derive(Default)]
struct Keep(Vec<u8>);

impl OutputSink for Keep {
    fn output(&mut self, _: Stream, bytes: &[u8]) {
        if self.0.len() < 64 * 1024 {
            self.0.extend_from_slice(bytes);
        }
    }
}

/// An output sink that keeps nothing.
pub(super) struct Discard;

impl OutputSink for Discard {
    fn output(&mut self, _: Stream, _: &[u8]) {}
}

/// Kills a command's processes when its future is dropped before it ended.
struct KillOnDrop {
    docker: Docker,
    socket: Option<EngineSocket>,
    container: String,
    marker: Option<String>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(marker) = self.marker.take() else {
            return;
        };
        let container = self.container.clone();
        // Done before the drop returns, from a thread, runtime and client of its own: a
        // task spawned on the caller's runtime never runs when that runtime is stopping
        // (a signalled CLI), and the command would live on in a kept container.
        if let Some(socket) = self.socket.clone() {
            let killer = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let docker = engine::client(&socket).ok()?;
                    kill(&docker, &container, Some(&marker)).await;
                    Some(())
                })
            });
            let _ = killer.join();
        } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            handle.spawn(async move { kill(&docker, &container, Some(&marker)).await });
        }
    }
}
