//! What the API and the web pages read from a request alike: its body, within a size, and the
//! application description it carries.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;
use zoe_actors::description::app_description::parse_application;

use crate::error::{ApiError, HttpCode};

/// Reads a request body of at most `limit` bytes; `what` names it in the refusal ("request
/// body", "form").
pub async fn read_limited(mut payload: web::Payload, limit: usize, what: &str) -> Result<web::BytesMut, ApiError> {
    let too_large =
        || ApiError::new(HttpCode::PayloadTooLarge, format!("the {what} is larger than the limit of {limit} bytes"));
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            e => ApiError::new(HttpCode::InvalidRequest, format!("cannot read the {what}: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses an application description of at most `max_bytes` of compact JSON: every description
/// is kept in the checkpoints, so its size is bounded like every other thing a request stores.
pub fn parse_description(v: &Value, max_bytes: usize) -> Result<zoe_checkpoints::Application, ApiError> {
    let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(ApiError::new(
            HttpCode::DescriptionTooLarge,
            format!("application: the description is {size} bytes of JSON, more than the limit of {max_bytes}"),
        ));
    }
    parse_application(v).map_err(|e| ApiError::from(zoe_actors::ZoeError::from(e)))
}
