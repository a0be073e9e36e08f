//! One bound on the size of a request, with an answer when it is exceeded.
//!
//! rmcp's stdio transport drops a line longer than its own cap without a word, so the
//! client waits forever for the answer. Lines pass through [`forward`] before rmcp reads
//! them: one longer than [`MAX_REQUEST`] is not buffered but replaced by a small request of
//! [`TOO_LARGE`], with the client's id, which the server answers with a JSON-RPC error.
//! The answer thus goes out through rmcp's own writer, never interleaved with another.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest request (one JSON-RPC line) the server reads.
pub(super) const MAX_REQUEST: usize = 10 * 1024 * 1024;

/// The method that stands in for a request longer than [`MAX_REQUEST`].
pub(super) const TOO_LARGE: &str = "runbook/requestTooLarge";

/// Copies `input` to `output` line by line, each oversized line replaced (see the module).
/// Returns at the end of `input`, or when `output` is closed.
pub(super) async fn forward<R, W>(input: R, mut output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let mut size = 0usize;
    // Set once the line is too long: from then on its bytes are only scanned for its id.
    let mut oversized: Option<IdScan> = None;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            // An unterminated last line is no message (rmcp drops it too).
            return Ok(());
        }
        let newline = chunk.iter().position(|b| *b == b'\n');
        let part = &chunk[..newline.map_or(chunk.len(), |i| i + 1)];
        let taken = part.len();
        size += taken;
        match &mut oversized {
            Some(scan) => scan.feed(part),
            None if size > MAX_REQUEST => {
                let mut scan = IdScan::default();
                scan.feed(&line);
                scan.feed(part);
                line = Vec::new();
                oversized = Some(scan);
            }
            None => line.extend_from_slice(part),
        }
        input.consume(taken);
        if newline.is_some() {
            match oversized.take() {
                None => output.write_all(&line).await?,
                Some(scan) => output.write_all(&stand_in(scan.found, size)).await?,
            }
            output.flush().await?;
            line.clear();
            size = 0;
        }
    }
}

/// The line rmcp reads instead of an oversized request: a [`TOO_LARGE`] request with its
/// id, or, without one, a message of the wrong shape, which rmcp answers with an
/// `Invalid request` error whose id is null (as JSON-RPC says when the id is unknown).
fn stand_in(id: Option<Value>, size: usize) -> Vec<u8> {
    let message = match id {
        Some(id) => serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": TOO_LARGE,
            "params": { "bytes": size },
        }),
        None => serde_json::json!({ TOO_LARGE: size }),
    };
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// The longest id kept (ids are numbers or short strings).
const MAX_ID: usize = 256;

/// Finds the top-level `"id"` of a JSON object streamed through it, keeping nothing else.
#[derive(Default)]
struct IdScan {
    /// How deep in objects and arrays the scan is (1: in the message itself).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// At depth 1, the next string is a key.
    expect_key: bool,
    /// The first bytes of the key being read: enough to tell `id` from others.
    key: Vec<u8>,
    /// The last key was `id`; its value starts after the `:`.
    id_next: bool,
    /// The `id` value's text, while it is read.
    value: Option<Vec<u8>>,
    /// The id, once read.
    found: Option<Value>,
}

impl IdScan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.found.is_some() {
                return;
            }
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if let Some(value) = &mut self.value {
            if value.len() == MAX_ID {
                self.value = None;
            } else {
                value.push(b);
            }
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.depth == 1 && self.expect_key {
                    self.expect_key = false;
                    self.id_next = self.key == b"id";
                }
            } else if self.depth == 1 && self.expect_key && self.key.len() < 3 {
                self.key.push(b);
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.key.clear();
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.expect_key = b == b'{';
                }
            }
            b':' if self.depth == 1 && self.id_next => {
                self.id_next = false;
                self.value = Some(Vec::new());
            }
            b',' if self.depth == 1 => {
                self.end_value();
                self.expect_key = true;
            }
            b'}' | b']' => {
                if self.depth == 1 {
                    self.end_value();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// The `id` value ends (at the `,` or `}` just pushed): a number or a string is kept.
    fn end_value(&mut self) {
        if let Some(mut text) = self.value.take() {
            text.pop();
            if let Ok(id @ (Value::Number(_) | Value::String(_))) = serde_json::from_slice(&text) {
                self.found = Some(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(text: &str) -> Option<Value> {
        let mut scan = IdScan::default();
        // Fed in small pieces, as lines arrive.
        for piece in text.as_bytes().chunks(3) {
            scan.feed(piece);
        }
        scan.found
    }

    #[test]
    fn the_top_level_id_is_found_wherever_it_is() {
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":7,"method":"x","params":{"id":9}}"#),
            Some(Value::from(7))
        );
        assert_eq!(
            id_of(r#"{"params":{"id":9,"s":"\"id\":3, }"},"idx":4, "id" : "a\"b" }"#),
            Some(Value::from("a\"b"))
        );
        assert_eq!(id_of(r#"{"method":"x","params":[{"id":1}]}"#), None);
        assert_eq!(id_of(r#"[{"id":1}]"#), None);
        assert_eq!(id_of(r#"{"id":{"a":1}}"#), None);
    }
}
