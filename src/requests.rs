//! The bodies the API reads: one type per body, which serde reads, the handlers use and the
//! OpenAPI document describes (its `ToSchema`), so a field cannot be in one and not the others.
//!
//! A body is read as a JSON object by [`strict_json`](zoe_actors::description::strict_json) (a
//! key given twice is refused), then serde reads its fields in the order of the type, an absent
//! field as `null`, so that the first field that is wrong is the one answered; each body says how
//! it refuses a field, in the words of Zoe 0.9.7 (`Missing required attribute name`). Keys a body
//! does not have are ignored, as 0.9.7 did, except in [`UserUpdate`], where they are refused.
//! The application description of [`NewExecution`] is read by
//! [`parse_application`](zoe_actors::description::app_description::parse_application).

use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use zoe_actors::description::strict_json;
use zoe_actors::logic::views::QueryWhat;
use zoe_checkpoints::{Application, Role};

use crate::body::parse_description;
use crate::error::{ApiError, HttpCode};
use crate::passwords::MAX_PASSWORD_BYTES;

/// Declares the type of a query string the API reads, with what every such type takes: serde
/// reads it, refusing a parameter it does not have (`invalid_request`), and the document
/// describes each field as a query parameter (`in: query`; optional where it is an `Option`).
/// Written once so that no query type is left described as a path's (issue 23).
macro_rules! query_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($fields)* }
    };
}
pub(crate) use query_params;

/// `POST /user`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// A lowercase DNS label (a-z, 0-9, '-').
    #[schema(example = "alice", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    pub role: Role,
    /// 1 to 1024 bytes.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

impl NewUser {
    pub fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let user: NewUser = read(body, |field, value| match field {
            "name" => string_refusal(field, value),
            "role" => role_refusal(value),
            _ => required(field, value, password_refusal),
        })?;
        check_password(&user.password)?;
        Ok(user)
    }
}

/// `PUT /user/{name}`: administrators change roles and passwords, users their own password.
/// Other keys are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub role: Option<Role>,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: Option<String>,
}

impl UserUpdate {
    /// The fields of this body, in its order.
    const FIELDS: &'static [&'static str] = &["role", "password"];

    pub fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        if let Some(k) = body.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(ApiError::new(
                HttpCode::InvalidRequest,
                format!("{k}: unknown field; only role and password can change"),
            ));
        }
        let update: UserUpdate =
            read(body, |field, value| if field == "role" { role_refusal(value) } else { password_refusal() })?;
        if let Some(password) = &update.password {
            check_password(password)?;
        }
        Ok(update)
    }
}

/// `POST /token`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// The token's name among the user's: a lowercase DNS label of at most 32 characters.
    #[schema(example = "laptop", pattern = "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")]
    pub name: String,
    /// How long the token lives, in days (1 to 3650).
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    pub expires_days: u32,
}

impl NewToken {
    pub fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let token: NewToken = read(body, |field, value| match field {
            "name" => string_refusal(field, value),
            _ => required(field, value, || {
                ApiError::new(
                    zoe_actors::Code::InvalidExpiresDays,
                    format!(
                        "expires_days: must be a whole number from 1 to {}",
                        zoe_checkpoints::limits::MAX_TOKEN_DAYS
                    ),
                )
            }),
        })?;
        zoe_actors::logic::tokens::check_new_token(&token.name, token.expires_days)?;
        Ok(token)
    }
}

/// `POST /execution`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewExecution {
    /// Unique among the owner's active executions; part of the container names (a lowercase
    /// DNS label).
    #[schema(example = "hello", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Read by the description's own reader ([`parse_description`]), which names the field of
    /// each refusal.
    #[schema(value_type = Application)]
    pub application: Value,
}

impl NewExecution {
    /// Reads the body and its description, of at most `max_description_bytes`.
    pub fn read(body: &Map<String, Value>, max_description_bytes: usize) -> Result<(String, Application), ApiError> {
        let new: NewExecution = read(body, string_refusal)?;
        if new.application.is_null() {
            return Err(missing("application"));
        }
        Ok((new.name, parse_description(&new.application, max_description_bytes)?))
    }
}

/// `POST /query`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    pub what: QueryWhat,
    /// `{attribute: value}`; all must match exactly.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
}

impl QueryRequest {
    pub fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        read(body, |field, value| match (field, value) {
            ("what", None) => ApiError::new(HttpCode::InvalidRequest, "\"what\" is required in query object"),
            ("what", Some(Value::String(s))) => {
                let all = QueryWhat::ALL.map(QueryWhat::as_str).join(", ");
                ApiError::new(HttpCode::UnknownQuery, format!("unknown query {s:?}; use one of {all}"))
            }
            ("what", Some(_)) => ApiError::new(HttpCode::InvalidRequest, "\"what\" must be a string"),
            _ => ApiError::new(
                HttpCode::InvalidFilters,
                "query filters should be a dictionary of {attribute: requested_value} entries",
            ),
        })
    }
}

/// Reads a request body, already known to be a JSON object, as a `T`: its fields in the order of
/// `T`, an absent one as `null`; `refuse` says why a field could not be read, given its name and
/// what was sent (`None` when absent).
fn read<T: DeserializeOwned>(
    body: &Map<String, Value>,
    refuse: impl Fn(&str, Option<&Value>) -> ApiError,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(InOrder(body)).map_err(|e| {
        let field = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
            _ => String::new(),
        };
        let value = body.get(&field);
        refuse(&field, value)
    })
}

/// A body whose fields serde reads in the order of the type it makes, each absent one as `null`.
struct InOrder<'a>(&'a Map<String, Value>);

static NULL: Value = Value::Null;

impl<'de> de::Deserializer<'de> for InOrder<'de> {
    type Error = serde_json::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let entries = fields.iter().map(|f| (*f, self.0.get(*f).unwrap_or(&NULL)));
        visitor.visit_map(MapDeserializer::new(entries))
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(MapDeserializer::new(self.0.iter().map(|(k, v)| (k.as_str(), v))))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn missing(key: &str) -> ApiError {
    ApiError::new(HttpCode::InvalidRequest, format!("Missing required attribute {key}"))
}

/// `refusal` of a field that was sent, else `Missing required attribute`.
fn required(field: &str, value: Option<&Value>, refusal: impl FnOnce() -> ApiError) -> ApiError {
    match value {
        None | Some(Value::Null) => missing(field),
        Some(_) => refusal(),
    }
}

/// A required string field that is not one.
fn string_refusal(field: &str, value: Option<&Value>) -> ApiError {
    required(field, value, || ApiError::new(HttpCode::InvalidRequest, format!("{field}: must be a string")))
}

fn role_refusal(value: Option<&Value>) -> ApiError {
    required("role", value, || match value {
        Some(Value::String(r)) => {
            ApiError::new(HttpCode::InvalidRole, format!("role {r:?} is not one of admin, user, guest"))
        }
        _ => ApiError::new(HttpCode::InvalidRole, "role: must be one of \"admin\", \"user\", \"guest\""),
    })
}

fn password_refusal() -> ApiError {
    ApiError::new(HttpCode::InvalidRequest, format!("password: must be a string of 1 to {MAX_PASSWORD_BYTES} bytes"))
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(password_refusal());
    }
    Ok(())
}

/// A document refused by [`strict_json`]: not JSON, or a key given twice (the path of the second
/// one).
pub fn strict_json_error(e: strict_json::Error) -> ApiError {
    match e {
        strict_json::Error::Syntax(e) => ApiError::new(HttpCode::InvalidJson, format!("Error decoding JSON data: {e}")),
        e @ strict_json::Error::DuplicateKey(_) => ApiError::new(HttpCode::DuplicateKey, e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    /// The fields `UserUpdate` checks by hand are those of its type.
    #[test]
    fn the_fields_of_a_user_update_are_those_of_its_type() {
        let schema = serde_json::to_value(UserUpdate::schema()).unwrap();
        let fields: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = UserUpdate::FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected);
    }

    #[test]
    fn fields_are_read_in_the_order_of_the_type() {
        let body = |v: Value| v.as_object().unwrap().clone();
        // `role` comes before `password`, though it is after it in the alphabet.
        let e = NewUser::read(&body(serde_json::json!({"name": "a", "role": 5, "password": 5}))).unwrap_err();
        assert_eq!(e.code, HttpCode::InvalidRole.into());
        let e = NewUser::read(&body(serde_json::json!({"name": "a", "password": 5}))).unwrap_err();
        assert_eq!(e.message, "Missing required attribute role");
        let e = QueryRequest::read(&body(serde_json::json!({"what": 1, "filters": 1}))).unwrap_err();
        assert_eq!(e.message, "\"what\" must be a string");
    }
}
