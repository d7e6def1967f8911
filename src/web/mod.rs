//! The web interface: server-rendered HTML pages served by the master on the API's port. A
//! browser signs in at `/login` and gets a session cookie ([`crate::web_sessions`]); browsers that
//! send the API's HTTP basic auth keep working, and a page asked for with neither sends the
//! browser to `/login?next=<the page>`. No JavaScript build step: every page and every action
//! works without JavaScript (forms, POST then a 303 redirect); a little plain JavaScript only
//! fills the description box from a file or the catalogue, asks before destructive actions and
//! shows an upload's progress.
//!
//! Each handler authenticates ([`page::WebUser`]), reads what it shows in one call to a view of the
//! newest durable state (`zoe_actors::logic::views`, which decides what the caller may see) or
//! sends one change to the state actor, and renders an askama template from `src/web/templates/`.
//! Every state-changing POST carries a per-user anti-CSRF token and is refused when the browser
//! says it comes from another site.
//!
//! | route | page |
//! |---|---|
//! | `GET /` | redirects to `/executions` |
//! | `GET, POST /login`, `POST /logout` | signing in and out |
//! | `GET /executions` | the caller's executions (all of them for an admin) |
//! | `GET, POST /executions/new` | the form that starts an execution |
//! | `GET /executions/<id>` | one execution, its services, endpoints and log links, its CPU and memory over time |
//! | `POST /executions/<id>/terminate`, `/restart` | actions |
//! | `GET /executions/<id>/services/<sid>/log` | the log of one service |
//! | `GET /usage` | CPU and memory used against reserved, per user and day (`?days=N`) |
//! | `GET, POST /admin/users`, `POST /admin/users/<name>/role`, `/delete` | users (admins) |
//! | `GET /admin/platform` | capacity, use and the queue (admins) |
//! | `GET /admin/audit` | sign-ins, failures, token creations and revocations (admins) |
//! | `GET /workspace?path=`, `POST /workspace/upload` | a workspace folder; the upload (multipart) |
//! | `GET, POST /workspace/delete?path=` | a deletion's confirmation, the deletion |

mod admin;
pub mod catalogue;
pub mod chart;
mod login;
mod multipart;
mod page;
mod rows;
mod tokens;
mod usage;
mod workspace;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde_json::Value;
use zoe_actors::logic::history::ListFilter;
use zoe_actors::logic::views;
use zoe_actors::state_actor::{SubmitExecution, TerminateExecution};
use zoe_actors::Code;
use zoe_checkpoints::Application;

use crate::error::{ApiError, ErrorCode, HttpCode};
use crate::logs::{self, ServiceLog};
use crate::AppData;
use catalogue::{Entry, CATALOGUE};
use page::{render, see_other, Layout, PageResult, Posted, WebUser};
use rows::{ExecutionRow, ServiceRow};

/// Lines of a service log shown on its page.
const LOG_LINES: u64 = 500;

/// Registers the web pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/static/zoe.css", web::get().to(css))
        .route("/static/zoe.js", web::get().to(js))
        .route("/executions", web::get().to(executions))
        .route("/executions/new", web::get().to(new_execution))
        .route("/executions/new", web::post().to(submit_execution))
        .route("/executions/{id}", web::get().to(execution))
        .route("/executions/{id}/terminate", web::post().to(terminate))
        .route("/executions/{id}/restart", web::post().to(restart))
        .route("/executions/{id}/services/{sid}/log", web::get().to(service_log))
        .route("/usage", web::get().to(usage::usage_page))
        .configure(admin::configure)
        .configure(login::configure)
        .configure(tokens::configure)
        .configure(workspace::configure);
}

async fn home() -> HttpResponse {
    see_other("/executions")
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("static/zoe.css"))
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("static/zoe.js"))
}

/// An id from the path; anything else is a page that does not exist.
fn parse_id(user: &WebUser, raw: &str) -> Result<u64, page::WebError> {
    raw.parse().map_err(|_| user.not_found("such page"))
}

/// The execution `id`, if the caller may see it.
fn one_execution(user: &WebUser, data: &AppData, id: u64) -> Result<views::OneExecution, page::WebError> {
    views::get_execution(&data.reader.now(), &data.reader.scheduler, &user.caller, id, now()).map_err(|e| user.error(e))
}

/// The execution `id` with every one of its services (the API lists only live ones), if the
/// caller may see it.
fn execution_rows(user: &WebUser, data: &AppData, id: u64) -> Result<(ExecutionRow, Vec<ServiceRow>), page::WebError> {
    let one = one_execution(user, data, id)?;
    Ok((ExecutionRow(one.view()), one.services().into_iter().map(ServiceRow).collect()))
}

fn now() -> zoe_checkpoints::Timestamp {
    time::OffsetDateTime::now_utc()
}

// ---------------------------------------------------------------------------------- executions

#[derive(Template)]
#[template(path = "executions.html")]
struct ExecutionsPage {
    layout: Layout,
    /// The signed-in user's workspace: its use of the quota.
    workspace: Option<zoe_actors::backend::workspace::WorkspaceUse>,
    executions: Vec<ExecutionRow>,
    refresh: bool,
    /// When older executions were left out: where the next page starts.
    older: Option<u64>,
}

/// Executions on one page of the list (newest first; older ones on the next page).
const EXECUTIONS_PER_PAGE: usize = 100;

/// `?before=<id>`: the next page of the list.
#[derive(serde::Deserialize)]
struct PageQuery {
    before: Option<u64>,
}

async fn executions(data: web::Data<AppData>, user: WebUser, page: web::Query<PageQuery>) -> PageResult {
    let filter = ListFilter { before: page.before, limit: Some(EXECUTIONS_PER_PAGE), ..ListFilter::default() };
    let p = data.reader.now();
    let scheduler = data.reader.scheduler.clone();
    let caller = user.caller.clone();
    // Older pages are read from the archive on disk.
    let list = web::block(move || {
        let list = views::list_executions(&p, &scheduler, &caller, &filter, now())?;
        Ok::<_, zoe_actors::ZoeError>((list.views(&p)?, list.selection.older))
    })
    .await
    .map_err(|e| user.error(zoe_actors::ZoeError::new(zoe_actors::Code::Unavailable, e.to_string())))?
    .map_err(|e| user.error(e))?;
    let (items, older) = list;
    let mut executions: Vec<ExecutionRow> = items.into_iter().map(ExecutionRow).collect();
    executions.reverse();
    let refresh = executions.iter().any(ExecutionRow::is_moving);
    let workspace = data.workspaces.usage(&user.caller.name, user.caller.role).await;
    Ok(render(
        &ExecutionsPage { layout: user.layout.at("executions"), workspace, executions, refresh, older },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    layout: Layout,
    e: ExecutionRow,
    services: Vec<ServiceRow>,
    /// While it runs under an idle limit: how long until it is terminated unless used.
    idle_left: String,
    /// Its CPU and memory over time, as `<svg>` elements (escaped by [`chart`]).
    charts: Vec<String>,
}

async fn execution(data: web::Data<AppData>, user: WebUser, id: web::Path<String>) -> PageResult {
    let id = parse_id(&user, &id)?;
    let one = one_execution(&user, &data, id)?;
    let charts = usage::execution_charts(&one.execution, now().unix_timestamp());
    let (e, services) = (ExecutionRow(one.view()), one.services().into_iter().map(ServiceRow).collect());
    let idle_left = data.activity.left(id).map(|d| rows::duration_words(d.as_secs())).unwrap_or_default();
    let page = ExecutionPage { layout: user.layout.at("executions"), e, services, idle_left, charts };
    Ok(render(&page, StatusCode::OK))
}

/// The form of a button that acts on an execution.
#[derive(serde::Deserialize)]
struct ActionForm {
    /// The page to go back to.
    #[serde(default)]
    next: String,
}

/// Only pages of this interface are places to go back to.
fn back_to(next: &str, id: u64) -> String {
    let local = next.starts_with("/executions")
        && !next.contains("//")
        && next.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_'));
    if local {
        next.to_string()
    } else {
        format!("/executions/{id}")
    }
}

async fn terminate(
    data: web::Data<AppData>,
    id: web::Path<String>,
    Posted { user, form }: Posted<ActionForm>,
) -> PageResult {
    let id = parse_id(&user, &id)?;
    user.ask(&data, TerminateExecution { caller: user.caller.clone(), id }).await?;
    Ok(see_other(&back_to(&form.next, id)))
}

/// Submits the application of an ended execution again, under the same name.
async fn restart(
    data: web::Data<AppData>,
    id: web::Path<String>,
    Posted { user, form: _ }: Posted<ActionForm>,
) -> PageResult {
    let id = parse_id(&user, &id)?;
    let (old, _) = execution_rows(&user, &data, id)?;
    data.workspaces.admit(&user.caller).await.map_err(|e| user.error(e))?;
    let msg =
        SubmitExecution { caller: user.caller.clone(), name: old.name.clone(), application: old.application.clone() };
    let new_id = user.ask(&data, msg).await?;
    Ok(see_other(&format!("/executions/{new_id}")))
}

// ------------------------------------------------------------------------------- new execution

#[derive(Template)]
#[template(path = "new_execution.html")]
struct NewExecutionPage {
    layout: Layout,
    catalogue: &'static [Entry],
    form: NewExecutionForm,
    /// A problem with the name, shown next to it.
    name_error: String,
    /// Where in the description the problem is (`application.services[0].name`).
    description_path: String,
    /// A problem with the description, shown next to it.
    description_error: String,
    /// Any other problem, shown above the form.
    error: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NewExecutionForm {
    #[serde(default)]
    name: String,
    /// A catalogue key; used when `description` is empty.
    #[serde(default)]
    app: String,
    /// The description, as JSON text.
    #[serde(default)]
    description: String,
}

impl NewExecutionPage {
    fn new(layout: &Layout, form: NewExecutionForm) -> Self {
        NewExecutionPage {
            layout: layout.at("new"),
            catalogue: CATALOGUE,
            form,
            name_error: String::new(),
            description_path: String::new(),
            description_error: String::new(),
            error: String::new(),
        }
    }

    /// Puts a refusal next to the field it is about.
    fn with_error(mut self, e: &ApiError) -> Self {
        match e.code {
            ErrorCode::Zoe(Code::InvalidName | Code::ExecutionNameInUse) => self.name_error = e.message.clone(),
            ErrorCode::Zoe(Code::InvalidDescription(_)) | ErrorCode::Http(HttpCode::DescriptionTooLarge) => {
                let (path, message) = e.message.split_once(": ").unwrap_or(("application", &e.message));
                self.description_path = path.to_string();
                self.description_error = message.to_string();
            }
            _ => self.error = page::sentence(&e.message),
        }
        self
    }
}

#[derive(serde::Deserialize)]
struct NewParams {
    /// Preselects a catalogue entry.
    app: Option<String>,
}

async fn new_execution(user: WebUser, params: web::Query<NewParams>) -> PageResult {
    let mut form = NewExecutionForm::default();
    if let Some(entry) = params.app.as_deref().and_then(catalogue::find) {
        form.app = entry.key.to_string();
        form.name = entry.execution_name.to_string();
        form.description = entry.json.to_string();
    }
    Ok(render(&NewExecutionPage::new(&user.layout, form), StatusCode::OK))
}

/// Reads the description of the form: the text box, or the catalogue entry when it is empty.
fn description_of(form: &mut NewExecutionForm, max_bytes: usize) -> Result<Application, ApiError> {
    if form.description.trim().is_empty() {
        match catalogue::find(&form.app) {
            Some(entry) => form.description = entry.json.to_string(),
            None => {
                return Err(ApiError::new(
                    Code::InvalidDescription("missing_field"),
                    "application: paste or upload a description, or pick one from the catalogue",
                ))
            }
        }
    }
    let v: Value = zoe_actors::description::strict_json::from_str(&form.description).map_err(|e| match e {
        zoe_actors::description::strict_json::Error::Syntax(e) => ApiError::new(
            Code::InvalidDescription("invalid_json"),
            format!("application: this is not valid JSON (line {}, column {}: {e})", e.line(), e.column()),
        ),
        zoe_actors::description::strict_json::Error::DuplicateKey(path) => ApiError::new(
            Code::InvalidDescription("duplicate_key"),
            format!(
                "{}: {}",
                zoe_actors::description::strict_json::join("application", &path),
                zoe_actors::description::strict_json::DUPLICATE
            ),
        ),
    })?;
    crate::body::parse_description(&v, max_bytes)
}

async fn submit_execution(data: web::Data<AppData>, Posted { user, mut form }: Posted<NewExecutionForm>) -> PageResult {
    form.name = form.name.trim().to_string();
    data.limits.submission(&user.caller, std::time::Instant::now()).map_err(|e| user.error(e))?;
    let refused = |form: NewExecutionForm, e: ApiError| {
        let status = crate::error::status_of(e.code);
        Ok(render(&NewExecutionPage::new(&user.layout, form).with_error(&e), status))
    };
    let application = match description_of(&mut form, data.config.max_description_bytes) {
        Ok(a) => a,
        Err(e) => return refused(form, e),
    };
    if let Err(e) = data.workspaces.admit(&user.caller).await {
        return refused(form, e.into());
    }
    let msg = SubmitExecution { caller: user.caller.clone(), name: form.name.clone(), application };
    match page::tell(&data, msg).await {
        Ok(id) => Ok(see_other(&format!("/executions/{id}"))),
        Err(e) => refused(form, e),
    }
}

// ------------------------------------------------------------------------------------ logs

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    layout: Layout,
    e: ExecutionRow,
    s: ServiceRow,
    live: bool,
    log: String,
    /// Why there is no log to show.
    note: String,
}

async fn service_log(data: web::Data<AppData>, user: WebUser, ids: web::Path<(String, String)>) -> PageResult {
    let id = parse_id(&user, &ids.0)?;
    let sid = parse_id(&user, &ids.1)?;
    let (row, services) = execution_rows(&user, &data, id)?;
    let s = services.into_iter().find(|s| s.id == sid).ok_or_else(|| user.not_found("such service"))?;
    let live = row.is_active() && s.docker_id.is_some();
    let (log, note) = match logs::service_log(&data, user.caller.clone(), sid, false, Some(LOG_LINES)).await {
        Ok(ServiceLog::Kept(bytes)) => (log_text(&bytes), String::new()),
        Ok(ServiceLog::Live(stream)) => {
            let body = actix_web::body::BodyStream::new(stream);
            match actix_web::body::to_bytes_limited(body, 8 * data.config.log_tail_bytes.max(1 << 20)).await {
                Ok(Ok(bytes)) => (log_text(&bytes), String::new()),
                Ok(Err(e)) => (String::new(), format!("The log could not be read: {e}")),
                Err(_) => (String::new(), "The log is too large to show here.".into()),
            }
        }
        Err(e) if e.code == ErrorCode::Http(HttpCode::NotFound) || e.is(Code::NoSuchService) => {
            (String::new(), "There is no log yet: the container has not started or has written nothing.".into())
        }
        Err(e) => return Err(user.error(e)),
    };
    let note = if note.is_empty() && log.is_empty() { "The log is empty so far.".to_string() } else { note };
    Ok(render(&LogPage { layout: user.layout.at("executions"), e: row, s, live, log, note }, StatusCode::OK))
}

/// A log as the page shows it (its last [`LOG_LINES`] lines: Docker's tail, or the kept one).
fn log_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    #[test]
    fn only_local_pages_are_places_to_go_back_to() {
        assert_eq!(back_to("/executions", 4), "/executions");
        assert_eq!(back_to("/executions/4", 4), "/executions/4");
        assert_eq!(back_to("//evil.example/executions", 4), "/executions/4");
        assert_eq!(back_to("https://evil.example", 4), "/executions/4");
        assert_eq!(back_to("/executions//evil", 4), "/executions/4");
    }

    #[test]
    fn description_errors_name_their_field() {
        let mut form = NewExecutionForm { description: r#"{"name": "x"}"#.into(), ..Default::default() };
        let e = description_of(&mut form, 65536).unwrap_err();
        assert!(e.message.starts_with("application.version: "), "{}", e.message);
        let mut form = NewExecutionForm { description: "{".into(), ..Default::default() };
        assert_eq!(
            description_of(&mut form, 65536).unwrap_err().code,
            ErrorCode::Zoe(Code::InvalidDescription("invalid_json"))
        );
        let mut form = NewExecutionForm { app: "batch".into(), ..Default::default() };
        assert!(description_of(&mut form, 65536).is_ok());
        assert!(form.description.contains("step"));
    }
}
