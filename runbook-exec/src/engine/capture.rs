//! The engine's output sink: redacts, caps what it keeps in memory, writes the output
//! to the sandbox log, and emits output lines as events.
//!
//! Two redactions run side by side: one per stream, for what the report keeps of
//! stdout and stderr, and one over both streams merged in the order they arrived, for
//! the log, where a secret printed half on stdout and half on stderr becomes contiguous.

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
        let tail = self.merged.finish();
        self.command_log.write(self.log, &tail);
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tail = self.streams[stream as usize].redactor.finish();
            self.accept(stream, &tail);
            if self.lines && !self.streams[stream as usize].line.is_empty() {
                self.emit_line(stream);
            }
        }
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

impl OutputSink for Capture<'_> {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        let for_log = self.merged.push(bytes);
        self.command_log.write(self.log, &for_log);
        let clean = self.streams[stream as usize].redactor.push(bytes);
        self.accept(stream, &clean);
    }
}
