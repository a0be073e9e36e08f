//! Paths into a runbook (`steps[2].verify[0].run`), built without allocating per field.

use std::fmt;

/// One segment of a [`FieldPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (`steps`, `run`).
    Key(&'static str),
    /// A sequence index.
    Index(usize),
}

/// A path from the root of a runbook to one field, printed as `steps[2].verify[0].run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// Parses `steps[2].verify[0].run`; unknown keys are dropped (they cannot be located).
    pub fn parse(text: &str) -> Vec<PathPart> {
        let mut out = Vec::new();
        for piece in text.split('.') {
            let (key, rest) = piece.split_once('[').unwrap_or((piece, ""));
            if !key.is_empty() {
                out.push(PathPart::Key(key.to_owned()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    out.push(PathPart::Index(i));
                }
            }
        }
        out
    }
}

/// An owned path segment, as parsed from text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPart {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Builds a path string from segments: `path!("steps", 2, "run")`.
pub(crate) fn join(segments: &[Segment]) -> String {
    FieldPath(segments.to_vec()).to_string()
}
