//! Secret redaction: every secret value becomes `***`, also when it arrives split
//! across chunks.

/// The replacement for a secret value.
pub const MASK: &str = "***";

/// How long a beginning of a secret must be to be hidden on its own.
pub const MIN_PREFIX: usize = 8;

/// The set of secret values to hide.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<Vec<u8>>,
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
        // Longest first, so a secret that contains another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
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

    /// Replaces every secret in `bytes`, and every piece of one that starts like it for
    /// at least [`MIN_PREFIX`] bytes (a tool that cuts a value, such as a process name
    /// limited to 15 characters, must not leak its beginning). Where the last bytes might
    /// still be the start of a secret, returns how many to hold back for the next chunk.
    fn redact_bytes(&self, bytes: &[u8], at_end: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            if !at_end && self.could_start_secret(rest) {
                return (out, bytes.len() - i);
            }
            let masked = self
                .secrets
                .iter()
                .map(|s| {
                    let common = s.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if common == s.len() || common >= MIN_PREFIX {
                        common
                    } else {
                        0
                    }
                })
                .max()
                .unwrap_or(0);
            if masked > 0 {
                out.extend_from_slice(MASK.as_bytes());
                i += masked;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        (out, 0)
    }

    /// Whether `tail` is a proper prefix of some secret (the rest may come in the next chunk).
    fn could_start_secret(&self, tail: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|s| s.len() > tail.len() && s.starts_with(tail))
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
        // Fast path: no byte of the chunk can begin a secret.
        if self.pending.is_empty()
            && !chunk
                .iter()
                .any(|b| self.redactor.secrets.iter().any(|s| s[0] == *b))
        {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let (out, keep) = self.redactor.redact_bytes(&self.pending, false);
        let from = self.pending.len() - keep;
        self.pending.drain(..from);
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
    fn hides_beginnings_of_eight_bytes_or_more_and_only_those() {
        let secret = "Tr0ub4dor&3-horse-battery";
        // A process name keeps 15 characters: `ps` shows them.
        assert_eq!(stream(&[secret], &["comm=Tr0ub4dor&3-hor\n"]), "comm=***\n");
        assert_eq!(stream(&[secret], &["a Tr0ub4d", "or&3+x"]), "a ***+x");
        assert_eq!(stream(&[secret], &["Tr0ub4do"]), "***");
        assert_eq!(stream(&[secret], &["Tr0ub4d is seven"]), "Tr0ub4d is seven");
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
    }
}
