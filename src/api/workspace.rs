//! `/api/0.6/workspace/<path>`: the files of the caller's workspace (an administrator's, of
//! anyone's with `?user=`). Reads stream from the disk, uploads stream to it (never whole in
//! memory), each through one blocking thread (`crate::files::stream`); every path is confined
//! to the workspace by the kernel (`crate::files`).

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::Authed;
use crate::error::{ApiError, ErrorBody, HttpCode};
use crate::file_answers;
use crate::files::{self, Entry, Opened, WsPath};
use crate::responses::{AuthRefusals, NoSuchUser, OutsideWorkspace, ReadRefusals, WorkspaceBusy};
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

/// `?user=`, `?format=`, `?recursive=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// Another user's workspace (administrators only; others get `no_such_user`).
    pub user: Option<String>,
    /// `tar`: a folder as a tar archive (GET).
    pub format: Option<String>,
    /// `true`: remove a folder and everything in it (DELETE).
    pub recursive: Option<bool>,
}

/// The workspace path of a request: its raw (still percent-encoded) URL path after the prefix,
/// decoded here once, name by name.
fn ws_path(req: &HttpRequest) -> Result<WsPath, ApiError> {
    let raw = req.uri().path();
    let rest = raw.strip_prefix(BASE).and_then(|p| p.strip_prefix(PREFIX)).unwrap_or_default();
    WsPath::from_url(rest).map_err(|e| ApiError::from(files::FileError::from(e)))
}

#[utoipa::path(
    get,
    path = "/api/0.6/workspace/{path}",
    tag = "workspace",
    params(
        ("path" = String, Path, description = "A file or folder of the workspace, relative to it (empty: its root)"),
        WsQuery,
    ),
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
pub async fn get(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    q: web::Query<WsQuery>,
) -> ApiResult {
    let path = ws_path(&req)?;
    let tar = match q.format.as_deref() {
        None => false,
        Some("tar") => true,
        Some(other) => {
            return Err(ApiError::new(
                HttpCode::InvalidRequest,
                format!("unknown format {other:?}; the one format is tar"),
            ))
        }
    };
    let ws = data.workspaces.reach(&data.reader, &caller, q.user.as_deref()).await?.ws;
    let opening = path.clone();
    let (ws, opened) = web::block(move || {
        let opened = ws.open_read(&opening);
        (ws, opened)
    })
    .await
    .map_err(internal)?;
    match opened? {
        Opened::Dir(fd) if tar => {
            drop(fd);
            file_answers::tar(ws, path)
        }
        Opened::Dir(_) => {
            let listing = web::block(move || ws.list(&path)).await.map_err(internal)??;
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
    path = "/api/0.6/workspace/{path}",
    tag = "workspace",
    params(
        ("path" = String, Path, description = "The file to write, relative to the workspace"),
        WsQuery,
    ),
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
pub async fn put(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    q: web::Query<WsQuery>,
    payload: web::Payload,
) -> ApiResult {
    let path = ws_path(&req)?;
    if q.format.is_some() || q.recursive.is_some() {
        return Err(ApiError::new(HttpCode::InvalidRequest, "PUT takes only ?user="));
    }
    let reached = data.workspaces.reach(&data.reader, &caller, q.user.as_deref()).await?;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let (entry, _) = data.workspaces.store(reached, path, declared, payload).await?;
    Ok(HttpResponse::Created().json(entry))
}

#[utoipa::path(
    delete,
    path = "/api/0.6/workspace/{path}",
    tag = "workspace",
    params(
        ("path" = String, Path, description = "The file, link or folder to remove, relative to the workspace"),
        WsQuery,
    ),
    responses(
        (status = 204, description = "Removed (a link itself, never what it points to)"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 403, description = "`outside_workspace`: a name on the way leads out of the workspace", body = ErrorBody),
        (status = 404, description = "`no_such_file`, `no_such_user`", body = ErrorBody),
        (status = 409, description = "`path_conflict`: a folder that is not empty without `recursive=true`; the workspace's root", body = ErrorBody),
        ReadRefusals,
    ),
)]
pub async fn delete(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    q: web::Query<WsQuery>,
) -> ApiResult {
    let path = ws_path(&req)?;
    if q.format.is_some() {
        return Err(ApiError::new(HttpCode::InvalidRequest, "DELETE takes only ?user= and ?recursive="));
    }
    let recursive = q.recursive.unwrap_or(false);
    let reached = data.workspaces.reach(&data.reader, &caller, q.user.as_deref()).await?;
    let ws = reached.ws;
    let removed = web::block(move || ws.remove(&path, recursive)).await;
    data.workspaces.forget(&reached.owner);
    removed.map_err(internal)??;
    Ok(HttpResponse::NoContent().finish())
}

fn internal(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::new(HttpCode::Internal, format!("a workspace operation failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_lets_bytes_in_on_these_routes() {
        assert_eq!(crate::origin::BYTE_UPLOADS, format!("{BASE}{PREFIX}"));
    }
}
