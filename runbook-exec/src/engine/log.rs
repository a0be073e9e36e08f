//! The sandbox log, in two forms: the complete log (`control/sandbox.log`, which lives
//! as long as the sandbox) and the excerpt that ships in the package
//! (`control/sandbox-log.txt`), where each command's output keeps its first and last
//! MiB, with its full size and SHA-256, so that no amount of output can grow the
//! package, or the memory of whoever writes it, without bound.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{ExecError, Result};

/// The complete log.
pub(crate) const FULL_LOG: &str = "sandbox.log";
/// The excerpt that ships.
const EXCERPT_LOG: &str = "sandbox-log.txt";
/// Bytes of each command's output kept from its start, and from its end.
pub(crate) const HEAD: usize = 1024 * 1024;
/// See [`HEAD`].
pub(crate) const TAIL: usize = 1024 * 1024;

/// Both logs of one sandbox, appended to.
pub(crate) struct SandboxLog {
    full: BufWriter<File>,
    excerpt: BufWriter<File>,
    full_path: PathBuf,
    sandbox: String,
}

fn append(path: &Path) -> Result<BufWriter<File>> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .map(BufWriter::new)
        .map_err(ExecError::io("open the sandbox log", path))
}

impl SandboxLog {
    pub fn open(control: &Path, sandbox: &str) -> Result<SandboxLog> {
        Ok(SandboxLog {
            full: append(&control.join(FULL_LOG))?,
            excerpt: append(&control.join(EXCERPT_LOG))?,
            full_path: control.join(FULL_LOG),
            sandbox: sandbox.to_owned(),
        })
    }

    /// Writes text the executor produced (already redacted) to both logs. The log is best
    /// effort: a full disk must not fail the step under test.
    pub fn text(&mut self, text: &str) {
        let _ = self.full.write_all(text.as_bytes());
        let _ = self.excerpt.write_all(text.as_bytes());
    }

    pub fn flush(&mut self) {
        let _ = self.full.flush();
        let _ = self.excerpt.flush();
    }

    /// The excerpt, as it stands.
    pub fn read_excerpt(&mut self, control: &Path) -> Result<String> {
        self.flush();
        let path = control.join(EXCERPT_LOG);
        std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(ExecError::io("read the sandbox log", &path))
    }
}

/// One command's output on its way into the logs.
pub(crate) struct CommandLog {
    head_left: usize,
    tail: Tail,
    total: u64,
    hash: Sha256,
}

impl CommandLog {
    pub fn new() -> CommandLog {
        CommandLog {
            head_left: HEAD,
            tail: Tail::default(),
            total: 0,
            hash: Sha256::new(),
        }
    }

    /// Output (redacted), in the order it arrived.
    pub fn write(&mut self, log: &mut SandboxLog, bytes: &[u8]) {
        let _ = log.full.write_all(bytes);
        self.total += bytes.len() as u64;
        self.hash.update(bytes);
        let head = self.head_left.min(bytes.len());
        let _ = log.excerpt.write_all(&bytes[..head]);
        self.head_left -= head;
        self.tail.push(&bytes[head..]);
    }

    /// Ends the command: the excerpt gets the end of its output and, when some was left
    /// out, what was left out and how to check the whole.
    pub fn finish(self, log: &mut SandboxLog) {
        let tail = self.tail.contents();
        let shown = (HEAD - self.head_left) as u64 + tail.len() as u64;
        if shown < self.total {
            let _ = write!(
                log.excerpt,
                "\n[... {} bytes of output not shown here ...]\n",
                self.total - shown
            );
        }
        let _ = log.excerpt.write_all(&tail);
        if shown < self.total {
            let hex: String = self
                .hash
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let _ = write!(
                log.excerpt,
                "\n[this command printed {} bytes in all, sha256 {hex}; the complete log is {} while sandbox {} exists]\n",
                self.total,
                log.full_path.display(),
                log.sandbox
            );
        }
    }
}

/// The last [`TAIL`] bytes of a stream, in a ring.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    /// Where the oldest byte is, once the ring is full.
    start: usize,
}

impl Tail {
    fn push(&mut self, mut bytes: &[u8]) {
        if bytes.len() >= TAIL {
            bytes = &bytes[bytes.len() - TAIL..];
            self.buf.clear();
            self.start = 0;
        }
        let room = TAIL - self.buf.len();
        let fill = room.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..fill]);
        for chunk in bytes[fill..].chunks(TAIL) {
            let first = (TAIL - self.start).min(chunk.len());
            self.buf[self.start..self.start + first].copy_from_slice(&chunk[..first]);
            self.buf[..chunk.len() - first].copy_from_slice(&chunk[first..]);
            self.start = (self.start + chunk.len()) % TAIL;
        }
    }

    fn contents(&self) -> Vec<u8> {
        let mut out = self.buf[self.start..].to_vec();
        out.extend_from_slice(&self.buf[..self.start]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn the_tail_is_the_last_bytes_whatever_the_chunking(
            sizes in proptest::collection::vec(0usize..(3 * TAIL / 2), 1..6),
        ) {
            let mut tail = Tail::default();
            let mut all = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let chunk: Vec<u8> = (0..*n).map(|j| ((i * 7 + j) % 251) as u8).collect();
                tail.push(&chunk);
                all.extend_from_slice(&chunk);
            }
            let want = &all[all.len().saturating_sub(TAIL)..];
            proptest::prop_assert!(tail.contents() == want);
        }
    }
}
