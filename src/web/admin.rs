//! Administrators' pages: users (list, create, change role, delete) and the platform (capacity,
//! use, the queue), and the audit record. Anyone else gets the same 404 page as for a page that does not exist.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use zoe_actors::logic::views;
use zoe_actors::state_actor::{CreateUser, DeleteUser, UpdateUser};
use zoe_actors::Code;
use zoe_checkpoints::Role;

use super::page::{
    render, see_other, sentence, show_bytes, show_duration, tell, Layout, PageResult, Posted, WebError, WebUser,
};
use super::rows::{ExecutionRow, UserRow};
use crate::auth::MAX_PASSWORD_BYTES;
use crate::error::{ApiError, HttpCode};
use crate::AppData;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(users))
        .route("/admin/users", web::post().to(create_user))
        .route("/admin/users/{name}/role", web::post().to(change_role))
        .route("/admin/users/{name}/delete", web::post().to(delete_user))
        .route("/admin/platform", web::get().to(platform))
        .route("/admin/audit", web::get().to(audit));
}

/// The error page of a refusal; a page only administrators may see does not exist for the
/// others, as the API says of objects one may not see.
fn refusal(user: &WebUser, e: impl Into<ApiError>) -> WebError {
    let e = e.into();
    if e.is(Code::AdminOnly) {
        user.not_found("such page")
    } else {
        user.error(e)
    }
}

const ROLES: [&str; 3] = ["user", "guest", "admin"];

// ----------------------------------------------------------------------------------- users

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    roles: [&'static str; 3],
    /// What the create form keeps (never the password).
    name: String,
    role: String,
    /// The outcome of the last action, from the redirect.
    notice: String,
    error: String,
}

#[derive(serde::Deserialize, Default)]
struct Notice {
    created: Option<String>,
    changed: Option<String>,
    deleted: Option<String>,
}

impl Notice {
    fn text(&self) -> String {
        match (&self.created, &self.changed, &self.deleted) {
            (Some(n), _, _) => format!("User {n} was created."),
            (_, Some(n), _) => format!("The role of {n} was changed."),
            (_, _, Some(n)) => format!("User {n} was deleted."),
            _ => String::new(),
        }
    }
}

/// The users page, with what a refused form keeps.
async fn users_page(
    user: &WebUser,
    data: &AppData,
    name: String,
    role: String,
    notice: String,
    error: String,
    status: StatusCode,
) -> PageResult {
    let list = views::users(&data.reader.now(), &user.caller).map_err(|e| refusal(user, e))?;
    let mut users: Vec<UserRow> = list.into_iter().map(UserRow).collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let measured = futures_util::future::join_all(users.iter().map(|u| data.workspaces.usage(&u.name, u.role))).await;
    for (u, w) in users.iter_mut().zip(measured) {
        u.0.workspace = w;
    }
    let page = UsersPage { layout: user.layout.at("users"), users, roles: ROLES, name, role, notice, error };
    Ok(render(&page, status))
}

async fn users(data: web::Data<AppData>, user: WebUser, notice: web::Query<Notice>) -> PageResult {
    users_page(&user, &data, String::new(), "user".into(), notice.text(), String::new(), StatusCode::OK).await
}

#[derive(serde::Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

fn role_of(role: &str) -> Result<Role, ApiError> {
    Role::parse(role)
        .ok_or_else(|| ApiError::new(HttpCode::InvalidRole, format!("role {role:?} is not one of admin, user, guest")))
}

async fn create_user(data: web::Data<AppData>, Posted { user, form }: Posted<CreateForm>) -> PageResult {
    let name = form.name.trim().to_string();
    zoe_actors::logic::access::admin_only(&data.reader.now().state, &user.caller, "create users")
        .map_err(|e| refusal(&user, e))?;
    let created = async {
        let role = role_of(&form.role)?;
        if form.password.is_empty() || form.password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::new(
                HttpCode::InvalidRequest,
                format!("the password must be 1 to {MAX_PASSWORD_BYTES} bytes long"),
            ));
        }
        crate::passwords::check_new_password(&form.password, data.config.min_password_length)?;
        let password_hash = data.auth.passwords.hash(form.password.clone()).await?;
        let msg = CreateUser { caller: user.caller.clone(), name: name.clone(), role, password_hash };
        tell(&data, msg).await
    };
    match created.await {
        Ok(_) => Ok(see_other(&format!("/admin/users?created={}", crate::percent::encode(&name)))),
        Err(e) => {
            let status = crate::error::status_of(e.code);
            users_page(&user, &data, name, form.role, String::new(), sentence(&e.message), status).await
        }
    }
}

#[derive(serde::Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn change_role(
    data: web::Data<AppData>,
    name: web::Path<String>,
    Posted { user, form }: Posted<RoleForm>,
) -> PageResult {
    let name = name.into_inner();
    let changed = async {
        let role = role_of(&form.role)?;
        let msg = UpdateUser { caller: user.caller.clone(), name: name.clone(), role: Some(role), password_hash: None };
        tell(&data, msg).await
    };
    match changed.await {
        Ok(_) => Ok(see_other(&format!("/admin/users?changed={}", crate::percent::encode(&name)))),
        Err(e) => refused(&user, &data, e).await,
    }
}

async fn delete_user(
    data: web::Data<AppData>,
    name: web::Path<String>,
    // The form carries nothing but its token.
    Posted { user, form: _ }: Posted<serde::de::IgnoredAny>,
) -> PageResult {
    let name = name.into_inner();
    match tell(&data, DeleteUser { caller: user.caller.clone(), name: name.clone() }).await {
        Ok(()) => Ok(see_other(&format!("/admin/users?deleted={}", crate::percent::encode(&name)))),
        Err(e) => refused(&user, &data, e).await,
    }
}

/// The users page with a refusal on top; a missing user is a 404 page.
async fn refused(user: &WebUser, data: &AppData, e: ApiError) -> PageResult {
    if e.is(Code::NoSuchUser) || e.is(Code::AdminOnly) {
        return Err(refusal(user, e));
    }
    let status = crate::error::status_of(e.code);
    users_page(user, data, String::new(), "user".into(), String::new(), sentence(&e.message), status).await
}

// -------------------------------------------------------------------------------- platform

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage {
    layout: Layout,
    engine: String,
    engine_version: String,
    healthy: bool,
    containers: u64,
    containers_running: u64,
    images: u64,
    memory_reserved: u64,
    memory_total: u64,
    memory_text: String,
    cores_reserved: f64,
    cores_total: f64,
    cores_text: String,
    waiting: u64,
    starting: u64,
    running: u64,
    queue: Vec<QueueRow>,
}

struct QueueRow {
    position: usize,
    e: ExecutionRow,
    waited: String,
}

async fn platform(data: web::Data<AppData>, user: WebUser) -> PageResult {
    let r = &data.reader;
    let overview = views::platform_overview(&r.now(), &r.scheduler, &user.caller, time::OffsetDateTime::now_utc())
        .map_err(|e| refusal(&user, e))?;
    let (platform, scheduler) = (&overview.platform, &overview.scheduler);
    let node = platform.nodes.first();
    let (memory_reserved, memory_total) = (platform.memory_reserved, platform.memory_total);
    let (cores_reserved, cores_total) = (platform.cores_reserved, f64::from(platform.cores_total));
    let queue: Vec<QueueRow> = overview
        .queue
        .into_iter()
        .map(|e| QueueRow {
            position: e.queue_position.unwrap_or(0),
            waited: show_duration(&e.time_scheduled, None),
            e: ExecutionRow(e),
        })
        .collect();
    let page = PlatformPage {
        layout: user.layout.at("platform"),
        engine: node.map(|n| n.name.clone()).unwrap_or_default(),
        engine_version: node.map(|n| n.server_version.clone()).unwrap_or_default(),
        healthy: node.is_some_and(|n| n.status == "healthy"),
        containers: platform.container_count,
        containers_running: node.map_or(0, |n| n.container_count),
        images: platform.image_count.unwrap_or(0),
        memory_text: format!("{} of {}", show_bytes(memory_reserved), show_bytes(memory_total)),
        memory_reserved,
        memory_total,
        cores_text: format!("{cores_reserved:.1} of {cores_total:.0}"),
        cores_reserved,
        cores_total,
        waiting: scheduler.count_waiting as u64,
        starting: scheduler.count_starting as u64,
        running: scheduler.count_running as u64,
        queue,
    };
    Ok(render(&page, StatusCode::OK))
}

// ----------------------------------------------------------------------------------- audit

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    events: Vec<AuditRow>,
    keep: usize,
}

/// An audit event as shown; askama escapes the user name, which may be made up.
struct AuditRow {
    time: String,
    kind: &'static str,
    user: String,
    address: String,
    detail: String,
}

/// The newest events shown on the page.
const AUDIT_SHOWN: usize = 500;

async fn audit(data: web::Data<AppData>, user: WebUser) -> PageResult {
    zoe_actors::logic::access::admin_only(&data.reader.now().state, &user.caller, "see the audit record")
        .map_err(|e| refusal(&user, e))?;
    let page = AuditPage {
        layout: user.layout.at("audit"),
        events: (data.auth.audit.newest(AUDIT_SHOWN).into_iter())
            .map(|e| AuditRow {
                time: super::rows::show_time(&e.time),
                kind: e.kind.as_str(),
                user: e.user,
                address: e.address,
                detail: e.detail,
            })
            .collect(),
        keep: data.config.audit_keep,
    };
    Ok(render(&page, StatusCode::OK))
}
