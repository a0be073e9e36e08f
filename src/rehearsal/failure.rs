//! A failed phase, told from the outcome file its script wrote (never from the English it
//! printed), with the values that differed from the sandbox's.

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::report::ScriptRun;
use runbook_exec::{CommandSpec, ExecError, Redactor, Sandbox};

use super::TARGET;
use super::run::Tail;

/// What a script recorded of how it ended: the `key=value` lines of `.runbook-outcome` in
/// its work directory (`status`, `phase`, `exit`, `step`, `check`, `reason`; see
/// docs/format.md), read after a phase failed. `None` when there is none, or when it is not
/// this run's (another phase's, or another exit code's: the script stopped before it knew
/// its work directory).
pub(super) async fn outcome(
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
pub(super) fn describe_failure(
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

/// The line of a failed script's `output` that says why: the first cause line
/// ([`runbook_exec::cause_lines`]) that is not one of the scripts' own summary lines
/// (`FAILED at step …`, `    FAILED: …`, `N step(s) failed verification`: the failure
/// already says what those say); empty when there is none.
pub(super) fn cause(output: &str) -> String {
    runbook_exec::cause_lines(output)
        .into_iter()
        .find(|l| !l.starts_with("FAILED") && !l.ends_with("step(s) failed verification"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            cause(
                "waiting for server\n2026-01-01 FATAL:  invalid value for parameter\nFAILED at step start.\n    FAILED: exit 1"
            ),
            "2026-01-01 FATAL:  invalid value for parameter"
        );
        assert_eq!(cause("FAILED at step start.\n    FAILED: exit 1"), "");
        assert_eq!(
            describe_failure(&killed, running.as_ref(), &sandbox, &sandbox),
            "phase `verify again`: `scripts/verify.sh --no-preflight` was killed, expected exit 0"
        );
    }
}
