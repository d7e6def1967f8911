//! `GET /api/0.6/usage`: who used what, per user or per execution, over whole UTC days (the
//! report is made by `zoe_actors::logic::views::usage_report`; this module only reads the
//! request and writes the answer).

use actix_web::{web, HttpResponse};
use zoe_actors::logic::views::{self, UsageQuery};

use crate::auth::Authed;
use crate::error::ErrorBody;
use crate::requests::query_params;
use crate::responses::ReadRefusals;
use crate::AppData;

type ApiResult = Result<HttpResponse, crate::error::ApiError>;

query_params! {
    /// The parameters of `GET /usage`.
    pub struct UsageParams {
        /// The span's start, a Unix time in seconds (default: 30 days before `until`); the report
        /// starts at the beginning of its UTC day.
        pub since: Option<String>,
        /// The span's end, a Unix time in seconds (default: now); the report ends at the end of its
        /// UTC day.
        pub until: Option<String>,
        /// `user` (default): one row per user; `execution`: one row per execution.
        pub by: Option<String>,
    }
}

#[utoipa::path(
    get,
    path = "/api/0.6/usage",
    tag = "platform",
    params(UsageParams),
    responses(
        (status = 200, description = "What the caller's executions (an administrator: everyone's) used and reserved in the span, per user (by name) or per execution (by id). Usage is measured every `usage-interval` seconds and taken as spread evenly over each execution's run", body = [views::UsageRow]),
        (status = 400, description = "`invalid_period`: `since` or `until` not a Unix time in seconds, or `since` not before `until`; `invalid_grouping`: `by` not `user` or `execution`; `invalid_request`: an unknown or repeated parameter", body = ErrorBody),
        ReadRefusals,
    ),
)]
pub async fn report(data: web::Data<AppData>, Authed(caller): Authed, q: web::Query<UsageParams>) -> ApiResult {
    let now = time::OffsetDateTime::now_utc();
    let query = UsageQuery::parse(q.since.as_deref(), q.until.as_deref(), q.by.as_deref(), now)?;
    let rows = views::usage_report(&data.reader.now(), &caller, &query, now)?;
    Ok(HttpResponse::Ok().json(rows))
}
