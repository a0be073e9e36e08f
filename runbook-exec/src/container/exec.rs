//! One command in a container, through the engine's exec API: its output streamed as it
//! comes, its timeout, and the kill of everything it started when it times out or its
//! caller goes away.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::engine::failed;
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
    if let Some(bytes) = request.stdin {
        use tokio::io::AsyncWriteExt;
        let written = async {
            input.write_all(bytes).await?;
            input.shutdown().await
        };
        written.await.map_err(|e| {
            ExecError::Provider(format!(
                "cannot write a command's input in container {}: {e}",
                request.container
            ))
        })?;
    }
    let streamed = async {
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
    match tokio::time::timeout(request.timeout, streamed).await {
        Err(_) => {
            kill(docker, request.container, request.marker).await;
            guard.marker = None;
            return Ok(Exit {
                code: None,
                timed_out: true,
                duration: started.elapsed(),
            });
        }
        Ok(Err(e)) => {
            return Err(failed(format!(
                "the output of a command in container {} broke off",
                request.container
            ))(e));
        }
        Ok(Ok(())) => {}
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

/// Kills, as root, every process of the container that carries `marker`.
pub(super) async fn kill(docker: &Docker, container: &str, marker: Option<&str>) {
    let Some(marker) = marker else {
        return;
    };
    // Twice: a process forked while the first pass ran is caught by the second.
    let script = format!(
        "for pass in 1 2; do for p in /proc/[0-9]*; do \
         if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qxF '{COMMAND_VAR}={marker}'; then \
         kill -KILL \"${{p#/proc/}}\" 2>/dev/null; fi; done; done; true"
    );
    let request = ExecRequest {
        container,
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: Vec::new(),
        user: "0:0",
        workdir: "/",
        marker: None,
        timeout: Duration::from_secs(30),
        stdin: None,
    };
    let _ = Box::pin(run(docker, request, &mut Discard)).await;
}

/// An output sink that keeps nothing.
pub(super) struct Discard;

impl OutputSink for Discard {
    fn output(&mut self, _: Stream, _: &[u8]) {}
}

/// Kills a command's processes when its future is dropped before it ended.
struct KillOnDrop {
    docker: Docker,
    container: String,
    marker: Option<String>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(marker) = self.marker.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let (docker, container) = (self.docker.clone(), self.container.clone());
            handle.spawn(async move { kill(&docker, &container, Some(&marker)).await });
        }
    }
}
