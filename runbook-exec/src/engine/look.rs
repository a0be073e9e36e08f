//! A look inside the sandbox for the agent debugging it: a file of the working directory,
//! read through the provider (so every provider can), bounded and redacted.
//! [`Session::exec`] is the other half: a command recorded in the log, not a step.

use serde::Serialize;

use super::Session;
use crate::{ExecError, OutputSink, Result, Stream};

/// The most of a file [`Session::read_file`] returns: its last 64 KiB.
pub const READ_LIMIT: usize = 64 * 1024;

/// The end of a file of the sandbox's working directory ([`Session::read_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FileExcerpt {
    /// The path read, relative to the working directory of the steps.
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Its text: all of it, or (when `truncated`) what follows the first line break of
    /// its last 64 KiB; secrets masked, invalid UTF-8 replaced.
    pub text: String,
    /// Whether the beginning of the file is left out.
    pub truncated: bool,
}

/// Prints the size of `$1`, a line break, then its last `LIMIT` bytes; exit 3 when it is
/// no readable regular file.
const READ: &str = r#"[ -f "$1" ] && [ -r "$1" ] || exit 3
wc -c < "$1" && tail -c LIMIT -- "$1""#;

/// Keeps a bounded amount of each stream, unredacted (the session redacts the result).
#[derive(Default)]
struct Bytes {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl OutputSink for Bytes {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        // The size line and the tail: a little over the limit, never more.
        let (buf, cap) = match stream {
            Stream::Stdout => (&mut self.stdout, READ_LIMIT + 64),
            Stream::Stderr => (&mut self.stderr, 4096),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl Session {
    /// Reads the end of the file at `path`, relative to the working directory of the steps
    /// (a log a failed step wrote, a config file it rendered), through the provider, as
    /// the sandbox's user: at most its last 64 KiB ([`READ_LIMIT`]), from a line start,
    /// with the session's secrets masked. Recorded in the sandbox log (the read, not the
    /// text); changes nothing else. An absolute path or one with `..` is refused, and so
    /// is a path that is no readable regular file.
    pub async fn read_file(&mut self, path: &str) -> Result<FileExcerpt> {
        self.settle()?;
        let relative = std::path::Path::new(path);
        if path.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ExecError::BadPath {
                path: path.to_owned(),
                why: "not a path inside the sandbox's working directory: give it relative, without `..`"
                    .into(),
            });
        }
        let script = READ.replace("LIMIT", &READ_LIMIT.to_string());
        let command = format!(
            "bash -c {} read {}",
            super::diagnose::quote(&script),
            super::diagnose::quote(path)
        );
        let spec = self.spec(command, None, self.options.check_timeout);
        let mut sink = Bytes::default();
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        if exit.code == Some(3) {
            return Err(ExecError::BadPath {
                path: path.to_owned(),
                why: "no readable file by that name in the sandbox's working directory".into(),
            });
        }
        let stdout = std::mem::take(&mut sink.stdout);
        let newline = stdout.iter().position(|b| *b == b'\n');
        let size = newline
            .and_then(|n| std::str::from_utf8(&stdout[..n]).ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        let (Some(size), Some(newline), Some(0)) = (size, newline, exit.code) else {
            return Err(ExecError::Provider(format!(
                "could not read `{path}` in sandbox {}: {}",
                self.sandbox.id(),
                self.redactor
                    .redact(String::from_utf8_lossy(&sink.stderr).trim())
            )));
        };
        let mut tail = &stdout[newline + 1..];
        let truncated = size > tail.len() as u64;
        if truncated {
            // The cut may split a line, and a secret in it, which the redactor would then
            // not recognise: the excerpt starts after the first line break.
            let start = tail.iter().position(|b| *b == b'\n').map_or(0, |n| n + 1);
            tail = &tail[start..];
        }
        let text = self.redactor.redact(&String::from_utf8_lossy(tail));
        self.log_line(&format!(
            "\n=== read {path}: {size} bytes{}\n",
            if truncated { ", its end shown" } else { "" }
        ));
        Ok(FileExcerpt {
            path: path.to_owned(),
            size,
            text,
            truncated,
        })
    }
}
