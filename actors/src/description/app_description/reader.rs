//! Reads a JSON description into the typed model with serde: a [`Deserializer`] over a parsed
//! [`Value`] whose errors are [`DescriptionError`]s, each with the path of the field.
//!
//! `serde_json`'s own deserializer would do the reading, but its errors are text: a refusal could
//! not keep its stable code and words. This one reads each object's fields in the order of the
//! format (not the document's), refuses an unknown field before reading any of its neighbours,
//! takes an integral float (`2.0`) as an integer, and checks what only the written value can
//! tell ([`limits`]: a count or a size as written, `-1` or `1e300` included, and the length of a
//! list before its entries are read), so that the first mistake of a document is the one the
//! format puts first. The rules over the typed value are in [`super::validate`].

use std::fmt::Display;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

use super::errors::{field_path, index_path, kind, unknown_field, DescriptionError, ROOT};
use super::limits;

/// A value of the document, where it is (its path, and the field and object it is in).
#[derive(Clone)]
pub(super) struct Reader<'a> {
    value: &'a Value,
    path: String,
    /// The field this value is and the object holding it, for [`limits`].
    field: Option<(&'a str, &'a Map<String, Value>)>,
}

impl<'a> Reader<'a> {
    /// The whole document.
    pub(super) fn root(value: &'a Value) -> Self {
        Reader { value, path: ROOT.to_string(), field: None }
    }

    fn key(&self) -> &'a str {
        self.field.map_or("", |(k, _)| k)
    }

    /// An error here.
    fn fail(&self, code: &'static str, message: impl Into<String>) -> Error {
        Error(Some(DescriptionError { path: self.path.clone(), code, message: message.into() }), None)
    }

    fn wrong_type(&self, expected: &str) -> Error {
        self.fail("wrong_type", format!("must be {expected}, got {}", kind(self.value)))
    }

    /// Gives an error raised below without a place (by serde's derived code) this place.
    fn place<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| match e {
            Error(None, missing) => {
                let path = match missing {
                    Some(field) => field_path(&self.path, field),
                    None => self.path.clone(),
                };
                let message = match missing {
                    Some(field) => format!("missing required field \"{field}\""),
                    None => "is not what the format says".to_string(),
                };
                let code = if missing.is_some() { "missing_field" } else { "wrong_type" };
                Error(Some(DescriptionError { path, code, message }), None)
            }
            placed => placed,
        })
    }

    /// The number, if it is one without a fraction (`2` or `2.0`), checked against its limits.
    fn integer(&self) -> Result<i128, Error> {
        let Value::Number(n) = self.value else { return Err(self.wrong_type("an integer")) };
        let Some(i) = limits::integral(n) else {
            return Err(self.fail("wrong_type", format!("must be an integer, got a number with a fraction ({n})")));
        };
        let siblings = self.field.map(|(_, m)| m);
        limits::integer(self.key(), i, n, siblings).map_err(|(code, message)| self.fail(code, message))?;
        Ok(i)
    }

    fn children(&self) -> impl Iterator<Item = Reader<'a>> + '_ {
        let list = self.value.as_array().map(Vec::as_slice).unwrap_or_default();
        list.iter().enumerate().map(|(i, value)| Reader { value, path: index_path(&self.path, i), field: None })
    }
}

/// Why reading failed: a placed error, or one serde's derived code raised without a place (with
/// the missing field it names, if any), placed by the reader it passes through.
#[derive(Debug)]
pub(super) struct Error(Option<DescriptionError>, Option<&'static str>);

impl Error {
    pub(super) fn into_description_error(self) -> DescriptionError {
        self.0.unwrap_or_else(|| DescriptionError {
            path: ROOT.to_string(),
            code: "wrong_type",
            message: "is not what the format says".to_string(),
        })
    }
}

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(e) => e.fmt(f),
            None => f.write_str("is not what the format says"),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: Display>(_: T) -> Self {
        Error(None, None)
    }

    fn missing_field(field: &'static str) -> Self {
        Error(None, Some(field))
    }
}

impl<'de> IntoDeserializer<'de, Error> for Reader<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! integers {
    ($($method:ident => $visit:ident $ty:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let i = self.integer()?;
            match <$ty>::try_from(i) {
                Ok(n) => self.place(visitor.$visit(n)),
                Err(_) => Err(self.fail("out_of_range", format!("must fit in {}, got {i}", stringify!($ty)))),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (_, Some(i), _) => visitor.visit_i64(i),
                (_, _, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(_) => visitor.visit_seq(SeqDeserializer::new(self.children())),
            Value::Object(map) => visitor.visit_map(MapDeserializer::new(map.iter().map(|(k, value)| {
                (k.as_str(), Reader { value, path: field_path(&self.path, k), field: Some((k.as_str(), map)) })
            }))),
        };
        self.place(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => self.place(visitor.visit_bool(*b)),
            _ => Err(self.wrong_type("a boolean (true or false)")),
        }
    }

    integers! {
        deserialize_u8 => visit_u8 u8,
        deserialize_u16 => visit_u16 u16,
        deserialize_u32 => visit_u32 u32,
        deserialize_u64 => visit_u64 u64,
        deserialize_i8 => visit_i8 i8,
        deserialize_i16 => visit_i16 i16,
        deserialize_i32 => visit_i32 i32,
        deserialize_i64 => visit_i64 i64,
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let Value::Number(n) = self.value else { return Err(self.wrong_type("a number")) };
        let f = n.as_f64().unwrap_or(f64::NAN);
        limits::number(self.key(), f, n).map_err(|(code, message)| self.fail(code, message))?;
        self.place(visitor.visit_f64(f))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => self.place(visitor.visit_borrowed_str(s)),
            _ => Err(self.wrong_type("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => self.place(visitor.visit_none()),
            _ => {
                let place = self.clone();
                place.place(visitor.visit_some(self))
            }
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let Value::Array(list) = self.value else { return Err(self.wrong_type("an array")) };
        limits::list(self.key(), list.len()).map_err(|(code, message)| self.fail(code, message))?;
        self.place(visitor.visit_seq(SeqDeserializer::new(self.children())))
    }

    /// A tuple is an environment entry: a `[name, value]` pair.
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        const PAIR: &str = "must be a [name, value] pair of strings";
        match self.value {
            Value::Array(list) if list.len() == len => {
                self.place(visitor.visit_seq(SeqDeserializer::new(self.children())))
            }
            Value::Array(list) => {
                Err(self.fail("wrong_type", format!("{PAIR}, got an array of {} elements", list.len())))
            }
            other => Err(self.fail("wrong_type", format!("{PAIR}, got {}", kind(other)))),
        }
    }

    /// An object of the format: its unknown fields are refused first, then its fields are read
    /// in the order of the format.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (what, order) = limits::object(name, fields);
        let Value::Object(map) = self.value else {
            return Err(self.fail("not_an_object", format!("{what} must be a JSON object, got {}", kind(self.value))));
        };
        if let Some(key) = map.keys().find(|k| !order.contains(&k.as_str())) {
            return Err(Error(Some(unknown_field(&self.path, key, order)), None));
        }
        let entries = order.iter().filter_map(|field| {
            let (key, value) = map.get_key_value(*field)?;
            Some((key.as_str(), Reader { value, path: field_path(&self.path, key), field: Some((key.as_str(), map)) }))
        });
        self.place(visitor.visit_map(MapDeserializer::new(entries)))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct newtype_struct tuple_struct map enum identifier
        ignored_any
    }
}
