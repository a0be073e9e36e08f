//! Secret redaction: every secret value becomes `***`, and so does every piece of one
//! of [`MIN_PIECE`] bytes or more (its beginning, its end or its middle), also when it
//! arrives split across chunks.
//!
//! A tool may cut a value (a process name keeps 15 characters) or a stream may be
//! interrupted in the middle of one: pieces are what leaks then. A secret shorter than
//! [`MIN_PIECE`] bytes is hidden only whole (a shorter piece would hide ordinary words).
//! Values are recognised as written: an encoding of one (base64, URL escapes) is not.

/// The replacement for a secret value.
pub const MASK: &str = "***";

/// How long a piece of a secret must be to be hidden on its own.
pub const MIN_PIECE: usize = 8;

/// Bits in the filter of the secrets' pieces (see [`Redactor::may_start_piece`]).
const FILTER_BITS: usize = 1 << 16;

/// The set of secret values to hide.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every value, longest first (so a secret that contains another is hidden whole).
    secrets: Vec<Vec<u8>>,
    /// A bit per hash of each [`MIN_PIECE`]-byte window of the secrets at least that
    /// long: a position whose window misses it starts no piece (one multiply per byte).
    filter: Vec<u64>,
    /// The length of the longest secret.
    longest: usize,
}

fn window_hash(window: &[u8]) -> usize {
    let mut w = [0u8; MIN_PIECE];
    w.copy_from_slice(&window[..MIN_PIECE]);
    (u64::from_le_bytes(w).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize
}

/// How many bytes `a` and `b` share at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Redactor {
    /// A redactor for these values (empty values are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .map(|s| s.as_ref().as_bytes().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut filter = vec![0u64; FILTER_BITS / 64];
        for s in secrets.iter().filter(|s| s.len() >= MIN_PIECE) {
            for w in s.windows(MIN_PIECE) {
                let h = window_hash(w);
                filter[h / 64] |= 1 << (h % 64);
            }
        }
        Redactor {
            longest: secrets.first().map_or(0, Vec::len),
            secrets,
            filter,
        }
    }

    /// The values being hidden, for scanning output that is about to leave the sandbox
    /// (the package writer refuses files that contain one). Never print them.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter_map(|s| std::str::from_utf8(s).ok())
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Replaces every secret in `text`.
    ///
    /// ```
    /// let r = runbook_exec::Redactor::new(["hunter2"]);
    /// assert_eq!(r.redact("password=hunter2;"), "password=***;");
    /// ```
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let mut s = StreamRedactor::new(self.clone());
        let mut out = s.push(text.as_bytes());
        out.extend(s.finish());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether the window at the start of `rest` may start a piece of a secret.
    fn may_start_piece(&self, rest: &[u8]) -> bool {
        if rest.len() < MIN_PIECE {
            return false;
        }
        let h = window_hash(rest);
        self.filter[h / 64] & (1 << (h % 64)) != 0
    }

    /// How many bytes at the start of `rest` to hide: the longest whole secret or piece
    /// of one ([`MIN_PIECE`] bytes or more) that `rest` starts with; 0 for none.
    fn hidden_at(&self, rest: &[u8]) -> usize {
        let mut best = 0;
        let piece = self.may_start_piece(rest);
        for s in &self.secrets {
            if s.len() < MIN_PIECE {
                if rest.starts_with(s) {
                    best = best.max(s.len());
                }
            } else if piece {
                for k in 0..=s.len() - MIN_PIECE {
                    if s[k..k + MIN_PIECE] == rest[..MIN_PIECE] {
                        best = best.max(common_prefix(&s[k..], rest));
                    }
                }
            }
        }
        best
    }

    /// Whether `tail`, the end of what arrived so far, may still grow into something to
    /// hide with the next chunk: a proper beginning of a short secret, or any part of a
    /// longer one.
    fn may_grow(&self, tail: &[u8]) -> bool {
        self.secrets.iter().any(|s| {
            if s.len() < MIN_PIECE {
                s.len() > tail.len() && s.starts_with(tail)
            } else {
                s.windows(tail.len()).any(|w| w == tail)
            }
        })
    }

    /// Replaces every secret and piece of one in `bytes`, leftmost first, each as long
    /// as it goes. Unless `at_end`, a tail that may grow into one with the next chunk is
    /// held back: returns the safe output and how many trailing bytes to keep.
    fn redact_bytes(&self, bytes: &[u8], at_end: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(bytes.len());
        let (mut i, mut copied) = (0, 0);
        while i < bytes.len() {
            let rest = &bytes[i..];
            // With `longest` bytes ahead, what starts here is known whole.
            if !at_end && rest.len() < self.longest && self.may_grow(rest) {
                out.extend_from_slice(&bytes[copied..i]);
                return (out, rest.len());
            }
            match self.hidden_at(rest) {
                0 => i += 1,
                n => {
                    out.extend_from_slice(&bytes[copied..i]);
                    out.extend_from_slice(MASK.as_bytes());
                    i += n;
                    copied = i;
                }
            }
        }
        out.extend_from_slice(&bytes[copied..]);
        (out, 0)
    }
}

/// Redacts one stream chunk by chunk, holding back bytes that might start a secret.
#[derive(Debug, Clone)]
pub struct StreamRedactor {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl StreamRedactor {
    /// A stream redactor for these secrets.
    pub fn new(redactor: Redactor) -> Self {
        StreamRedactor {
            redactor,
            pending: Vec::new(),
        }
    }

    /// Feeds a chunk; returns what is safe to pass on.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        let (out, keep) = if self.pending.is_empty() {
            self.redactor.redact_bytes(chunk, false)
        } else {
            self.pending.extend_from_slice(chunk);
            self.redactor.redact_bytes(&self.pending, false)
        };
        if self.pending.is_empty() {
            self.pending.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            let from = self.pending.len() - keep;
            self.pending.drain(..from);
        }
        out
    }

    /// Flushes what was held back at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.redactor.redact_bytes(&self.pending, true);
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(secrets: &[&str], chunks: &[&str]) -> String {
        let mut s = StreamRedactor::new(Redactor::new(secrets.iter().copied()));
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c.as_bytes()));
        }
        out.extend(s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hides_secrets_split_across_chunks() {
        assert_eq!(stream(&["s3cret"], &["pw=s3", "cr", "et!"]), "pw=***!");
        assert_eq!(stream(&["s3cret"], &["s", "3", "c", "r", "e", "t"]), "***");
        assert_eq!(stream(&["abc"], &["ab", "ab", "c"]), "ab***");
    }

    #[test]
    fn hides_secrets_split_across_lines_and_overlapping_values() {
        assert_eq!(
            stream(&["line1\nline2"], &["x line1\n", "line2 y"]),
            "x *** y"
        );
        assert_eq!(
            stream(&["pass", "password"], &["my password and pass"]),
            "my *** and ***"
        );
    }

    #[test]
    fn hides_pieces_of_eight_bytes_or_more_and_only_those() {
        let secret = "Tr0ub4dor&3-horse-battery";
        // A process name keeps 15 characters: `ps` shows them.
        assert_eq!(stream(&[secret], &["comm=Tr0ub4dor&3-hor\n"]), "comm=***\n");
        assert_eq!(stream(&[secret], &["a Tr0ub4d", "or&3+x"]), "a ***+x");
        // An end and a middle, as when another stream interrupts the value.
        assert_eq!(stream(&[secret], &["[3-horse-battery]"]), "[***]");
        assert_eq!(stream(&[secret], &["(or&3-horse)"]), "(***)");
        assert_eq!(stream(&[secret], &["Tr0ub4do", "\n"]), "***\n");
        // Seven bytes are not a piece: ordinary words must survive.
        assert_eq!(stream(&[secret], &["Tr0ub4d horse-b"]), "Tr0ub4d horse-b");
        // A short secret is only hidden whole.
        assert_eq!(stream(&["abc"], &["ab abc"]), "ab ***");
    }

    #[test]
    fn passes_text_without_secrets_untouched() {
        assert_eq!(stream(&["zzz"], &["hello ", "world", ""]), "hello world");
        assert_eq!(stream(&[], &["a", "b"]), "ab");
        assert_eq!(stream(&["zzz"], &["zz"]), "zz");
    }

    proptest::proptest! {
        #[test]
        fn no_secret_survives_any_chunking(
            secret in "[a-z$().]{3,12}",
            before in ".{0,40}",
            after in ".{0,40}",
            cuts in proptest::collection::vec(0usize..100, 0..6),
        ) {
            let text = format!("{before}{secret}{after}");
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut s = StreamRedactor::new(Redactor::new([&secret]));
            let mut out = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                out.extend(s.push(&bytes[last..c]));
                last = c;
            }
            out.extend(s.finish());
            let out = String::from_utf8_lossy(&out);
            proptest::prop_assert!(!out.contains(secret.as_str()), "{out}");
            proptest::prop_assert_eq!(out.as_ref(), Redactor::new([&secret]).redact(&text));
        }

        /// A secret cut into pieces with other text between them (as when another
        /// stream interrupts it), fed in arbitrary chunks: no 8 bytes of it survive
        /// together, and chunking changes nothing.
        #[test]
        fn no_piece_of_eight_bytes_survives(
            secret in "[a-zA-Z0-9$().-]{8,40}",
            cuts in proptest::collection::vec(0usize..40, 1..4),
            noise in proptest::collection::vec("[a-z \n]{0,12}", 4),
            chunks in proptest::collection::vec(1usize..30, 1..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % secret.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut text = noise[0].clone();
            let mut last = 0;
            for (n, c) in cuts.iter().chain([&secret.len()]).enumerate() {
                text.push_str(&secret[last..*c]);
                text.push_str(&noise[(n + 1) % noise.len()]);
                last = *c;
            }
            let whole = Redactor::new([&secret]).redact(&text);
            let mut s = StreamRedactor::new(Redactor::new([&secret]));
            let (mut out, mut at, mut k) = (Vec::new(), 0, 0);
            while at < text.len() {
                let end = (at + chunks[k % chunks.len()]).min(text.len());
                out.extend(s.push(&text.as_bytes()[at..end]));
                at = end;
                k += 1;
            }
            out.extend(s.finish());
            let out = String::from_utf8(out).unwrap();
            proptest::prop_assert_eq!(&out, &whole);
            for w in secret.as_bytes().windows(MIN_PIECE) {
                let w = std::str::from_utf8(w).unwrap();
                proptest::prop_assert!(!out.contains(w), "{w:?} survived in {out:?}");
            }
        }
    }
}
