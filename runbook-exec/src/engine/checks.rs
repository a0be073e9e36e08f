//! Running a check with its retry policy, and judging what it saw.

use std::time::Instant;

use regex::Regex;
use runbook_core::report::CheckRecord;
use runbook_core::{Check, Expect, Probe, Step, TextMatch};

use super::capture::Capture;
use super::{Session, millis};
use crate::events::{Event, NoObserver};
use crate::{ExecError, Result};

/// Output kept per check attempt: checks print little, and what they print is compared.
const CHECK_OUTPUT_CAP: usize = 256 * 1024;

/// The longest "saw …" text in a report.
const MAX_ACTUAL: usize = 300;

impl Session {
    pub(super) async fn run_check(&mut self, step: &Step, check: &Check) -> Result<CheckRecord> {
        let started = Instant::now();
        // A deadline past what the clock can represent is no deadline (lint refuses them anyway).
        let deadline = check
            .retry
            .within
            .and_then(|w| started.checked_add(w.as_duration()));
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Typed probes and commands alike, as the package's scripts limit an attempt.
            let limit = check
                .retry
                .attempt_limit(started.elapsed(), self.options.check_timeout);
            let verdict = match &check.probe {
                Probe::Command(command) => {
                    let spec = self.spec(command.clone(), step.workdir.clone(), limit);
                    let mut sink = Capture::new(
                        &step.id,
                        CHECK_OUTPUT_CAP,
                        &self.redactor,
                        &mut self.log,
                        &NoObserver,
                    );
                    let exit = self.sandbox.run(&spec, &mut sink).await?;
                    let out = sink.finish();
                    judge(
                        &check.expect.filled(&self.values),
                        exit.code,
                        exit.timed_out,
                        &out.stdout,
                        &out.stderr,
                    )
                }
                typed @ (Probe::File(_)
                | Probe::Tcp(_)
                | Probe::Http(_)
                | Probe::Process(_)
                | Probe::Kube(_)) => {
                    let probe = typed.filled(&self.values);
                    let observed =
                        match tokio::time::timeout(limit, self.sandbox.probe(&probe)).await {
                            Ok(result) => result,
                            Err(_) => Ok(crate::Observation {
                                satisfied: false,
                                actual: format!(
                                    "no answer within {}",
                                    runbook_core::HumanDuration(limit)
                                ),
                            }),
                        };
                    match observed {
                        Ok(obs) if obs.satisfied => Ok(()),
                        Ok(obs) => Err(obs.actual),
                        // Unsupported is final: retrying cannot make it pass.
                        Err(e @ ExecError::Unsupported { .. }) => {
                            return Ok(self.check_record(
                                check,
                                false,
                                attempts,
                                e.to_string(),
                                started,
                            ));
                        }
                        Err(e) => Err(e.chain()),
                    }
                }
            };
            let actual = match verdict {
                Ok(()) => {
                    self.log_line(&format!(
                        "--- check `{}` passed (attempt {attempts})\n",
                        check.label()
                    ));
                    return Ok(self.check_record(
                        check,
                        true,
                        attempts,
                        "as expected".into(),
                        started,
                    ));
                }
                Err(actual) => actual,
            };
            let interval = check.retry.interval();
            let retry = deadline
                .is_some_and(|d| Instant::now().checked_add(interval).is_some_and(|t| t < d));
            if !retry {
                let actual = self.redactor.redact(&actual);
                self.log_line(&format!(
                    "--- check `{}` failed after {attempts} attempt(s): expected {}; saw {actual}\n",
                    check.label(),
                    check.filled(&self.values).expectation()
                ));
                return Ok(self.check_record(check, false, attempts, actual, started));
            }
            self.options.observer.event(&Event::CheckRetrying {
                step: step.id.clone(),
                check: self.redactor.redact(&check.label()),
                attempt: attempts,
                actual: self.redactor.redact(&actual),
            });
            tokio::time::sleep(interval).await;
        }
    }

    fn check_record(
        &self,
        check: &Check,
        passed: bool,
        attempts: u32,
        actual: String,
        started: Instant,
    ) -> CheckRecord {
        CheckRecord {
            name: self.redactor.redact(&check.label()),
            command: check.command_text().map(str::to_owned),
            passed,
            attempts,
            expected: self
                .redactor
                .redact(&check.filled(&self.values).expectation()),
            actual,
            duration_ms: millis(started.elapsed()),
        }
    }
}

/// Compares an observation with an expectation; on mismatch, says what was seen.
pub(crate) fn judge(
    expect: &Expect,
    code: Option<i32>,
    timed_out: bool,
    stdout: &str,
    stderr: &str,
) -> Result<(), String> {
    if timed_out {
        return Err("the check command timed out".into());
    }
    let want = expect.expected_exit_code();
    if code != Some(want) {
        let mut seen = match code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".into(),
        };
        let detail = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        if !detail.trim().is_empty() {
            seen.push_str(&format!(" ({})", shorten(detail.trim())));
        }
        return Err(seen);
    }
    for (name, cond, text) in [
        ("stdout", &expect.stdout, stdout),
        ("stderr", &expect.stderr, stderr),
    ] {
        let Some(cond) = cond else { continue };
        let text = text.trim_end();
        let ok = match cond {
            TextMatch::Equals(want) => text == want.trim_end(),
            TextMatch::Contains(want) => text.contains(want.as_str()),
            TextMatch::Matches(pattern) => Regex::new(pattern)
                .map_err(|e| format!("invalid regex: {e}"))?
                .is_match(text),
        };
        if !ok {
            return Err(format!("{name} {:?}", shorten(text)));
        }
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    if text.len() <= MAX_ACTUAL {
        return text.to_owned();
    }
    let mut cut = MAX_ACTUAL;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(stdout: Option<TextMatch>, code: Option<i32>) -> Expect {
        Expect {
            exit_code: code,
            stdout,
            stderr: None,
        }
    }

    #[test]
    fn judges_exit_codes_and_text() {
        assert!(judge(&expect(None, None), Some(0), false, "", "").is_ok());
        assert_eq!(
            judge(&expect(None, None), Some(1), false, "", "boom\n").unwrap_err(),
            "exit code 1 (boom)"
        );
        assert!(judge(&expect(None, Some(2)), Some(2), false, "", "").is_ok());
        let eq = expect(Some(TextMatch::Equals("Running".into())), None);
        assert!(judge(&eq, Some(0), false, "Running\n", "").is_ok());
        assert_eq!(
            judge(&eq, Some(0), false, "Pending\n", "").unwrap_err(),
            "stdout \"Pending\""
        );
        let re = expect(Some(TextMatch::Matches("^1/1$".into())), None);
        assert!(judge(&re, Some(0), false, "1/1", "").is_ok());
        assert!(judge(&expect(None, None), Some(0), true, "", "").is_err());
    }
}
