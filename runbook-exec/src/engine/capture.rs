//! The engine's output sink: redacts, caps what it keeps in memory, writes the output
//! to the sandbox log, and emits output lines as events.
//!
//! Redaction runs twice, in series: first on each stream's own bytes, before anything is
//! recorded (so a secret split across writes of one stream is seen whole, whatever the
//! other stream printed in between), then over what that leaves of both streams merged in
//! the order it was released, for the log (so a secret printed half on stdout and half
//! on stderr is seen whole there too).

use super::log::{CommandLog, SandboxLog};
use crate::events::{Event, Observer};
use crate::redact::{Redactor, StreamRedactor};
use crate::{OutputSink, Stream};

/// A line longer than this is emitted in pieces, so one huge line cannot grow memory.
const MAX_LINE: usize = 16 * 1024;

struct StreamState {
    redactor: StreamRedactor,
    kept: Vec<u8>,
    dropped: u64,
    line: Vec<u8>,
}

pub(crate) struct Capture<'a> {
    step: &'a str,
    cap: usize,
    log: &'a mut SandboxLog,
    command_log: CommandLog,
    merged: StreamRedactor,
    observer: &'a dyn Observer,
    lines: bool,
    streams: [StreamState; 2],
}

/// What a capture kept of one command's output.
pub(crate) struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
}

impl Captured {
    /// What the report keeps of a command: how it ended and what this capture kept.
    pub fn into_output(self, exit: &crate::Exit) -> runbook_core::report::CommandOutput {
        runbook_core::report::CommandOutput {
            exit_code: exit.code,
            timed_out: exit.timed_out,
            stdout: self.stdout,
            stderr: self.stderr,
            stdout_dropped: self.stdout_dropped,
            stderr_dropped: self.stderr_dropped,
            duration_ms: super::millis(exit.duration),
        }
    }
}

impl<'a> Capture<'a> {
    pub fn new(
        step: &'a str,
        cap: usize,
        redactor: &Redactor,
        log: &'a mut SandboxLog,
        observer: &'a dyn Observer,
    ) -> Self {
        let state = || StreamState {
            redactor: StreamRedactor::new(redactor.clone()),
            kept: Vec::new(),
            dropped: 0,
            line: Vec::new(),
        };
        Capture {
            step,
            cap,
            log,
            command_log: CommandLog::new(),
            merged: StreamRedactor::new(redactor.clone()),
            lines: observer.wants_output(),
            observer,
            streams: [state(), state()],
        }
    }

    fn accept(&mut self, stream: Stream, bytes: &[u8]) {
        let idx = stream as usize;
        let s = &mut self.streams[idx];
        let room = self.cap.saturating_sub(s.kept.len());
        let take = room.min(bytes.len());
        s.kept.extend_from_slice(&bytes[..take]);
        s.dropped += (bytes.len() - take) as u64;
        if !self.lines {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let s = &mut self.streams[idx];
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    s.line.extend_from_slice(&rest[..nl]);
                    rest = &rest[nl + 1..];
                    self.emit_line(stream);
                }
                None => {
                    s.line.extend_from_slice(rest);
                    rest = &[];
                    if s.line.len() >= MAX_LINE {
                        self.emit_line(stream);
                    }
                }
            }
        }
    }

    fn emit_line(&mut self, stream: Stream) {
        let line = std::mem::take(&mut self.streams[stream as usize].line);
        self.observer.event(&Event::Output {
            step: self.step.to_owned(),
            stream,
            line: String::from_utf8_lossy(&line).into_owned(),
        });
    }

    pub fn finish(mut self) -> Captured {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tail = self.streams[stream as usize].redactor.finish();
            self.record(stream, &tail);
            if self.lines && !self.streams[stream as usize].line.is_empty() {
                self.emit_line(stream);
            }
        }
        let tail = self.merged.finish();
        self.command_log.write(self.log, &tail);
        self.command_log.finish(self.log);
        self.log.flush();
        let [out, err] = self.streams;
        Captured {
            stdout: String::from_utf8_lossy(&out.kept).into_owned(),
            stderr: String::from_utf8_lossy(&err.kept).into_owned(),
            stdout_dropped: out.dropped,
            stderr_dropped: err.dropped,
        }
    }
}

impl Capture<'_> {
    /// Records what one stream's redaction released: in the report's copy, as events,
    /// and (after the merged pass) in the log.
    fn record(&mut self, stream: Stream, clean: &[u8]) {
        let for_log = self.merged.push(clean);
        self.command_log.write(self.log, &for_log);
        self.accept(stream, clean);
    }
}

impl OutputSink for Capture<'_> {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        let clean = self.streams[stream as usize].redactor.push(bytes);
        self.record(stream, &clean);
    }
}

#[cfg(all(test, feature = "local"))]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::redact::MIN_PIECE;

    /// Keeps every output line it is told of.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Observer for Lines {
        fn event(&self, event: &Event) {
            if let Event::Output { line, .. } = event {
                self.0.lock().unwrap().push(line.clone());
            }
        }
    }

    /// One write of the generated command: a piece of a secret or other text, to stdout
    /// or stderr, after a pause (in milliseconds, 0 for none).
    #[derive(Debug, Clone)]
    struct Write {
        stderr: bool,
        text: String,
        pause_ms: u8,
    }

    /// Runs `writes` as a real bash process through a capture; returns every record:
    /// the report's stdout and stderr, the log (full and excerpt) and the event lines.
    fn records(writes: &[Write], secrets: &[String]) -> Vec<(&'static str, String)> {
        let mut script = String::new();
        for w in writes {
            if w.pause_ms > 0 {
                script.push_str(&format!("sleep 0.00{}; ", w.pause_ms));
            }
            script.push_str(&format!(
                "printf '%s' '{}'{}; ",
                w.text,
                if w.stderr { " >&2" } else { "" }
            ));
        }
        let control = tempfile::tempdir().unwrap();
        let redactor = Redactor::new(secrets);
        let lines = Lines::default();
        let mut log = SandboxLog::open(control.path(), "prop").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let captured = runtime.block_on(async {
            let mut capture = Capture::new("s", 1 << 20, &redactor, &mut log, &lines);
            let mut command = tokio::process::Command::new("bash");
            command.arg("-c").arg(&script);
            crate::local::process::run(
                command,
                None,
                Duration::from_secs(30),
                None,
                &control.path().join("running"),
                &mut capture,
            )
            .await
            .unwrap();
            capture.finish()
        });
        let excerpt = log.read_excerpt(control.path()).unwrap();
        let full = std::fs::read_to_string(crate::log_path(control.path())).unwrap();
        let events = lines.0.into_inner().unwrap().join("\n");
        vec![
            ("stdout", captured.stdout),
            ("stderr", captured.stderr),
            ("log", full),
            ("excerpt", excerpt),
            ("events", events),
        ]
    }

    /// Secrets, each cut into 2 to 4 pieces, the pieces written in order to either
    /// stream with other text and pauses in between.
    fn story() -> impl Strategy<Value = (Vec<String>, Vec<Write>)> {
        let secret = "[A-Za-z0-9+/=_.-]{8,32}";
        (
            proptest::collection::vec(secret, 1..3),
            proptest::collection::vec((any::<bool>(), "[a-z :\n]{0,10}", 0u8..3), 16),
            proptest::collection::vec(0usize..32, 3),
        )
            .prop_map(|(secrets, noise, cuts)| {
                let mut writes = Vec::new();
                let mut noise = noise.into_iter().cycle();
                for s in &secrets {
                    let mut at: Vec<usize> = cuts.iter().map(|c| c % s.len()).collect();
                    at.push(s.len());
                    at.sort_unstable();
                    at.dedup();
                    let mut last = 0;
                    for end in at {
                        let (stderr, text, pause_ms) = noise.next().unwrap();
                        if !text.is_empty() {
                            writes.push(Write {
                                stderr: !stderr,
                                text,
                                pause_ms,
                            });
                        }
                        writes.push(Write {
                            stderr,
                            text: s[last..end].to_owned(),
                            pause_ms,
                        });
                        last = end;
                    }
                }
                (secrets, writes)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever the interleaving of writes and streams, no 8 bytes of a secret
        /// reach any record.
        #[test]
        fn no_piece_of_a_secret_reaches_any_record((secrets, writes) in story()) {
            for (record, text) in records(&writes, &secrets) {
                for s in &secrets {
                    for w in s.as_bytes().windows(MIN_PIECE) {
                        let w = std::str::from_utf8(w).unwrap();
                        prop_assert!(!text.contains(w), "{w:?} of a secret in the {record}: {text:?}");
                    }
                }
            }
        }
    }
}
