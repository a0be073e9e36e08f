//! What a failed attempt left behind, collected before anything is torn down: the ends
//! of the text files it created or changed in the sandbox (logs first), what the step's
//! `diagnose` commands print, and, picked from all of it, the lines that carry the cause.
//!
//! A server that refuses its configuration says why in its own log, and the command
//! that started it only says "could not start server": the agent must see the log line.
//! Everything is bounded (files, lines, bytes) and goes through the session's redactor.
//! [`Session::exec`] runs a command the same way, for a person or agent looking around.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runbook_core::Step;
use runbook_core::report::{DiagnoseOutput, FileTail};

use super::Session;
use super::capture::Capture;
use crate::Result;
use crate::events::NoObserver;

/// At most this many files are shown…
const MAX_FILES: usize = 8;
/// …each by at most this many of its last lines…
const MAX_LINES: usize = 40;
/// …taken from at most its last bytes.
const TAIL_BYTES: usize = 4096;
/// A `diagnose` command's output kept, in bytes.
const DIAGNOSE_BYTES: usize = 8192;
/// Cause lines picked.
const MAX_CAUSES: usize = 12;
/// A line longer than this is cut.
const MAX_LINE: usize = 1000;
/// How long collecting the files may take.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Lists the files changed since `$1` (epoch seconds) under the working directory, plus
/// the paths given after it (named in the command's output), and prints the end of at
/// most `MAX_FILES` text files, logs first, each after a line `\x1e<path>`. Run as the
/// sandbox's user, like a check.
const COLLECT: &str = r#"since=$1; shift
list=$( { for f in "$@"; do [ -f "$f" ] && printf '%s\n' "${f#./}"; done
  find . -xdev -type f -newermt "@$since" -printf '%T@ %P\n' 2>/dev/null | sort -rn | cut -d' ' -f2-
} | awk '!seen[$0]++' | head -n 200)
n=0
show() {
  [ -r "$1" ] && tail -c TAIL_BYTES -- "$1" | grep -Iq . || return 0
  n=$((n + 1)); printf '\036%s\n' "$1"; tail -c TAIL_BYTES -- "$1" | tail -n MAX_LINES; echo
}
while IFS= read -r f; do [ "$n" -lt MAX_FILES ] || break
  case $f in *.log|*.err|*.out|*log/*|*logs/*) show "$f" ;; esac; done <<< "$list"
while IFS= read -r f; do [ "$n" -lt MAX_FILES ] || break
  case $f in *.log|*.err|*.out|*log/*|*logs/*) ;; ?*) show "$f" ;; esac; done <<< "$list""#;

/// Words that mark a line as carrying the cause of a failure.
const CAUSE_WORDS: &[&str] = &[
    "error",
    "fatal",
    "panic",
    "refused",
    "denied",
    "failed",
    "failure",
    "cannot",
    "can't",
    "could not",
    "unable",
    "invalid",
    "not found",
    "no such",
    "unrecognized",
    "unknown",
    "timed out",
    "exception",
    "abort",
    "killed",
];

/// The evidence of one failed attempt.
#[derive(Debug, Default)]
pub(super) struct Evidence {
    pub causes: Vec<String>,
    pub files: Vec<FileTail>,
    pub diagnose: Vec<DiagnoseOutput>,
}

/// The time now, for `find -newermt @…` (seconds with milliseconds), a little early:
/// file times come from the kernel's coarse clock, which may lag a few milliseconds.
pub(super) fn now_epoch() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_millis(20));
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

impl Session {
    /// Collects the evidence of `step`'s failed attempt, which started at `since` (epoch
    /// seconds, see [`now_epoch`]) and printed `stdout` and `stderr` (already redacted).
    pub(super) async fn evidence(
        &mut self,
        step: &Step,
        since: &str,
        stdout: &str,
        stderr: &str,
    ) -> Result<Evidence> {
        self.log_line(&format!("--- evidence of the failure of {}\n", step.id));
        let mut command = COLLECT
            .replace("TAIL_BYTES", &TAIL_BYTES.to_string())
            .replace("MAX_LINES", &MAX_LINES.to_string())
            .replace("MAX_FILES", &MAX_FILES.to_string());
        command = format!("bash -c {} collect {since}", quote(&command));
        for path in named_paths(&format!("{stdout}\n{stderr}")) {
            command.push(' ');
            command.push_str(&quote(&path));
        }
        let (_, listing) = self
            .quiet(
                &step.id,
                command,
                COLLECT_TIMEOUT,
                MAX_FILES * (TAIL_BYTES + 256),
            )
            .await?;
        let files = parse_tails(&listing);
        let mut diagnose = Vec::new();
        for command in &step.diagnose {
            self.log_line(&format!("$ {command}\n"));
            let (exit_code, output) = self
                .quiet(
                    &step.id,
                    command.clone(),
                    self.options.check_timeout,
                    DIAGNOSE_BYTES,
                )
                .await?;
            diagnose.push(DiagnoseOutput {
                command: command.clone(),
                exit_code,
                output,
            });
        }
        // The files and the diagnose commands first: they say why; the command's own
        // output often only says that.
        let texts = files
            .iter()
            .flat_map(|f| f.lines.iter().map(String::as_str))
            .chain(diagnose.iter().flat_map(|d| d.output.lines()))
            .chain(stderr.lines())
            .chain(stdout.lines());
        Ok(Evidence {
            causes: causes(texts),
            files,
            diagnose,
        })
    }

    /// Runs `command` in the sandbox as its steps run (its user, cgroup, network and
    /// variables), for a person or an agent looking around a kept sandbox: recorded in
    /// the sandbox log, output redacted, at most 1 MiB of each stream kept. Changes no
    /// state of the session: no step, no report. Works with every provider (it runs
    /// through [`Sandbox::run`](crate::Sandbox::run)); [`Session::read_file`] reads a file.
    pub async fn exec(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<runbook_core::report::CommandOutput> {
        self.settle()?;
        self.log_line(&format!("\n=== exec\n$ {command}\n"));
        let spec = self.spec(command.to_owned(), None, timeout);
        let mut sink = Capture::new("exec", 1 << 20, &self.redactor, &mut self.log, &NoObserver);
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        Ok(sink.finish().into_output(&exit))
    }

    /// Runs `command` like a check, without events; returns its exit code and output
    /// (stdout, then stderr), at most `cap` bytes of each, redacted.
    async fn quiet(
        &mut self,
        step: &str,
        command: String,
        timeout: Duration,
        cap: usize,
    ) -> Result<(Option<i32>, String)> {
        let spec = self.spec(command, None, timeout);
        let mut sink = Capture::new(step, cap, &self.redactor, &mut self.log, &NoObserver);
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        let out = sink.finish();
        let mut text = out.stdout;
        if !out.stderr.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&out.stderr);
        }
        Ok((exit.code, text))
    }
}

/// `text` as one single-quoted shell word.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Relative paths a command's output names (`see logfile`, `/tmp/x` is not ours):
/// words made of path characters that hold a `/` or a file extension.
fn named_paths(output: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in output.split(|c: char| c.is_whitespace() || "\"'`,;:()[]<>".contains(c)) {
        let word = word.trim_end_matches('.');
        let pathlike = word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
        if pathlike
            && !word.starts_with('/')
            && !word.starts_with('-')
            && !word.contains("..")
            && (word.contains('/') || word.contains('.'))
            && word.len() < 200
            && !out.iter().any(|w| w == word)
        {
            out.push(word.to_owned());
        }
        if out.len() == 10 {
            break;
        }
    }
    out
}

/// The files in the collector's output.
fn parse_tails(listing: &str) -> Vec<FileTail> {
    let mut files: Vec<FileTail> = Vec::new();
    for line in listing.lines() {
        if let Some(path) = line.strip_prefix('\u{1e}') {
            files.push(FileTail {
                path: path.to_owned(),
                lines: Vec::new(),
            });
        } else if let Some(f) = files.last_mut() {
            f.lines.push(clip(line));
        }
    }
    for f in &mut files {
        // The blank line that ends each file.
        if f.lines.last().is_some_and(String::is_empty) {
            f.lines.pop();
        }
    }
    files
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(MAX_LINE) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

/// The distinct lines of `text` that carry a cause (an error, a refusal, a fatal
/// message: whole words), in order, at most 12: what the engine records of a failed
/// attempt, and what the rehearsal shows of a failed script.
pub fn cause_lines(text: &str) -> Vec<String> {
    causes(text.lines())
}

/// The distinct lines among `texts` that carry a cause, in order, at most `MAX_CAUSES`.
fn causes<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in texts {
        // A commented-out setting (`#exit_on_error = off`) is not what happened.
        if line.trim_start().starts_with(['#', ';']) {
            continue;
        }
        let lower = line.to_lowercase();
        let hit = CAUSE_WORDS.iter().any(|w| {
            lower.match_indices(w).any(|(at, _)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + w.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphabetic)
            })
        });
        let line = clip(line.trim());
        if hit && !out.contains(&line) {
            out.push(line);
            if out.len() == MAX_CAUSES {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_lines_are_whole_words_and_come_once() {
        let text = "starting\nFATAL:  unrecognized configuration parameter \"wal_keep_segments\"\nerrors=0\nterror\n  psql: error: connection refused\nFATAL:  unrecognized configuration parameter \"wal_keep_segments\"\n";
        assert_eq!(
            causes(text.lines()),
            [
                "FATAL:  unrecognized configuration parameter \"wal_keep_segments\"",
                "psql: error: connection refused"
            ]
        );
    }

    #[test]
    fn paths_named_in_output_are_relative_words_with_a_slash_or_an_extension() {
        assert_eq!(
            named_paths(
                "see logfile and data/log/server.log, not /etc/passwd or ../up.txt; app.conf."
            ),
            ["data/log/server.log", "app.conf"]
        );
    }

    #[test]
    fn the_collector_output_becomes_file_tails() {
        let listing = "\u{1e}server.log\nline 1\nFATAL: no\n\n\u{1e}a/b.txt\nx\n\n";
        let files = parse_tails(listing);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "server.log");
        assert_eq!(files[0].lines, ["line 1", "FATAL: no"]);
        assert_eq!(files[1].lines, ["x"]);
    }
}
