//! The REST API under `/api/0.6`, in the shapes of Zoe 0.9.7. Each handler authenticates,
//! parses, sends one message to the state actor and maps the reply.

use actix_web::http::header::ContentType;
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use zoe_actors::logic::access;
use zoe_actors::logic::tokens::{self, TokenView};
use zoe_actors::logic::views::{self, UserView};
use zoe_actors::state_actor::{
    CreateToken, CreateUser, DeleteUser, RevokeToken, SubmitExecution, TerminateExecution, UpdateUser,
};
use zoe_actors::Code;

use crate::audit::Kind;
use crate::auth::Authed;
use crate::body::read_limited;
use crate::error::{ApiError, ErrorBody, HttpCode};
use crate::logs::{service_log, ServiceLog};
use crate::requests::{query_params, strict_json_error, NewExecution, NewToken, NewUser, QueryRequest, UserUpdate};
use crate::responses::{AdminOnly, ChangeRefusals, GrowthRefusals, NoSuchUser, ReadRefusals, TooLarge};
use crate::AppData;

pub mod workspace;

/// The API's base path.
pub const BASE: &str = "/api/0.6";
/// Zoe 0.9.7's API version, kept so its clients work.
pub const API_VERSION: &str = "0.6";
/// The application description format this master reads.
pub const APPLICATION_FORMAT_VERSION: u32 = 2;

type ApiResult = Result<HttpResponse, ApiError>;

/// `GET /info`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"version": "0.1.0", "api_version": "0.6", "application_format_version": 2, "deployment_name": "dev"}))]
pub struct Info {
    /// The master's version.
    pub version: String,
    /// Always "0.6".
    pub api_version: String,
    /// Always 2.
    pub application_format_version: u32,
    pub deployment_name: String,
}

/// `201` of `POST /user`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserCreated {
    pub user: UserView,
}

/// `201` of `POST /token`: the only time the token is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "laptop", "token": "zoe_2_q0Jd3...", "expires": "2027-02-23T12:00:00Z"}))]
pub struct TokenCreated {
    pub name: String,
    /// Send it as `Authorization: Bearer <token>`. Zoe keeps only a hash of it.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: zoe_checkpoints::Timestamp,
}

query_params! {
    /// `?user=` of the token operations.
    pub struct TokenOwner {
        /// Another user's tokens (administrators only; others get `no_such_user`).
        pub user: Option<String>,
    }
}

/// `{name}` of `/user/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserName {
    /// The user's name
    pub name: String,
}

/// `{id}` of `/execution/{id}`, as the URL gives it: the handler parses it (`parse_id`), so
/// that what is not a number is `no_such_execution`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExecutionId {
    /// The execution's id
    #[param(value_type = u64)]
    pub id: String,
}

/// `{id}` of `/service/{id}` and `/service/{id}/logs`, parsed as [`ExecutionId`] is
/// (`no_such_service`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ServiceId {
    /// The service's id
    #[param(value_type = u64)]
    pub id: String,
}

/// `201` of `POST /execution`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionCreated {
    pub execution_id: u64,
}

/// Now, for the views.
fn now() -> zoe_checkpoints::Timestamp {
    time::OffsetDateTime::now_utc()
}

/// Registers every API route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(BASE)
            .wrap(actix_web::middleware::from_fn(crate::origin::api_guard))
            .app_data(web::QueryConfig::default().error_handler(|e, _req| {
                ApiError::new(HttpCode::InvalidRequest, format!("bad query parameters: {e}")).into()
            }))
            // Resources with a variable part are matched by pattern, which costs: they are
            // grouped under their fixed first segment, so a request tries one pattern at most.
            .service(resource("/info", &[Method::GET]).route(web::get().to(info)))
            .service(
                web::scope("/execution")
                    .service(
                        resource("", &[Method::GET, Method::POST])
                            .route(web::get().to(list_executions))
                            .route(web::post().to(submit_execution)),
                    )
                    .service(
                        resource("/{id}", &[Method::GET, Method::DELETE])
                            .route(web::get().to(get_execution))
                            .route(web::delete().to(terminate_execution)),
                    ),
            )
            .service(
                web::scope("/user").service(resource("", &[Method::POST]).route(web::post().to(create_user))).service(
                    resource("/{name}", &[Method::GET, Method::PUT, Method::DELETE])
                        .route(web::get().to(get_user))
                        .route(web::put().to(update_user))
                        .route(web::delete().to(delete_user)),
                ),
            )
            .service(
                web::scope("/service")
                    .service(resource("/{id}", &[Method::GET]).route(web::get().to(get_service)))
                    .service(resource("/{id}/logs", &[Method::GET]).route(web::get().to(service_logs))),
            )
            .service(resource("/query", &[Method::POST]).route(web::post().to(query)))
            .service(resource("/audit", &[Method::GET]).route(web::get().to(audit)))
            .service(resource("/usage", &[Method::GET]).route(web::get().to(crate::usage::report)))
            .configure(workspace::configure)
            .service(
                web::scope("/token")
                    .service(
                        resource("", &[Method::GET, Method::POST])
                            .route(web::get().to(list_tokens))
                            .route(web::post().to(create_token)),
                    )
                    .service(resource("/{name}", &[Method::DELETE]).route(web::delete().to(revoke_token))),
            ),
    );
}

/// A resource that answers other methods with 405 and an `Allow` header.
fn resource(path: &str, allowed: &'static [Method]) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        crate::error::method_not_allowed(&req, allowed)
    }))
}

/// Answers unknown paths.
pub async fn not_found(req: HttpRequest) -> ApiResult {
    Err(ApiError::new(HttpCode::NotFound, format!("no such endpoint: {} {}", req.method(), req.path())))
}

/// Reads the request body as a JSON object, within the configured size, whatever the
/// content type; a key given twice anywhere in it is refused (`duplicate_key`).
async fn json_body(data: &AppData, payload: web::Payload) -> Result<Map<String, Value>, ApiError> {
    let body = read_limited(payload, data.config.max_body_bytes, "request body").await?;
    if body.is_empty() {
        return Err(ApiError::new(HttpCode::InvalidJson, "the request body is empty; send a JSON object"));
    }
    match zoe_actors::description::strict_json::from_slice(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(HttpCode::InvalidRequest, "the request body must be a JSON object")),
        Err(e) => Err(strict_json_error(e)),
    }
}

fn parse_id(raw: &str, what: Code) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        let noun = if what == Code::NoSuchService { "service" } else { "execution" };
        ApiError::new(what, format!("no such {noun}: {raw:?} (ids are whole numbers)"))
    })
}

#[utoipa::path(
    get,
    path = "/api/0.6/info",
    tag = "platform",
    responses(
        (status = 200, description = "Versions and deployment", body = Info),
        ReadRefusals,
    ),
)]
async fn info(data: web::Data<AppData>, _: Authed) -> ApiResult {
    Ok(HttpResponse::Ok().json(Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: API_VERSION.to_string(),
        application_format_version: APPLICATION_FORMAT_VERSION,
        deployment_name: data.config.deployment_name.clone(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/0.6/user",
    tag = "users",
    request_body = crate::requests::NewUser,
    responses(
        (status = 201, description = "Created", body = UserCreated),
        (status = 400, description = "`invalid_json`, `invalid_request`, `password_too_short`, `invalid_name`, `invalid_role`", body = ErrorBody),
        AdminOnly,
        (status = 409, description = "`user_exists`, `no_uid_left`", body = ErrorBody),
        TooLarge,
        GrowthRefusals,
    ),
)]
async fn create_user(data: web::Data<AppData>, Authed(caller): Authed, payload: web::Payload) -> ApiResult {
    let NewUser { name, role, password } = NewUser::read(&json_body(&data, payload).await?)?;
    crate::passwords::check_new_password(&password, data.config.min_password_length)?;
    access::admin_only(&data.reader.now().state, &caller, "create users")?;
    let password_hash = data.auth.passwords.hash(password).await?;
    let user = data.state.send(CreateUser { caller, name, role, password_hash }).await??;
    Ok(HttpResponse::Created().json(UserCreated { user }))
}

/// `PUT /user/<name>` `{"role"?, "password"?}`: administrators change roles and passwords,
/// users their own password.
#[utoipa::path(
    put,
    path = "/api/0.6/user/{name}",
    tag = "users",
    params(UserName),
    request_body = crate::requests::UserUpdate,
    responses(
        (status = 200, description = "The changed user", body = UserView),
        (status = 400, description = "`invalid_json`, `invalid_request`, `password_too_short`, `invalid_role`", body = ErrorBody),
        (status = 403, description = "`admin_only`: only administrators change roles and others' passwords", body = ErrorBody),
        NoSuchUser,
        (status = 409, description = "`last_admin`, `directory_user` (a password change for a user of the directory)", body = ErrorBody),
        TooLarge,
        GrowthRefusals,
    ),
)]
async fn update_user(
    data: web::Data<AppData>,
    Authed(caller): Authed,
    name: web::Path<UserName>,
    payload: web::Payload,
) -> ApiResult {
    let UserUpdate { role, password } = UserUpdate::read(&json_body(&data, payload).await?)?;
    let password_hash = match password {
        Some(p) => {
            crate::passwords::check_new_password(&p, data.config.min_password_length)?;
            Some(data.auth.passwords.hash(p).await?)
        }
        None => None,
    };
    let user = data.state.send(UpdateUser { caller, name: name.into_inner().name, role, password_hash }).await??;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(
    get,
    path = "/api/0.6/user/{name}",
    tag = "users",
    params(UserName),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "`no_such_user` (also for a user the caller may not see)", body = ErrorBody),
        ReadRefusals,
    ),
)]
async fn get_user(data: web::Data<AppData>, Authed(caller): Authed, name: web::Path<UserName>) -> ApiResult {
    let mut user = views::get_user(&data.reader.now(), &caller, &name.name)?;
    user.workspace = data.workspaces.usage(&user.name, user.role).await;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(
    delete,
    path = "/api/0.6/user/{name}",
    tag = "users",
    params(UserName),
    responses(
        (status = 204, description = "Deleted; their executions stay in the history"),
        NoSuchUser,
        (status = 409, description = "`user_has_active_executions`, `last_admin`", body = ErrorBody),
        GrowthRefusals,
    ),
)]
async fn delete_user(data: web::Data<AppData>, Authed(caller): Authed, name: web::Path<UserName>) -> ApiResult {
    data.state.send(DeleteUser { caller, name: name.into_inner().name }).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/0.6/token",
    tag = "users",
    params(TokenOwner),
    request_body = crate::requests::NewToken,
    responses(
        (status = 201, description = "The token, shown this once", body = TokenCreated),
        (status = 400, description = "`invalid_token_name`, `invalid_expires_days`, `invalid_json`, `invalid_request`", body = crate::error::ErrorBody),
        (status = 404, description = "`no_such_user` (`?user=` of another user, for a non-administrator)", body = crate::error::ErrorBody),
        (status = 409, description = "`token_exists`, `too_many_tokens` (20 per user)", body = crate::error::ErrorBody),
        GrowthRefusals,
    ),
)]
async fn create_token(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    owner: web::Query<TokenOwner>,
    payload: web::Payload,
) -> ApiResult {
    let NewToken { name, expires_days } = NewToken::read(&json_body(&data, payload).await?)?;
    let who = caller.name.clone();
    // The token names its user's id (which the actor checks the caller may act for).
    let owner_id = match owner.user.as_deref() {
        Some(n) => data.reader.now().state.user_by_name(n).map_or(caller.id, |u| u.id),
        None => caller.id,
    };
    let token = crate::auth::new_token(owner_id);
    let hash = zoe_checkpoints::token_hash(&token);
    let owner = owner.into_inner().user;
    let view = data.state.send(CreateToken { caller, owner: owner.clone(), name, hash, expires_days }).await??;
    data.auth.record_token(&req, &data.config.trusted_proxy, Kind::TokenCreated, &who, &view.name, owner.as_deref());
    Ok(HttpResponse::Created().json(TokenCreated { name: view.name, token, expires: view.expires }))
}

#[utoipa::path(
    get,
    path = "/api/0.6/token",
    tag = "users",
    params(TokenOwner),
    responses(
        (status = 200, description = "The tokens (never the tokens themselves, nor their hashes)", body = [TokenView]),
        NoSuchUser,
        crate::responses::AuthRefusals,
    ),
)]
async fn list_tokens(data: web::Data<AppData>, Authed(caller): Authed, owner: web::Query<TokenOwner>) -> ApiResult {
    Ok(HttpResponse::Ok().json(tokens::tokens(&data.reader.now(), &caller, owner.user.as_deref())?))
}

#[utoipa::path(
    delete,
    path = "/api/0.6/token/{name}",
    tag = "users",
    params(
        ("name" = String, Path, description = "The token's name"),
        TokenOwner,
    ),
    responses(
        (status = 204, description = "Revoked: it is refused from now on"),
        (status = 404, description = "`no_such_token`, `no_such_user`", body = crate::error::ErrorBody),
        ChangeRefusals,
    ),
)]
async fn revoke_token(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    name: web::Path<String>,
    owner: web::Query<TokenOwner>,
) -> ApiResult {
    let who = caller.name.clone();
    let owner = owner.into_inner().user;
    let name = name.into_inner();
    data.state.send(RevokeToken { caller, owner: owner.clone(), name: name.clone() }).await??;
    data.auth.record_token(&req, &data.config.trusted_proxy, Kind::TokenRevoked, &who, &name, owner.as_deref());
    Ok(HttpResponse::NoContent().finish())
}

query_params! {
    /// `?limit=` of `GET /audit`.
    pub struct AuditQuery {
        /// At most this many events (1 to 10000; default 100), the newest.
        pub limit: Option<usize>,
    }
}

const MAX_AUDIT_LIMIT: usize = 10_000;

#[utoipa::path(
    get,
    path = "/api/0.6/audit",
    tag = "users",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest sign-ins, failed sign-ins, token creations and revocations, newest first (in memory only: lost at a restart)", body = [crate::audit::Event]),
        (status = 400, description = "`invalid_request`: bad limit", body = crate::error::ErrorBody),
        AdminOnly,
        crate::responses::AuthRefusals,
    ),
)]
async fn audit(data: web::Data<AppData>, Authed(caller): Authed, q: web::Query<AuditQuery>) -> ApiResult {
    access::admin_only(&data.reader.now().state, &caller, "see the audit record")?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(ApiError::new(HttpCode::InvalidRequest, format!("limit must be 1 to {MAX_AUDIT_LIMIT}")));
    }
    Ok(HttpResponse::Ok().json(data.auth.audit.newest(limit)))
}

#[utoipa::path(
    get,
    path = "/api/0.6/execution",
    tag = "executions",
    params(
        ("status" = Option<views::Status>, Query, description = "Only executions with this status (repeat the parameter, or separate statuses with commas, for several)"),
        ("name" = Option<String>, Query, description = "Only executions with exactly this name"),
        ("owner" = Option<String>, Query, description = "Only executions of this user"),
        ("since" = Option<String>, Query, description = "Only executions submitted at or after this time (RFC 3339)"),
        ("before" = Option<u64>, Query, description = "Only executions with a lower id (the next page of a limited listing)"),
        ("limit" = Option<usize>, Query, description = "At most this many (1 to 10000): the newest that match, in id order; when older ones match too, a `Link: <...>; rel=\"next\"` header gives the URL of the next page"),
    ),
    responses(
        (status = 200, description = "The caller's executions that match (all of them, with all history, without parameters: as 0.9.7), in id order, archived ones included", body = [views::ExecutionView]),
        (status = 400, description = "`invalid_request`: unknown status or parameter, bad time, id or limit; `invalid_filters`: a parameter other than `status` given twice, or more than 32 parameters", body = ErrorBody),
        ReadRefusals,
    ),
)]
async fn list_executions(req: HttpRequest, data: web::Data<AppData>, Authed(caller): Authed) -> ApiResult {
    let pairs = crate::listing::query_pairs(req.query_string(), &crate::listing::SINGLE)?;
    let filter = crate::listing::parse(&pairs)?;
    let r = &data.reader;
    let p = r.now();
    let listing = views::list_executions(&p, &r.scheduler, &caller, &filter, now())?;
    crate::listing::respond(p, r.json.clone(), listing, req.path(), &pairs)
}

#[utoipa::path(
    post,
    path = "/api/0.6/execution",
    tag = "executions",
    request_body = crate::requests::NewExecution,
    responses(
        (status = 201, description = "Queued and checkpointed", body = ExecutionCreated),
        (status = 400, description = "`invalid_json`, `invalid_request`, `exceeds_capacity`, or a description code (`missing_field`, `wrong_type`, ...) naming the field", body = ErrorBody),
        (status = 402, description = "`quota_exceeded`: a quota of the role, or the workspace over its quota", body = ErrorBody),
        (status = 409, description = "`execution_name_in_use`", body = ErrorBody),
        TooLarge,
        GrowthRefusals,
    ),
)]
async fn submit_execution(data: web::Data<AppData>, Authed(caller): Authed, payload: web::Payload) -> ApiResult {
    data.limits.submission(&caller, std::time::Instant::now())?;
    let (name, application) = NewExecution::read(&json_body(&data, payload).await?, data.config.max_description_bytes)?;
    data.workspaces.admit(&caller).await?;
    let id = data.state.send(SubmitExecution { caller, name, application }).await??;
    Ok(HttpResponse::Created().json(ExecutionCreated { execution_id: id }))
}

#[utoipa::path(
    get,
    path = "/api/0.6/execution/{id}",
    tag = "executions",
    params(ExecutionId),
    responses(
        (status = 200, description = "The execution (with `queue_position` while waiting)", body = views::ExecutionView),
        (status = 404, description = "`no_such_execution` (also for one the caller may not see)", body = ErrorBody),
        ReadRefusals,
    ),
)]
async fn get_execution(data: web::Data<AppData>, Authed(caller): Authed, id: web::Path<ExecutionId>) -> ApiResult {
    let id = parse_id(&id.id, Code::NoSuchExecution)?;
    let r = &data.reader;
    let e = views::get_execution(&r.now(), &r.scheduler, &caller, id, now())?.json(&r.json)?;
    Ok(HttpResponse::Ok().content_type(ContentType::json()).body(web::Bytes::from_owner(e)))
}

#[utoipa::path(
    delete,
    path = "/api/0.6/execution/{id}",
    tag = "executions",
    params(ExecutionId),
    responses(
        (status = 204, description = "Terminated if it was active; the record is kept"),
        (status = 404, description = "`no_such_execution`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`", body = ErrorBody),
        ChangeRefusals,
    ),
)]
async fn terminate_execution(
    data: web::Data<AppData>,
    Authed(caller): Authed,
    id: web::Path<ExecutionId>,
) -> ApiResult {
    let id = parse_id(&id.id, Code::NoSuchExecution)?;
    data.state.send(TerminateExecution { caller, id }).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/0.6/service/{id}",
    tag = "services",
    params(ServiceId),
    responses(
        (status = 200, description = "The service", body = views::ServiceView),
        (status = 404, description = "`no_such_service`", body = ErrorBody),
        ReadRefusals,
    ),
)]
async fn get_service(data: web::Data<AppData>, Authed(caller): Authed, id: web::Path<ServiceId>) -> ApiResult {
    let id = parse_id(&id.id, Code::NoSuchService)?;
    Ok(HttpResponse::Ok().json(views::get_service(&data.reader.now(), &caller, id)?))
}

#[utoipa::path(
    post,
    path = "/api/0.6/query",
    tag = "platform",
    request_body = crate::requests::QueryRequest,
    responses(
        (status = 200, description = "The matches (all filters must match exactly), or `{\"stats\": ...}`", body = views::QueryAnswer),
        (status = 400, description = "`invalid_json`, `invalid_request`, `unknown_query`, `invalid_filters`", body = ErrorBody),
        TooLarge,
        ReadRefusals,
    ),
)]
async fn query(data: web::Data<AppData>, Authed(caller): Authed, payload: web::Payload) -> ApiResult {
    let QueryRequest { what, filters } = QueryRequest::read(&json_body(&data, payload).await?)?;
    let filters = filters.unwrap_or_default();
    let (p, scheduler) = (data.reader.now(), data.reader.scheduler.clone());
    // Executions may be read from the archive on disk: off the async threads.
    let answer = web::block(move || views::query(&p, &scheduler, &caller, what, &filters, now()))
        .await
        .map_err(|e| ApiError::new(HttpCode::Internal, format!("the query did not finish: {e}")))??;
    Ok(HttpResponse::Ok().json(answer))
}

/// `?follow=true&tail=N` of a log: each at most once (other parameters are ignored).
fn log_params(query: &str) -> Result<(bool, Option<u64>), ApiError> {
    let (mut follow, mut tail) = (false, None);
    for (key, value) in crate::listing::query_pairs(query, &["follow", "tail"])? {
        match key.as_str() {
            "follow" => {
                follow = value.parse().map_err(|_| {
                    ApiError::new(HttpCode::InvalidRequest, format!("follow {value:?} is not true or false"))
                })?
            }
            "tail" => {
                tail = Some(value.parse().map_err(|_| {
                    ApiError::new(HttpCode::InvalidRequest, format!("tail {value:?} is not a number of lines"))
                })?)
            }
            _ => {}
        }
    }
    Ok((follow, tail))
}

/// `GET /service/<id>/logs`: the live log of a running container (streamed, `?follow=true` to
/// keep following), or the tail kept when it was removed.
#[utoipa::path(
    get,
    path = "/api/0.6/service/{id}/logs",
    tag = "services",
    params(
        ServiceId,
        ("follow" = Option<bool>, Query, description = "Keep the response open and send new lines as they come"),
        ("tail" = Option<u64>, Query, description = "Only the last N lines"),
    ),
    responses(
        (status = 200, description = "The live log (streamed with `follow`), or the tail kept after removal", content_type = "text/plain", body = String),
        (status = 400, description = "`invalid_request`: bad query parameters; `invalid_filters`: one given twice, or more than 32", body = ErrorBody),
        (status = 404, description = "`no_such_service`, `not_found` (no log kept)", body = ErrorBody),
        ReadRefusals,
    ),
)]
async fn service_logs(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    id: web::Path<ServiceId>,
) -> ApiResult {
    let id = parse_id(&id.id, Code::NoSuchService)?;
    let (follow, tail) = log_params(req.query_string())?;
    Ok(log_response(service_log(&data, caller, id, follow, tail).await?))
}

/// A service's log as a plain-text response.
fn log_response(log: ServiceLog) -> HttpResponse {
    match log {
        ServiceLog::Live(stream) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(stream),
        ServiceLog::Kept(bytes) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(bytes),
    }
}
