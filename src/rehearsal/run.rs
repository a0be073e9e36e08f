//! Running in the rehearsal sandbox: one script of the package, keeping the end of what
//! it printed (redacted); and, after the rollback, looking for what it left.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runbook_core::report::ScriptRun;
use runbook_exec::{CommandSpec, ExecError, OutputSink, Redactor, Sandbox, Stream};

use super::{PACKAGE, RehearsalOptions, TARGET};

/// The last lines a script printed, for the evidence.
pub(super) struct Tail {
    pub(super) bytes: Vec<u8>,
    pub(super) redactor: runbook_exec::StreamRedactor,
}

/// How much of a script's output the evidence keeps.
const TAIL_BYTES: usize = 16 * 1024;

impl OutputSink for Tail {
    fn output(&mut self, _stream: Stream, bytes: &[u8]) {
        let clean = self.redactor.push(bytes);
        self.bytes.extend_from_slice(&clean);
        if self.bytes.len() > 2 * TAIL_BYTES {
            let cut = self.bytes.len() - TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }
}

/// Runs `command` (a script of the package, with its arguments) as the human would, and
/// judges its exit code with `ok`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_script(
    sandbox: &dyn Sandbox,
    env: &BTreeMap<String, String>,
    phase: &str,
    command: &str,
    expected: &str,
    ok: fn(Option<i32>) -> bool,
    redactor: &Redactor,
    options: &RehearsalOptions,
) -> Result<ScriptRun, ExecError> {
    let spec = CommandSpec {
        command: format!("bash {PACKAGE}/{command}"),
        env: env.clone(),
        workdir: None,
        timeout: options.script_timeout,
        errexit: false,
    };
    let mut tail = Tail {
        bytes: Vec::new(),
        redactor: runbook_exec::StreamRedactor::new(redactor.clone()),
    };
    let started = Instant::now();
    let exit = sandbox.run(&spec, &mut tail).await?;
    let rest = tail.redactor.finish();
    tail.bytes.extend_from_slice(&rest);
    let passed = !exit.timed_out && ok(exit.code);
    let text = String::from_utf8_lossy(&tail.bytes);
    let output = if passed {
        String::new()
    } else {
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    Ok(ScriptRun {
        phase: phase.to_owned(),
        command: command.to_owned(),
        expected: expected.to_owned(),
        exit_code: exit.code,
        passed,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        output,
    })
}

/// Processes still running and files still in the work directory after the rollback.
pub(super) async fn leftovers(
    sandbox: &dyn Sandbox,
    redactor: &Redactor,
) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::new();
    // A process on its way out (the `sleep` of a loop that was just killed) is not left
    // behind: give them two seconds, looking every 20 ms (the wait ends when they do).
    let mut pids = sandbox.processes().await;
    for _ in 0..100 {
        if pids.as_ref().is_none_or(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        pids = sandbox.processes().await;
    }
    if let Some(pids) = pids
        && !pids.is_empty()
    {
        let names: Vec<String> = pids
            .iter()
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                format!("{p} ({})", redactor.redact(cmd.trim()))
            })
            .collect();
        out.push(format!(
            "{} process(es) still run: {}",
            pids.len(),
            names.join(", ")
        ));
    }
    // The scripts' own state stays: the journal, the lock file (never removed) and the
    // outcome of the last script.
    let spec = CommandSpec {
        command: format!(
            "[ ! -d {TARGET} ] || find {TARGET} -type f ! -name .runbook-journal ! -name .runbook-lock ! -name .runbook-outcome | sort | head -n 20"
        ),
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_secs(60),
        errexit: false,
    };
    let mut tail = Tail {
        bytes: Vec::new(),
        redactor: runbook_exec::StreamRedactor::new(redactor.clone()),
    };
    sandbox.run(&spec, &mut tail).await?;
    for file in String::from_utf8_lossy(&tail.bytes).lines() {
        if !file.trim().is_empty() {
            out.push(format!("file {}", file.trim()));
        }
    }
    Ok(out)
}
