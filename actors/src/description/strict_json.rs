//! JSON read strictly: a document whose objects name a key twice is refused, with the path of
//! the second one. `serde_json` keeps the last value of a repeated key, so `{"role": "admin",
//! "role": "user"}` would be read as a user while a reviewer, a log filter or a proxy that reads
//! the first value sees an administrator; Zoe reads no document that means two things.
//!
//! The document is read once, by `serde_json`'s own parser (with its nesting limit of 128), into
//! the same [`Value`] that `serde_json::from_slice` makes; each object keeps the keys it has seen,
//! so the cost stays linear in the size of the document.

use std::fmt::{self, Write};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a document was refused.
#[derive(Debug)]
pub enum Error {
    /// Not JSON (or nested deeper than 128, or followed by something).
    Syntax(serde_json::Error),
    /// An object names a key twice: the path of the second one (`application.services[0].name`,
    /// `filters["a b"]`, `[2].x`).
    DuplicateKey(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(e) => write!(f, "{e}"),
            Error::DuplicateKey(path) => write!(f, "{path}: {}", DUPLICATE),
        }
    }
}

impl std::error::Error for Error {}

/// What is wrong with a repeated key, in words.
pub const DUPLICATE: &str = "this key appears more than once in the same object; a key may be given only once";

/// Parses `bytes` as one JSON document; refuses repeated keys.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    let mut path = String::new();
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Node { path: &mut path, duplicate: &mut duplicate }.deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match (parsed, duplicate) {
        (_, Some(path)) => Err(Error::DuplicateKey(path)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(Error::Syntax(e)),
    }
}

/// [`from_slice`] of a string.
pub fn from_str(text: &str) -> Result<Value, Error> {
    from_slice(text.as_bytes())
}

/// A path of a document that is itself at `parent` in a larger one: `parent.path`,
/// `parent[1]`, or `parent` for the whole document.
pub fn join(parent: &str, path: &str) -> String {
    match path.chars().next() {
        None => parent.to_string(),
        Some('[') => format!("{parent}{path}"),
        Some(_) => format!("{parent}.{path}"),
    }
}

/// Appends `.key` (or `["key"]` when it is not a plain name) to a path.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        let shown = crate::description::naming::shorten(key, 64);
        let _ = write!(path, "[{shown:?}]");
    }
}

/// One value of the document, at `path`.
struct Node<'a> {
    path: &'a mut String,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let len = self.path.len();
            let _ = write!(self.path, "[{}]", out.len());
            let next = seq.next_element_seed(Node { path: &mut *self.path, duplicate: &mut *self.duplicate })?;
            self.path.truncate(len);
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let len = self.path.len();
            push_key(self.path, &key);
            if map.contains_key(&key) {
                *self.duplicate = Some(self.path.clone());
                return Err(de::Error::custom(DUPLICATE));
            }
            let value = access.next_value_seed(Node { path: &mut *self.path, duplicate: &mut *self.duplicate })?;
            self.path.truncate(len);
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn duplicate(text: &str) -> String {
        match from_str(text) {
            Err(Error::DuplicateKey(path)) => path,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn documents_read_as_serde_json_reads_them() {
        for text in [
            r#"{"name": "x", "n": -3, "big": 18446744073709551615, "f": 1.5e3, "e": [], "o": {}, "z": null}"#,
            r#"[1, "two", [3, [4]], {"a": {"a": {"a": true}}}]"#,
            r#""just a string""#,
            "  42 ",
        ] {
            assert_eq!(from_str(text).unwrap(), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        // The same key in different objects is no repetition.
        assert_eq!(from_str(r#"[{"a": 1}, {"a": 2}]"#).unwrap(), json!([{"a": 1}, {"a": 2}]));
    }

    #[test]
    fn a_repeated_key_anywhere_is_named_by_its_path() {
        assert_eq!(duplicate(r#"{"name": "x", "role": "admin", "role": "user"}"#), "role");
        let description = r#"{"name": "e", "application": {"services": [{"name": "a"},
            {"name": "b", "docker_image": "evil.example/x", "docker_image": "busybox"}]}}"#;
        assert_eq!(duplicate(description), "application.services[1].docker_image");
        assert_eq!(duplicate(r#"{"filters": {"a b": 1, "a b": 2}}"#), r#"filters["a b"]"#);
        assert_eq!(duplicate(r#"[0, {"x": 1, "x": 1}]"#), "[1].x");
        assert_eq!(duplicate(r#"{"": 1, "": 2}"#), r#"[""]"#);
        assert_eq!(join("application", "services[0].name"), "application.services[0].name");
        assert_eq!(join("application", r#"["a b"]"#), r#"application["a b"]"#);
        // Control characters in a key are escaped in the path.
        assert_eq!(duplicate("{\"\\u001b[2J\": 1, \"\\u001b[2J\": 2}"), r#"["\u{1b}[2J"]"#);
    }

    #[test]
    fn syntax_errors_and_deep_nesting_stay_errors() {
        for text in
            ["", "{", r#"{"a": 1} x"#, "[1,]", &"[".repeat(200), &format!("{}{}", "[".repeat(129), "]".repeat(129))]
        {
            assert!(matches!(from_str(text), Err(Error::Syntax(_))), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str(&deep).is_ok());
    }
}
