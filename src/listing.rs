//! `GET /api/0.6/execution` with filters and a limit: parsing the query, and writing a listing
//! that may reach deep into the archive piece by piece, so that neither the master's memory nor
//! its async threads pay for a client that downloads all history.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zoe_actors::logic::history::ListFilter;
use zoe_actors::logic::reader::{JsonCache, Published};
use zoe_actors::logic::views::Executions;
use zoe_checkpoints::ExecutionStatus;

use crate::error::{ApiError, HttpCode};
use crate::percent::encode;

/// The most executions one page may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// Listings with more archived executions than this are written piece by piece, off the async
/// threads.
const INLINE_ARCHIVED: usize = 64;
/// Executions per piece.
const CHUNK: usize = 256;
/// The query parameters `GET /execution` knows.
const KNOWN: [&str; 6] = ["status", "name", "owner", "since", "before", "limit"];
/// Those of them that take one value (`status` may be repeated).
pub const SINGLE: [&str; 5] = ["name", "owner", "since", "before", "limit"];
/// The most query parameters an API request may have.
pub const MAX_PARAMETERS: usize = 32;

/// The parameters of an API request's query string: at most [`MAX_PARAMETERS`] (counted
/// before anything is decoded), and none of `single` given twice (`?limit=1&limit=5` would
/// leave which one counts to a guess): both refused with `invalid_filters`.
pub fn query_pairs(query: &str, single: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let count = query.split('&').filter(|p| !p.is_empty()).count();
    if count > MAX_PARAMETERS {
        return Err(ApiError::new(
            HttpCode::InvalidFilters,
            format!("the query has {count} parameters; at most {MAX_PARAMETERS} are accepted"),
        ));
    }
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| invalid(format!("bad query parameters: {e}")))?
        .into_inner();
    for (i, (key, _)) in pairs.iter().enumerate() {
        if single.contains(&key.as_str()) && pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(ApiError::new(
                HttpCode::InvalidFilters,
                format!("{key} is given more than once; it takes one value, so give it once"),
            ));
        }
    }
    Ok(pairs)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(HttpCode::InvalidRequest, message)
}

/// Parses the query of `GET /execution`: `status` (repeatable, or comma-separated), `name`,
/// `owner`, `since` (RFC 3339), `before` (an id) and `limit` (1 to [`MAX_LIMIT`]).
pub fn parse(pairs: &[(String, String)]) -> Result<ListFilter, ApiError> {
    let mut f = ListFilter::default();
    for (key, value) in pairs {
        match key.as_str() {
            "status" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    let st = ExecutionStatus::parse(s).ok_or_else(|| {
                        invalid(format!(
                            "status {s:?} is not one of {}",
                            ExecutionStatus::ALL.map(|s| s.as_str()).join(", ")
                        ))
                    })?;
                    if !f.statuses.contains(&st) {
                        f.statuses.push(st);
                    }
                }
            }
            "name" => f.name = Some(value.clone()),
            "owner" => f.owner = Some(value.clone()),
            "since" => {
                f.since = Some(OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
                    invalid(format!("since {value:?} is not an RFC 3339 time such as 2026-12-01T08:00:00Z"))
                })?)
            }
            "before" => {
                f.before = Some(value.parse().map_err(|_| invalid(format!("before {value:?} is not an execution id")))?)
            }
            "limit" => {
                let n: usize = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| invalid(format!("limit {value:?} is not a number from 1 to {MAX_LIMIT}")))?;
                f.limit = Some(n);
            }
            other => {
                return Err(invalid(format!("unknown parameter {other:?}; GET /execution knows {}", KNOWN.join(", "))))
            }
        }
    }
    Ok(f)
}

/// The URL of the next (older) page: the same query, with `before`.
fn next_link(path: &str, pairs: &[(String, String)], before: u64) -> String {
    let mut query: Vec<String> =
        pairs.iter().filter(|(k, _)| k != "before").map(|(k, v)| format!("{k}={}", encode(v))).collect();
    query.push(format!("before={before}"));
    format!("<{path}?{}>; rel=\"next\"", query.join("&"))
}

/// The response of a listing: the JSON array, written at once when it is small or held in
/// memory, else piece by piece from the archive. With a limit that left older executions out,
/// a `Link: <...>; rel="next"` header asks for them.
pub fn respond(
    p: Arc<Published>,
    cache: Arc<JsonCache>,
    listing: Executions,
    path: &str,
    pairs: &[(String, String)],
) -> Result<HttpResponse, ApiError> {
    let mut res = HttpResponse::Ok();
    res.content_type(header::ContentType::json());
    if let Some(before) = listing.selection.older {
        res.insert_header((header::LINK, next_link(path, pairs, before)));
    }
    let n = listing.selection.items.len();
    if listing.selection.archived() <= INLINE_ARCHIVED {
        let mut body = Vec::with_capacity(n * 1024 + 2);
        body.push(b'[');
        body.extend_from_slice(&listing.render(&p, &cache, 0..n)?);
        body.push(b']');
        return Ok(res.body(body));
    }
    let listing = Arc::new(listing);
    // The state of the stream: the next item to write, or past the end once `]` is out.
    let stream = futures_util::stream::unfold(Some(0usize), move |next| {
        let (p, cache, listing) = (p.clone(), cache.clone(), listing.clone());
        async move {
            let start = next?;
            if start >= n {
                return Some((Ok(web::Bytes::from_static(if n == 0 { b"[]" } else { b"]" })), None));
            }
            let end = (start + CHUNK).min(n);
            let piece = web::block(move || listing.render(&p, &cache, start..end)).await;
            match piece {
                Ok(Ok(json)) => {
                    let mut out = Vec::with_capacity(json.len() + 1);
                    out.push(if start == 0 { b'[' } else { b',' });
                    out.extend_from_slice(&json);
                    Some((Ok(web::Bytes::from(out)), Some(end)))
                }
                Ok(Err(e)) => {
                    tracing::error!("listing cut short: {e}");
                    Some((Err(actix_web::error::ErrorInternalServerError(e.message)), None))
                }
                Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e.to_string())), None)),
            }
        }
    });
    Ok(res.streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn filters_parse_and_bad_ones_say_what_to_fix() {
        let f = parse(&q(&[
            ("status", "finished,cleaning up"),
            ("status", "error"),
            ("name", "wc"),
            ("owner", "alice"),
            ("since", "2026-12-01T08:00:00Z"),
            ("before", "120"),
            ("limit", "50"),
        ]))
        .unwrap();
        assert_eq!(f.statuses, [ExecutionStatus::Finished, ExecutionStatus::CleaningUp, ExecutionStatus::Error]);
        assert_eq!(
            (f.name.as_deref(), f.owner.as_deref(), f.before, f.limit),
            (Some("wc"), Some("alice"), Some(120), Some(50))
        );
        assert_eq!(f.since.map(|t| t.unix_timestamp()), Some(1_796_112_000));
        assert_eq!(parse(&[]).unwrap(), ListFilter::default(), "no parameter: everything, as 0.9.7");
        for (k, v, says) in [
            ("status", "done", "is not one of"),
            ("limit", "0", "from 1 to 10000"),
            ("limit", "10001", "from 1 to 10000"),
            ("limit", "-3", "from 1 to 10000"),
            ("before", "x", "not an execution id"),
            ("since", "yesterday", "RFC 3339"),
            ("stauts", "running", "unknown parameter \"stauts\""),
        ] {
            let e = parse(&q(&[(k, v)])).unwrap_err();
            assert!(e.message.contains(says), "{k}={v}: {}", e.message);
        }
    }

    #[test]
    fn repeated_single_parameters_and_floods_of_parameters_are_refused() {
        let pairs = query_pairs("status=running&status=error&limit=5", &SINGLE).unwrap();
        assert_eq!(pairs.len(), 3);
        for query in ["limit=1&limit=5", "name=a&status=running&name=b", "before=3&before=3"] {
            let e = query_pairs(query, &SINGLE).unwrap_err();
            assert_eq!(e.code, HttpCode::InvalidFilters.into(), "{query}");
            assert!(e.message.contains("more than once"), "{query}: {}", e.message);
        }
        let flood = vec!["status=running"; MAX_PARAMETERS + 1].join("&");
        let e = query_pairs(&flood, &SINGLE).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (HttpCode::InvalidFilters.into(), "the query has 33 parameters; at most 32 are accepted")
        );
        assert_eq!(query_pairs(&vec!["status=running"; MAX_PARAMETERS].join("&"), &SINGLE).unwrap().len(), 32);
        assert_eq!(query_pairs("", &SINGLE).unwrap(), vec![]);
    }

    #[test]
    fn the_next_link_keeps_the_query_and_moves_before() {
        let link =
            next_link("/api/0.6/execution", &q(&[("status", "cleaning up"), ("before", "9"), ("limit", "2")]), 7);
        assert_eq!(link, "</api/0.6/execution?status=cleaning%20up&limit=2&before=7>; rel=\"next\"");
    }
}
