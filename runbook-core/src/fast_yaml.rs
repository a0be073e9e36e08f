//! A fast path for reading runbooks: a serde deserializer driven directly by the YAML
//! parser's events, for the plain subset of YAML runbooks are written in (mappings,
//! sequences, scalars; no anchors, aliases, tags or merge keys).
//!
//! It never decides anything on its own: whatever it does not handle exactly like
//! `serde-saphyr` (a tag, an alias, a plain `null` where text is wanted, a duplicate key,
//! any error at all) makes it give up, and the caller parses the text again with
//! `serde-saphyr`, which gives the located, detailed answer. A property test checks that
//! both agree whenever the fast path answers.

use std::borrow::Cow;
use std::fmt;
use std::iter::Peekable;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StrInput};

/// Nesting deeper than this is left to the careful parser (and its budget).
const MAX_DEPTH: usize = 64;

/// "Not on the fast path": the text is parsed again the careful way.
#[derive(Debug)]
pub(crate) struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not on the fast path")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveUp
    }
}

type R<T> = Result<T, GiveUp>;

struct De<'a> {
    events: Peekable<Parser<'a, StrInput<'a>>>,
    depth: usize,
}

/// Reads `text` on the fast path, or `None` when the careful parser must.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    let mut de = De {
        events: Parser::new_from_str(text).peekable(),
        depth: 0,
    };
    let value = (|| {
        de.expect(|e| matches!(e, Event::StreamStart))?;
        de.expect(|e| matches!(e, Event::DocumentStart(..)))?;
        let value = T::deserialize(&mut de)?;
        de.expect(|e| matches!(e, Event::DocumentEnd))?;
        de.expect(|e| matches!(e, Event::StreamEnd))?;
        Ok::<_, GiveUp>(value)
    })();
    value.ok()
}

use crate::scalars::is_special_plain;

impl<'a> De<'a> {
    fn next(&mut self) -> R<Event<'a>> {
        self.skip_presentation();
        match self.events.next() {
            Some(Ok((event, _))) => Ok(event),
            _ => Err(GiveUp),
        }
    }

    fn peek(&mut self) -> R<&Event<'a>> {
        self.skip_presentation();
        match self.events.peek() {
            Some(Ok((event, _))) => Ok(event),
            _ => Err(GiveUp),
        }
    }

    /// Skips events that are not YAML data: comments (emitted when another crate in the
    /// build turns the parser's `comments` feature on) and anchor metadata.
    fn skip_presentation(&mut self) {
        while let Some(Ok((event, _))) = self.events.peek() {
            match event {
                Event::StreamStart
                | Event::StreamEnd
                | Event::DocumentStart(..)
                | Event::DocumentEnd
                | Event::Alias(..)
                | Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::SequenceEnd
                | Event::MappingStart(..)
                | Event::MappingEnd => return,
                _ => {
                    self.events.next();
                }
            }
        }
    }

    fn expect(&mut self, want: impl Fn(&Event<'a>) -> bool) -> R<()> {
        if want(&self.next()?) {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// The next scalar, untagged and unanchored, with its style.
    fn scalar(&mut self) -> R<(Cow<'a, str>, ScalarStyle)> {
        match self.next()? {
            Event::Scalar(value, style, 0, None) => Ok((value, style)),
            _ => Err(GiveUp),
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(GiveUp)
        } else {
            Ok(())
        }
    }

    fn skip_node(&mut self) -> R<()> {
        let mut open = 0usize;
        loop {
            match self.next()? {
                Event::Scalar(..) if open == 0 => return Ok(()),
                Event::Scalar(..) => {}
                Event::MappingStart(..) | Event::SequenceStart(..) => open += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    open = open.checked_sub(1).ok_or(GiveUp)?;
                    if open == 0 {
                        return Ok(());
                    }
                }
                _ => return Err(GiveUp),
            }
        }
    }

    fn integer(&mut self) -> R<i128> {
        match self.scalar()? {
            // Only plain decimal digits: the careful parser refuses other spellings.
            (s, ScalarStyle::Plain) if crate::scalars::is_plain_integer(&s) => {
                s.parse().map_err(|_| GiveUp)
            }
            _ => Err(GiveUp),
        }
    }
}

macro_rules! integers {
    ($($method:ident => $visit:ident as $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
            let n = self.integer()?;
            visitor.$visit(<$ty>::try_from(n).map_err(|_| GiveUp)?)
        }
    )*};
}

macro_rules! give_up {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, _: V) -> R<V::Value> {
            Err(GiveUp)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut De<'_> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.peek()? {
            Event::MappingStart(..) => self.deserialize_map(visitor),
            Event::SequenceStart(..) => self.deserialize_seq(visitor),
            Event::Scalar(_, ScalarStyle::Plain, ..) => Err(GiveUp),
            Event::Scalar(..) => self.deserialize_string(visitor),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.scalar()? {
            (s, ScalarStyle::Plain) if is_special_plain(&s) => Err(GiveUp),
            (s, _) => visitor.visit_str(&s),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.scalar()? {
            (s, ScalarStyle::Plain) if s == "true" => visitor.visit_bool(true),
            (s, ScalarStyle::Plain) if s == "false" => visitor.visit_bool(false),
            _ => Err(GiveUp),
        }
    }

    integers!(
        deserialize_u8 => visit_u8 as u8, deserialize_u16 => visit_u16 as u16,
        deserialize_u32 => visit_u32 as u32, deserialize_u64 => visit_u64 as u64,
        deserialize_i8 => visit_i8 as i8, deserialize_i16 => visit_i16 as i16,
        deserialize_i32 => visit_i32 as i32, deserialize_i64 => visit_i64 as i64
    );

    give_up!(
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.peek()? {
            Event::Scalar(s, ScalarStyle::Plain, 0, None)
                if matches!(s.as_ref(), "" | "~" | "null" | "Null" | "NULL") =>
            {
                self.next()?;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> R<V::Value> {
        Err(GiveUp)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> R<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.next()? {
            Event::SequenceStart(_, 0, None) => {}
            _ => return Err(GiveUp),
        }
        self.enter()?;
        let value = visitor.visit_seq(Seq { de: &mut *self })?;
        self.expect(|e| matches!(e, Event::SequenceEnd))?;
        self.depth -= 1;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> R<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> R<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.next()? {
            Event::MappingStart(_, 0, None) => {}
            _ => return Err(GiveUp),
        }
        self.enter()?;
        let value = visitor.visit_map(Map {
            de: &mut *self,
            seen: Vec::new(),
        })?;
        self.expect(|e| matches!(e, Event::MappingEnd))?;
        self.depth -= 1;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        match self.peek()? {
            // `kind: noRealTraffic`: a unit variant.
            Event::Scalar(..) => {
                let (s, _) = self.scalar()?;
                visitor.visit_enum(s.into_owned().into_deserializer())
            }
            // `{ podsReady: {…} }`: a variant with data, the mapping's only key.
            Event::MappingStart(_, 0, None) => {
                self.next()?;
                self.enter()?;
                let value = visitor.visit_enum(Variant { de: &mut *self })?;
                self.expect(|e| matches!(e, Event::MappingEnd))?;
                self.depth -= 1;
                Ok(value)
            }
            _ => Err(GiveUp),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.skip_node()?;
        visitor.visit_unit()
    }
}

struct Seq<'s, 'a> {
    de: &'s mut De<'a>,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<Option<T::Value>> {
        if matches!(self.de.peek()?, Event::SequenceEnd) {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct Map<'s, 'a> {
    de: &'s mut De<'a>,
    seen: Vec<Cow<'a, str>>,
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> R<Option<K::Value>> {
        if matches!(self.de.peek()?, Event::MappingEnd) {
            return Ok(None);
        }
        let (key, style) = self.de.scalar()?;
        // Duplicate keys are errors, reported (with their position) by the careful parser.
        if (style == ScalarStyle::Plain && is_special_plain(&key)) || self.seen.contains(&key) {
            return Err(GiveUp);
        }
        let value = seed
            .deserialize(key.as_ref().into_deserializer())
            .map_err(|_: de::value::Error| GiveUp)?;
        self.seen.push(key);
        Ok(Some(value))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> R<V::Value> {
        seed.deserialize(&mut *self.de)
    }
}

struct Variant<'s, 'a> {
    de: &'s mut De<'a>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, '_> {
    type Error = GiveUp;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<(T::Value, Self)> {
        let (key, _) = self.de.scalar()?;
        let value = seed
            .deserialize(key.as_ref().into_deserializer())
            .map_err(|_: de::value::Error| GiveUp)?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = GiveUp;

    fn unit_variant(self) -> R<()> {
        Err(GiveUp)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<T::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> R<V::Value> {
        Err(GiveUp)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::from_str;
    use crate::Runbook;

    #[test]
    fn plain_runbooks_take_the_fast_path() {
        for example in [
            "postgres",
            "quickstart",
            "notification-stack",
            "kubernetes",
            "upgrade",
        ] {
            let path = format!(
                "{}/../examples/{example}/runbook.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(path).unwrap();
            let fast: Runbook =
                from_str(&text).unwrap_or_else(|| panic!("{example} left the fast path"));
            assert_eq!(
                fast,
                crate::careful_from_yaml_str(&text).unwrap(),
                "{example}"
            );
        }
    }

    #[test]
    fn numbers_and_words_yaml_may_not_read_as_text() {
        for special in [
            "1",
            "-2",
            "1.5",
            ".5",
            "1e3",
            "0x1F",
            "0o17",
            "1_000",
            "1:30",
            ".inf",
            "-.INF",
            ".nan",
            "yes",
            "Off",
            "~",
            "",
            "2024-01-31",
        ] {
            assert!(super::is_special_plain(special), "{special}");
        }
        for text in [
            "1m30s",
            "60s",
            "1.0.0",
            "127.0.0.1",
            "v1.29",
            "15.18-0",
            "myapp",
            "e",
            ".",
        ] {
            assert!(!super::is_special_plain(text), "{text}");
        }
    }

    #[test]
    fn what_it_does_not_handle_exactly_goes_to_the_careful_parser() {
        let base = "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps: []\n";
        assert!(from_str::<Runbook>(base).is_some());
        for odd in [
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: &m {name: x}\nsteps: []\n",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: !!str x}\nsteps: []\n",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nmetadata: {name: y}\nsteps: []\n",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: 12}\nsteps: []\n",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x, bogus: 1}\nsteps: []\n",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x}\nsteps: []\n---\nmore: 1\n",
        ] {
            assert!(from_str::<Runbook>(odd).is_none(), "{odd}");
        }
    }
}
