//! Spawning a command in its own process group, streaming its output, and killing
//! every process a sandbox started.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::{ExecError, Exit, OutputSink, Result, Stream};

/// How long output is still read after the shell exits. A daemon started in the
/// background may keep the pipes open forever; its output goes to the log only while
/// the step runs.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Runs `command`, moves it into its cgroup `leaf` (if any), then writes `input` to its
/// stdin (then closes it; without input stdin is `/dev/null`) and streams its output
/// into `sink`; on timeout (or when this future is
/// dropped) kills its process group and, when it runs in one, its cgroup `leaf`. The
/// process group is appended to the `running` marker, for a later process to end it.
pub(crate) async fn run(
    mut command: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
    leaf: Option<&Path>,
    running: &Path,
    sink: &mut dyn OutputSink,
) -> Result<Exit> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let started = Instant::now();
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .spawn()
        .map_err(|e| ExecError::Provider(format!("cannot start `{program}`: {e}")))?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // If this future is dropped mid-command, the group (and the cgroup) die with it.
    let guard = GroupGuard {
        pgid,
        leaf: leaf.map(Path::to_owned),
    };
    if let (Some(leaf), Some(pid)) = (leaf, child.id()) {
        // The guard kills the waiting process if it cannot be contained: never run it outside.
        place(leaf, pid)?;
    }
    // The loader waits for this before it runs anything: its environment. A pipe holds
    // far less than a large environment, so it is written while the output is read.
    let mut feed = input.zip(child.stdin.take()).map(|(bytes, stdin)| Feed {
        bytes,
        written: 0,
        stdin,
    });
    if let Some(pgid) = pgid
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(running)
    {
        let _ = writeln!(f, "pgid={pgid}");
    }
    // A deadline past what the clock can represent is no deadline.
    let deadline = started
        .checked_add(timeout)
        .map(tokio::time::Instant::from_std);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; 64 * 1024];
    let mut err_buf = vec![0u8; 64 * 1024];
    let mut status = None;
    let mut timed_out = false;
    let mut grace = None;
    loop {
        if stdout.is_none() && stderr.is_none() && status.is_some() {
            break;
        }
        tokio::select! {
            done = write_some(&mut feed), if feed.is_some() => if done { feed = None },
            n = read(&mut stdout, &mut out_buf), if stdout.is_some() => match n {
                Some(n) => sink.output(Stream::Stdout, &out_buf[..n]),
                None => stdout = None,
            },
            n = read(&mut stderr, &mut err_buf), if stderr.is_some() => match n {
                Some(n) => sink.output(Stream::Stderr, &err_buf[..n]),
                None => stderr = None,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s.map_err(|e| ExecError::Provider(format!("waiting for `{program}`: {e}")))?);
                grace = Some(tokio::time::Instant::now() + OUTPUT_GRACE);
            },
            _ = sleep_until(deadline), if status.is_none() && !timed_out => {
                timed_out = true;
                guard.kill();
            },
            _ = sleep_until(grace), if grace.is_some() => break,
        }
    }
    // The command ended by itself: what it left running on purpose (a daemon) stays.
    guard.disarm();
    let status = status.expect("loop ends after the child exited");
    Ok(Exit {
        code: status.code(),
        timed_out,
        duration: started.elapsed(),
    })
}

/// Moves process `pid` into the cgroup `leaf`. A reaper may have removed the leaf while
/// it was empty (it holds no state): then it is made again.
fn place(leaf: &Path, pid: u32) -> Result<()> {
    let procs = leaf.join("cgroup.procs");
    let mut tries = 0;
    loop {
        match std::fs::write(&procs, pid.to_string()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => {
                tries += 1;
                super::contain::create(leaf).map_err(ExecError::io("create the cgroup", leaf))?;
            }
            Err(e) => {
                return Err(ExecError::Provider(format!(
                    "cannot move the command into its cgroup `{}`: {e}",
                    procs.display()
                )));
            }
        }
    }
}

/// Input still to be written to a command's stdin.
struct Feed {
    bytes: Vec<u8>,
    written: usize,
    stdin: tokio::process::ChildStdin,
}

/// Writes some of the input (cancel-safe: a write that has not completed wrote nothing);
/// says whether it is all written, or the reader is gone, so the pipe can be closed. An
/// early exit of the reader is not an error here: its exit status says what happened.
async fn write_some(feed: &mut Option<Feed>) -> bool {
    let Some(f) = feed.as_mut() else {
        return true;
    };
    match f.stdin.write(&f.bytes[f.written..]).await {
        Ok(n) if n > 0 => {
            f.written += n;
            f.written == f.bytes.len()
        }
        _ => true,
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn read<R: tokio::io::AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match r.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Kills a command's process group and cgroup when dropped (a cancelled future must
/// not leave the command running).
struct GroupGuard {
    pgid: Option<Pid>,
    leaf: Option<PathBuf>,
}

impl GroupGuard {
    fn disarm(mut self) {
        self.pgid = None;
        self.leaf = None;
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some(leaf) = &self.leaf {
            let _ = std::fs::write(leaf.join("cgroup.kill"), "1");
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills every process that belongs to a sandbox: those carrying its marker in their
/// environment, and those whose working directory is inside it. That covers daemons
/// that re-parented, started a new session or double-forked. Repeats until none is
/// left or `limit` has passed; returns how many it killed.
pub(crate) fn kill_sandbox_processes(marker: &str, dir: &Path, limit: Duration) -> usize {
    let me = std::process::id();
    let deadline = Instant::now() + limit;
    let mut killed = 0;
    loop {
        let found = sandbox_processes(marker, dir, me);
        if found.is_empty() || Instant::now() > deadline {
            return killed;
        }
        for pid in found {
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids of the live processes of a sandbox.
pub(crate) fn sandbox_processes(marker: &str, dir: &Path, me: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = marker.as_bytes();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        // Zombies are already dead; only their parent can reap them.
        if std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        }) {
            continue;
        }
        let in_dir = std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        let marked = in_dir
            || std::fs::read(proc_dir.join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == marker));
        if marked {
            out.push(pid as i32);
        }
    }
    out
}
