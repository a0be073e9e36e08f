//! The rehearsal: the package proves itself before it is handed over.
//!
//! After the sandbox run, the package's own scripts run in a second, fresh sandbox of the
//! same provider, as the human will run them, with values other than the sandbox's:
//! `deploy.sh`, `verify.sh` twice (checks must be repeatable and change nothing),
//! `deploy.sh` again (it must pass or refuse cleanly, as its journal says),
//! `rollback.sh --yes`, then `verify.sh --once` must fail, and nothing the scripts
//! started or wrote may be left. The rehearsal sandbox is destroyed whatever happened.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runbook_core::Runbook;
use runbook_core::report::{Rehearsal, RehearsalValue, ScriptRun, Verdict};
use runbook_exec::{
    CommandSpec, ExecError, OutputSink, Provider, ProvisionRequest, Redactor, Sandbox, Stream,
};
use runbook_render::Package;

/// How a rehearsal runs.
#[derive(Debug, Clone)]
pub struct RehearsalOptions {
    /// Values to use instead of the derived ones (`--var` of `runbook rehearse`).
    pub vars: BTreeMap<String, String>,
    /// The longest one script may run (default 30 minutes).
    pub script_timeout: Duration,
}

impl Default for RehearsalOptions {
    fn default() -> Self {
        RehearsalOptions {
            vars: BTreeMap::new(),
            script_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// A phase: its name, the script command, what it must do (in words, and as a test of
/// the exit code).
type Phase = (
    &'static str,
    &'static str,
    &'static str,
    fn(Option<i32>) -> bool,
);

/// Where the rehearsal puts the package and the scripts' work directory, relative to the
/// rehearsal sandbox's own work directory.
const PACKAGE: &str = "package";
const TARGET: &str = "target";

/// Rehearses `package` (rendered from `runbook`) in a fresh sandbox of `provider`.
/// `sandbox_values` are the values the sandbox run used (non-secret ones suffice): the
/// rehearsal picks others.
///
/// A failed phase is not an error: the returned [`Rehearsal`] says `Failed` and what
/// failed. Errors are failures of the machinery (the provider cannot provision).
pub async fn rehearse(
    provider: &dyn Provider,
    runbook: &Runbook,
    package: &Package,
    sandbox_values: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<Rehearsal, ExecError> {
    let request = ProvisionRequest {
        runbook: runbook.metadata.name.clone(),
        lifetime: runbook_core::Lifetime::Ephemeral,
    };
    let mut sandbox = provider.provision(&request).await?;
    let result = rehearse_in(sandbox.as_ref(), runbook, package, sandbox_values, options).await;
    // Destroyed whatever happened (dropping would too; this reports a failure to).
    let teardown = sandbox.teardown().await;
    let rehearsal = result?;
    teardown?;
    Ok(rehearsal)
}

async fn rehearse_in(
    sandbox: &dyn Sandbox,
    runbook: &Runbook,
    package: &Package,
    sandbox_values: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<Rehearsal, ExecError> {
    let (values, shown, secrets) = rehearsal_values(runbook, sandbox, sandbox_values, options)?;
    let redactor = Redactor::new(&secrets);
    for path in package.paths() {
        let bytes = package.get(path).unwrap_or_default();
        sandbox
            .write_file(&format!("{PACKAGE}/{path}"), bytes)
            .await?;
    }
    let mut env = values.clone();
    env.insert("RUNBOOK_WORK_DIR".into(), TARGET.into());
    let mut rehearsal = Rehearsal {
        verdict: Verdict::Passed,
        sandbox: sandbox.id().to_owned(),
        values: shown,
        ..Rehearsal::default()
    };
    let has_rollback = runbook.steps.iter().any(|s| s.rollback.is_some());
    // The first run's pre-flight proves the tools; nothing changes them in between.
    let phases: Vec<Phase> = vec![
        ("deploy", "scripts/deploy.sh", "exit 0", |c| c == Some(0)),
        (
            "verify",
            "scripts/verify.sh --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "verify again",
            "scripts/verify.sh --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "deploy again",
            "scripts/deploy.sh --no-preflight",
            "exit 0, or 3 (refused: already deployed)",
            |c| matches!(c, Some(0 | 3)),
        ),
        (
            "rollback",
            "scripts/rollback.sh --yes --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "verify after rollback",
            "scripts/verify.sh --once --no-preflight",
            "fail (what was deployed is gone)",
            |c| c.is_some_and(|c| c != 0),
        ),
    ];
    for (phase, command, expected, ok) in phases {
        if phase == "verify after rollback" && !has_rollback {
            continue;
        }
        // A failure the phase expects is no feedback for anyone.
        let mut env = env.clone();
        if phase == "verify after rollback" {
            env.insert("RUNBOOK_NO_FEEDBACK".into(), "1".into());
        }
        let run = run_script(
            sandbox, &env, phase, command, expected, ok, &redactor, options,
        )
        .await?;
        let passed = run.passed;
        if !passed {
            let outcome = outcome(sandbox, &run, &redactor).await?;
            rehearsal.failure = describe_failure(&run, outcome.as_ref(), &values, sandbox_values);
        }
        rehearsal.runs.push(run);
        if !passed {
            rehearsal.verdict = Verdict::Failed;
            return Ok(rehearsal);
        }
    }
    rehearsal.leftovers = leftovers(sandbox, &redactor).await?;
    if !rehearsal.leftovers.is_empty() {
        rehearsal.verdict = Verdict::Failed;
        rehearsal.failure = format!(
            "after rollback.sh, something is left: {}",
            rehearsal.leftovers.join("; ")
        );
    }
    Ok(rehearsal)
}

/// The rehearsal's value of every variable, how it was chosen (for the evidence, secrets
/// masked), and the secret values (to redact).
#[allow(clippy::type_complexity)]
fn rehearsal_values(
    runbook: &Runbook,
    sandbox: &dyn Sandbox,
    sandbox_values: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<(BTreeMap<String, String>, Vec<RehearsalValue>, Vec<String>), ExecError> {
    let fixed = sandbox.fixed_values();
    let mut values = BTreeMap::new();
    let mut shown = Vec::new();
    let mut secrets = Vec::new();
    for v in &runbook.variables {
        let secret = v.hides_value();
        let before = sandbox_values
            .get(&v.name)
            .or(v.sandbox.as_ref())
            .cloned()
            .unwrap_or_default();
        let (value, how) = if let Some(f) = fixed.get(&v.name) {
            (
                f.clone(),
                "fixed by the provider: it cannot change".to_owned(),
            )
        } else if let Some(given) = options.vars.get(&v.name) {
            (given.clone(), "given".to_owned())
        } else if let Some(r) = &v.rehearsal {
            (r.clone(), "its `rehearsal:` value".to_owned())
        } else if secret {
            (random_hex()?, "a new random value".to_owned())
        } else if before.is_empty() {
            return Err(ExecError::MissingValue(v.name.clone()));
        } else {
            derive(&v.name, v.category, &before)
        };
        if secret {
            secrets.push(value.clone());
        }
        shown.push(RehearsalValue {
            name: v.name.clone(),
            sandbox: if secret { "***".into() } else { before },
            rehearsal: if secret { "***".into() } else { value.clone() },
            how,
        });
        values.insert(v.name.clone(), value);
    }
    Ok((values, shown, secrets))
}

/// Another value of the same kind: another free port, the same address, a suffixed
/// name or directory.
fn derive(name: &str, category: runbook_core::Category, value: &str) -> (String, String) {
    let looks_like_port = value.parse::<u16>().is_ok_and(|p| p >= 1024)
        && (category == runbook_core::Category::Endpoint || name.ends_with("PORT"));
    if looks_like_port {
        for _ in 0..20 {
            if let Some(port) = free_port()
                && port.to_string() != value
            {
                return (port.to_string(), "another free port".into());
            }
        }
    }
    if value.parse::<std::net::IpAddr>().is_ok() || value == "localhost" {
        return (
            value.to_owned(),
            "unchanged: an address of the sandbox host".into(),
        );
    }
    let suffix = if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        "_rehearsal"
    } else {
        "-rehearsal"
    };
    (
        format!("{value}{suffix}"),
        "the sandbox value, suffixed".into(),
    )
}

fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

fn random_hex() -> Result<String, ExecError> {
    let mut bytes = [0u8; 16];
    let mut f = std::fs::File::open("/dev/urandom").map_err(|e| {
        ExecError::Provider(format!(
            "cannot open /dev/urandom for a rehearsal secret: {e}"
        ))
    })?;
    std::io::Read::read_exact(&mut f, &mut bytes)
        .map_err(|e| ExecError::Provider(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last lines a script printed, for the evidence.
struct Tail {
    bytes: Vec<u8>,
    redactor: runbook_exec::StreamRedactor,
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

#[allow(clippy::too_many_arguments)]
async fn run_script(
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

/// What a script recorded of how it ended: the `key=value` lines of `.runbook-outcome` in
/// its work directory (`status`, `phase`, `exit`, `step`, `check`, `reason`; see
/// docs/format.md), read after a phase failed. `None` when there is none, or when it is not
/// this run's (another phase's, or another exit code's: the script stopped before it knew
/// its work directory).
async fn outcome(
    sandbox: &dyn Sandbox,
    run: &ScriptRun,
    redactor: &Redactor,
) -> Result<Option<BTreeMap<String, String>>, ExecError> {
    let spec = CommandSpec {
        command: format!(
            "f={TARGET}/.runbook-outcome; if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then head -c 4096 -- \"$f\"; fi"
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
    let rest = tail.redactor.finish();
    tail.bytes.extend_from_slice(&rest);
    Ok(parse_outcome(&String::from_utf8_lossy(&tail.bytes), run))
}

/// The fields of an outcome file, if they are `run`'s: its script's phase, and its exit
/// code (or, for a script that was killed, still `running`).
fn parse_outcome(text: &str, run: &ScriptRun) -> Option<BTreeMap<String, String>> {
    let fields: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let script = run.command.split(' ').next().unwrap_or_default();
    let phase = script
        .trim_start_matches("scripts/")
        .trim_end_matches(".sh");
    let exit = fields.get("exit").and_then(|e| e.parse::<i32>().ok());
    let ours = fields.get("phase").is_some_and(|p| p == phase)
        && match run.exit_code {
            Some(code) => exit == Some(code),
            None => fields.get("status").is_some_and(|s| s == "running"),
        };
    ours.then_some(fields)
}

/// What failed, naming the phase, and from the script's outcome the step it stopped at,
/// the check that failed and why; and the values that differed from the sandbox's (the
/// likeliest cause when the sandbox run passed).
fn describe_failure(
    run: &ScriptRun,
    outcome: Option<&BTreeMap<String, String>>,
    values: &BTreeMap<String, String>,
    sandbox_values: &BTreeMap<String, String>,
) -> String {
    let code = run
        .exit_code
        .map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
    let mut text = format!(
        "phase `{}`: `{}` {code}, expected {}",
        run.phase, run.command, run.expected
    );
    let field = |key: &str| outcome.and_then(|o| o.get(key)).filter(|v| !v.is_empty());
    match outcome {
        None => text.push_str(", with no outcome recorded (see its output)"),
        Some(_) => {
            if let Some(step) = field("step") {
                text.push_str(&format!(", at step `{step}`"));
            }
            if let Some(check) = field("check") {
                text.push_str(&format!(", check `{check}`"));
            }
            if let Some(reason) = field("reason") {
                text.push_str(&format!(": {reason}"));
            }
        }
    }
    let differed: Vec<&str> = values
        .iter()
        .filter(|(k, v)| sandbox_values.get(*k).is_some_and(|s| s != *v))
        .map(|(k, _)| k.as_str())
        .collect();
    if !differed.is_empty() && run.phase != "deploy again" {
        text.push_str(&format!(
            " (values that differ from the sandbox's: {})",
            differed.join(", ")
        ));
    }
    text
}

/// Processes still running and files still in the work directory after the rollback.
async fn leftovers(sandbox: &dyn Sandbox, redactor: &Redactor) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::new();
    // A process on its way out (the `sleep` of a loop that was just killed) is not left
    // behind: give them two seconds.
    let mut pids = sandbox.processes().await;
    for _ in 0..20 {
        if pids.as_ref().is_none_or(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// The sandbox values a runbook's variables hold (after a run: the values it used), which a
/// rehearsal must differ from.
pub fn sandbox_values(runbook: &Runbook) -> BTreeMap<String, String> {
    runbook
        .variables
        .iter()
        .filter_map(|v| v.sandbox.clone().map(|s| (v.name.clone(), s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_core::Category;

    /// The failure is told from the outcome file, never from the script's English; an
    /// outcome that is not the run's (another phase's, another exit code's) is not used.
    #[test]
    fn a_failure_is_described_from_the_outcome() {
        let run = ScriptRun {
            phase: "verify again".into(),
            command: "scripts/verify.sh --no-preflight".into(),
            expected: "exit 0".into(),
            exit_code: Some(1),
            output: "FAILED at step decoy.\n    FAILED: decoy".into(),
            ..ScriptRun::default()
        };
        let text = "status=failed\nphase=verify\nexit=1\nstep=count\n\
                    check=the counter moves on\nreason=expected 2; saw 3\n";
        let outcome = parse_outcome(text, &run);
        let values = BTreeMap::from([("PORT".to_owned(), "8081".to_owned())]);
        let sandbox = BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]);
        assert_eq!(
            describe_failure(&run, outcome.as_ref(), &values, &sandbox),
            "phase `verify again`: `scripts/verify.sh --no-preflight` exited 1, expected exit 0, \
             at step `count`, check `the counter moves on`: expected 2; saw 3 \
             (values that differ from the sandbox's: PORT)"
        );
        assert!(parse_outcome(&text.replace("phase=verify", "phase=deploy"), &run).is_none());
        assert!(parse_outcome(&text.replace("exit=1", "exit=0"), &run).is_none());
        assert_eq!(
            describe_failure(&run, None, &values, &values),
            "phase `verify again`: `scripts/verify.sh --no-preflight` exited 1, expected exit 0, \
             with no outcome recorded (see its output)"
        );
        // A script killed at its timeout was still running.
        let killed = ScriptRun {
            exit_code: None,
            ..run
        };
        let running = parse_outcome("status=running\nphase=verify\n", &killed);
        assert!(running.is_some());
        assert_eq!(
            describe_failure(&killed, running.as_ref(), &sandbox, &sandbox),
            "phase `verify again`: `scripts/verify.sh --no-preflight` was killed, expected exit 0"
        );
    }

    #[test]
    fn derived_values_differ_and_keep_their_kind() {
        let (port, how) = derive("APP_PORT", Category::Endpoint, "8080");
        assert!(port.parse::<u16>().is_ok() && port != "8080", "{port}");
        assert_eq!(how, "another free port");
        assert_eq!(
            derive("DB_HOST", Category::Endpoint, "127.0.0.1").0,
            "127.0.0.1"
        );
        assert_eq!(
            derive("APP_DB", Category::Other, "notify").0,
            "notify_rehearsal"
        );
        assert_eq!(
            derive("APP_DIR", Category::Other, "app/data").0,
            "app/data-rehearsal"
        );
    }
}
