//! Durations written the way people write them: `120s`, `2m`, `1h30m`, `500ms`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as a human string (`120s`, `2m`, `1h30m`, `250ms`).
///
/// Units: `h`, `m`, `s`, `ms`, `us`, `ns`, combined largest first, each once, each number
/// at most 9 digits; `0` alone is zero. Nothing around it (no spaces). Writing picks the
/// shortest exact form, so every duration round-trips.
///
/// ```
/// use runbook_core::HumanDuration;
/// let d: HumanDuration = "1m30s".parse()?;
/// assert_eq!(d.as_duration().as_secs(), 90);
/// assert_eq!(d.to_string(), "1m30s");
/// # Ok::<(), runbook_core::DurationError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The wrapped [`Duration`].
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (write it like `120s`, `2m`, `1h30m` or `500ms`)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// The most digits a duration's number may have.
const MAX_DIGITS: usize = 9;

/// The schema's pattern for a duration: what [`HumanDuration`]'s parser takes. Written so
/// that ECMA-262 (Ajv) and Python's `re` read it the same (`$(?!\n)`: Python's `$` also
/// matches before a final newline).
pub(crate) const DURATION_PATTERN: &str = "^(0|(?=[0-9])([0-9]{1,9}h)?([0-9]{1,9}m)?([0-9]{1,9}s)?([0-9]{1,9}ms)?([0-9]{1,9}us)?([0-9]{1,9}ns)?)$(?!\\n)";

const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        // No trimming: the schema's pattern takes no spaces either.
        let s = input;
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        let bytes = s.as_bytes();
        let mut total: u128 = 0;
        let mut i = 0;
        // Units go largest first, each once; numbers have at most MAX_DIGITS digits: the
        // schema's pattern says the same, and no such duration overflows.
        let mut next_unit = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(err("expected a number"));
            }
            if i - start > MAX_DIGITS {
                return Err(err("a number has more than 9 digits"));
            }
            let number: u128 = s[start..i].parse().map_err(|_| err("number too large"))?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &s[unit_start..i];
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(if unit.is_empty() {
                    err("a number needs a unit (h, m, s, ms, us, ns)")
                } else {
                    err("unknown unit (use h, m, s, ms, us or ns)")
                });
            };
            if index < next_unit {
                return Err(err(
                    "units go largest first, each once (`1h30m`, not `30m1h`)",
                ));
            }
            next_unit = index + 1;
            total += number * UNITS[index].1;
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("too large"))?;
        // The remainder is below one second, so it always fits in u32.
        let nanos = (total % 1_000_000_000) as u32;
        Ok(HumanDuration(Duration::new(secs, nanos)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, nanos) in UNITS {
            let n = rest / nanos;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest %= nanos;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as `120s`, `2m`, `1h30m` or `500ms`: units h, m, s, ms, us, ns, largest first, each once, each number at most 9 digits; `0` alone is zero.",
            "pattern": DURATION_PATTERN
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_forms() {
        let cases = [
            ("120s", Duration::from_secs(120)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("0", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<HumanDuration>().unwrap().0, want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms_with_a_reason() {
        for bad in [
            "",
            "12",
            "s",
            "3 weeks",
            "1.5s",
            "-1s",
            "99999999999999999999999999999999999h",
            " 30s ",
            "30s\n",
            "30m1h",
            "1s1s",
            "1000000000s",
        ] {
            let e = bad.parse::<HumanDuration>().unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn writes_the_shortest_exact_form() {
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(
            HumanDuration(Duration::from_millis(1500)).to_string(),
            "1s500ms"
        );
        assert_eq!(HumanDuration(Duration::ZERO).to_string(), "0s");
    }

    proptest::proptest! {
        #[test]
        fn round_trips(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let d = HumanDuration(Duration::new(secs, nanos));
            proptest::prop_assert_eq!(d.to_string().parse::<HumanDuration>().unwrap(), d);
        }
    }
}
