//! `/api/0.6/workspace/<path>`: the files of the caller's workspace (an administrator's, of
//! anyone's with `?user=`). Reads stream from the disk, uploads stream to it (never whole in
//! memory), each through one blocking thread (`crate::files::stream`); every path is confined
//! to the workspace by the kernel (`crate::files`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::Required;
use utoipa::{IntoParams, PartialSchema};
use zoe_actors::Caller;

use crate::auth::Authed;
use crate::error::{ApiError, ErrorBody, HttpCode};
use crate::file_answers;
use crate::files::{self, Entry, Opened, WsPath};
use crate::requests::query_params;
use crate::responses::{AuthRefusals, NoSuchUser, OutsideWorkspace, ReadRefusals, WorkspaceBusy};
use crate::workspaces::{blocked, Reached};
use crate::AppData;

use super::{resource, ApiResult, BASE};

/// The path of the workspace's files under the API's base.
pub const PREFIX: &str = "/workspace";

/// Registers the routes (inside the API's scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    const METHODS: &[Method] = &[Method::GET, Method::PUT, Method::DELETE];
    let routes = |path: &str| {
        resource(path, METHODS).route(web::get().to(get)).route(web::put().to(put)).route(web::delete().to(delete))
    };
    cfg.service(web::scope(PREFIX).service(routes("")).service(routes("/{path:.*}")));
}

/// The three operations in the document, each at `{path}` under [`BASE`]`/`[`PREFIX`] and tagged
/// `workspace`: [`crate::openapi::ApiDoc`] nests them there, so the prefix and the tag are said
/// once for all three.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get, put, delete))]
pub struct WorkspaceApi;

query_params! {
    /// `?user=`, `?format=`, `?recursive=`.
    #[derive(Default)]
    pub struct WsQuery {
        /// Another user's workspace (administrators only; others get `no_such_user`).
        pub user: Option<String>,
        /// `tar`: a folder as a tar archive (GET).
        pub format: Option<String>,
        /// `true`: remove a folder and everything in it (DELETE).
        pub recursive: Option<bool>,
    }
}

/// The `{path}` parameter of the workspace operations, for the document: the same parameter
/// for each, but for the words saying what the operation's path names (`N`).
pub struct WsPathParam<N>(PhantomData<N>);

/// What a workspace operation's `{path}` names, in the document.
pub trait PathNames {
    const DESCRIPTION: &'static str;
}

impl<N: PathNames> IntoParams for WsPathParam<N> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut path = Parameter::new("path");
        path.parameter_in = ParameterIn::Path;
        path.required = Required::True;
        path.description = Some(N::DESCRIPTION.to_string());
        path.schema = Some(String::schema());
        vec![path]
    }
}

/// Declares the kinds of `{path}` of the workspace operations, each with its description.
macro_rules! path_names {
    ($($(#[$doc:meta])* $name:ident = $description:literal;)+) => {$(
        $(#[$doc])*
        pub enum $name {}

        impl PathNames for $name {
            const DESCRIPTION: &'static str = $description;
        }
    )+};
}

path_names! {
    /// GET: what to read.
    AnyEntry = "A file or folder of the workspace, relative to it (empty: its root)";
    /// PUT: what to write.
    FileToWrite = "The file to write, relative to the workspace";
    /// DELETE: what to remove.
    EntryToRemove = "The file, link or folder to remove, relative to the workspace";
}

/// Extractor: what every workspace operation starts from. The caller and the query (extracted
/// in that order, as handler arguments are), then the workspace path of the URL, then the
/// query checked for what the request's method takes.
pub struct WsTarget {
    req: HttpRequest,
    data: web::Data<AppData>,
    caller: Caller,
    path: WsPath,
    query: WsQuery,
}

impl FromRequest for WsTarget {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let parts = <(web::Data<AppData>, Authed, web::Query<WsQuery>)>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let (data, Authed(caller), query) = parts.await?;
            let path = ws_path(&req)?;
            let query = query.into_inner();
            check_query(req.method(), &query)?;
            Ok(WsTarget { req, data, caller, path, query })
        })
    }
}

impl WsTarget {
    /// The workspace the request is about: the caller's, or that of `?user=`.
    async fn reach(&self) -> Result<Reached, ApiError> {
        self.data.workspaces.reach(&self.data.reader, &self.caller, self.query.user.as_deref()).await
    }
}

/// The workspace path of a request: its raw (still percent-encoded) URL path after the prefix,
/// decoded here once, name by name.
fn ws_path(req: &HttpRequest) -> Result<WsPath, ApiError> {
    let raw = req.uri().path();
    let rest = raw.strip_prefix(BASE).and_then(|p| p.strip_prefix(PREFIX)).unwrap_or_default();
    WsPath::from_url(rest).map_err(|e| ApiError::from(files::FileError::from(e)))
}

/// Refuses the query parameters the method does not take: GET takes `?format=tar` and no
/// other format, PUT neither `?format=` nor `?recursive=`, DELETE no `?format=`.
fn check_query(method: &Method, q: &WsQuery) -> Result<(), ApiError> {
    let refusal = match *method {
        Method::GET => match q.format.as_deref() {
            None | Some("tar") => return Ok(()),
            Some(other) => format!("unknown format {other:?}; the one format is tar"),
        },
        Method::PUT if q.format.is_some() || q.recursive.is_some() => "PUT takes only ?user=".to_string(),
        Method::DELETE if q.format.is_some() => "DELETE takes only ?user= and ?recursive=".to_string(),
        _ => return Ok(()),
    };
    Err(ApiError::new(HttpCode::InvalidRequest, refusal))
}

#[utoipa::path(
    get,
    path = "/{path}",
    params(WsPathParam<AnyEntry>, WsQuery),
    responses(
        (status = 200, description = "A file's bytes (`application/octet-stream`, with `Content-Length`, `Last-Modified`, `Accept-Ranges: bytes`); a folder's entries (JSON); a folder as a tar archive with `format=tar` (`application/x-tar`)", body = [Entry]),
        (status = 206, description = "The range asked for with `Range: bytes=...` (one range)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`invalid_path` (`..`, `.`, an encoded `/` or NUL), `invalid_request`", body = ErrorBody),
        OutsideWorkspace,
        (status = 404, description = "`no_such_file`; `no_such_user` (`?user=` of a user that does not exist, or of another user for a non-administrator)", body = ErrorBody),
        (status = 409, description = "`path_conflict`: a pipe or socket; `format=tar` of a file", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable` (with `Content-Range: bytes */<size>`)", body = ErrorBody),
        WorkspaceBusy,
        AuthRefusals,
    ),
)]
pub async fn get(target: WsTarget) -> ApiResult {
    // The one format `check_query` lets through.
    let tar = target.query.format.is_some();
    let ws = target.reach().await?.ws;
    let WsTarget { req, path, .. } = target;
    let opening = path.clone();
    let (ws, opened) = web::block(move || {
        let opened = ws.open_read(&opening);
        (ws, opened)
    })
    .await
    .map_err(blocked)?;
    match opened? {
        Opened::Dir(fd) if tar => {
            drop(fd);
            file_answers::tar(ws, path)
        }
        Opened::Dir(_) => {
            let listing = web::block(move || ws.list(&path)).await.map_err(blocked)??;
            Ok(HttpResponse::Ok().json(listing))
        }
        Opened::File { .. } if tar => {
            Err(ApiError::new(HttpCode::PathConflict, format!("{path} is a file: format=tar is for folders")))
        }
        Opened::File { file, size, mtime } => file_answers::file(&req, &path, file, size, mtime),
    }
}

#[utoipa::path(
    put,
    path = "/{path}",
    params(WsPathParam<FileToWrite>, WsQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes; at most the room left in the workspace (its quota), whatever `max-body-bytes` says"),
    responses(
        (status = 201, description = "Stored (missing folders made; a file there replaced)", body = Entry),
        (status = 400, description = "`invalid_path`, `upload_incomplete` (the body was cut short)", body = ErrorBody),
        OutsideWorkspace,
        NoSuchUser,
        (status = 409, description = "`path_conflict`: the path is a folder or a link, or a name on the way is a file", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body must be `application/octet-stream`", body = ErrorBody),
        WorkspaceBusy,
        (status = 507, description = "`workspace_full`: the file does not fit in the room left (nothing of it is left)", body = ErrorBody),
        AuthRefusals,
    ),
)]
pub async fn put(target: WsTarget, payload: web::Payload) -> ApiResult {
    let reached = target.reach().await?;
    let WsTarget { req, data, path, .. } = target;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let (entry, _) = data.workspaces.store(reached, path, declared, payload).await?;
    Ok(HttpResponse::Created().json(entry))
}

#[utoipa::path(
    delete,
    path = "/{path}",
    params(WsPathParam<EntryToRemove>, WsQuery),
    responses(
        (status = 204, description = "Removed (a link itself, never what it points to)"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 403, description = "`outside_workspace`: a name on the way leads out of the workspace", body = ErrorBody),
        (status = 404, description = "`no_such_file`, `no_such_user`", body = ErrorBody),
        (status = 409, description = "`path_conflict`: a folder that is not empty without `recursive=true`; the workspace's root", body = ErrorBody),
        ReadRefusals,
    ),
)]
pub async fn delete(target: WsTarget) -> ApiResult {
    let reached = target.reach().await?;
    let WsTarget { data, path, query, .. } = target;
    data.workspaces.remove(reached, path, query.recursive.unwrap_or(false)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_lets_bytes_in_on_these_routes() {
        assert_eq!(crate::origin::BYTE_UPLOADS, format!("{BASE}{PREFIX}"));
    }
}
