//! `/api/0.6/workspace/<path>`: the files of the caller's workspace (an administrator's, of
//! anyone's with `?user=`). Reads stream from the disk, uploads stream to it (never whole in
//! memory), each through one blocking thread (`crate::files::stream`); every path is confined
//! to the workspace by the kernel (`crate::files`).

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::Authed;
use crate::error::{ApiError, ErrorBody, HttpCode};
use crate::files::{self, stream, Entry, Opened, WsPath};
use crate::responses::{AuthRefusals, ReadRefusals};
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
        (status = 403, description = "`outside_workspace`: the path leads out of the workspace (a symbolic link)", body = ErrorBody),
        (status = 404, description = "`no_such_file`; `no_such_user` (`?user=` of a user that does not exist, or of another user for a non-administrator)", body = ErrorBody),
        (status = 409, description = "`path_conflict`: a pipe or socket; `format=tar` of a file", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable` (with `Content-Range: bytes */<size>`)", body = ErrorBody),
        (status = 503, description = "`busy`: too many transfers at once (with `Retry-After`); `unavailable`: the workspace cannot be prepared", body = ErrorBody),
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
            let name = format!("{}.tar", path.name().unwrap_or("workspace"));
            let body = stream::produce(crate::workspaces::turn()?, move |sink| {
                ws.tar(&path, sink).map_err(|e| std::io::Error::other(e.to_string()))
            });
            Ok(HttpResponse::Ok()
                .content_type("application/x-tar")
                .insert_header((header::CONTENT_DISPOSITION, attachment(&name)))
                .streaming(body))
        }
        Opened::Dir(_) => {
            let listing = web::block(move || ws.list(&path)).await.map_err(internal)??;
            Ok(HttpResponse::Ok().json(listing))
        }
        Opened::File { .. } if tar => {
            Err(ApiError::new(HttpCode::PathConflict, format!("{path} is a file: format=tar is for folders")))
        }
        Opened::File { file, size, mtime } => file_response(&req, &path, file, size, mtime),
    }
}

/// A file's bytes, whole or the one range asked for.
fn file_response(
    req: &HttpRequest,
    path: &WsPath,
    file: std::fs::File,
    size: u64,
    mtime: time::OffsetDateTime,
) -> ApiResult {
    let modified = header::HttpDate::from(std::time::SystemTime::from(mtime));
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).map(|r| byte_range(r, size));
    let mut resp = match range {
        Some(Some(Err(()))) => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(crate::error::body(&ApiError::new(
                    HttpCode::RangeNotSatisfiable,
                    format!("the range is outside {path}, which has {size} bytes"),
                ))))
        }
        Some(Some(Ok((start, end)))) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            let len = end + 1 - start;
            r.no_chunking(len);
            return Ok(finish(r, path, modified).streaming(stream::file_body(
                crate::workspaces::turn()?,
                file,
                start,
                len,
            )));
        }
        // No range, or one this does not serve (several): the whole file.
        _ => HttpResponse::Ok(),
    };
    resp.no_chunking(size);
    Ok(finish(resp, path, modified).streaming(stream::file_body(crate::workspaces::turn()?, file, 0, size)))
}

fn finish(
    mut resp: actix_web::HttpResponseBuilder,
    path: &WsPath,
    modified: header::HttpDate,
) -> actix_web::HttpResponseBuilder {
    resp.content_type("application/octet-stream")
        .insert_header((header::LAST_MODIFIED, modified))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, attachment(path.name().unwrap_or("workspace"))));
    resp
}

/// `attachment; filename*=UTF-8''<name>` (RFC 6266), the name percent-encoded.
fn attachment(name: &str) -> String {
    format!("attachment; filename*=UTF-8''{}", crate::percent::encode(name))
}

/// The one range of a `Range` header over a file of `size` bytes: `None` when the header is not
/// one this serves (not bytes, several ranges, malformed: the whole file is sent, as RFC 9110
/// allows); `Err` when it is outside the file.
pub fn byte_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last `n` bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        return Some(Ok((size.saturating_sub(n), size - 1)));
    }
    let start: u64 = first.parse().ok()?;
    let end: u64 = if last.is_empty() { u64::MAX } else { last.parse().ok()? };
    if end < start {
        return None;
    }
    if start >= size {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(size - 1))))
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
        (status = 403, description = "`outside_workspace`: the path leads out of the workspace (a symbolic link)", body = ErrorBody),
        (status = 404, description = "`no_such_user`", body = ErrorBody),
        (status = 409, description = "`path_conflict`: the path is a folder or a link, or a name on the way is a file", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body must be `application/octet-stream`", body = ErrorBody),
        (status = 503, description = "`busy`: too many transfers at once (with `Retry-After`); `unavailable`: the workspace cannot be prepared", body = ErrorBody),
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
    fn one_byte_range_is_served() {
        assert_eq!(byte_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(byte_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=90-500", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-500", 100), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=0-0", 0), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None, "several: the whole file");
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=5-1", 100), None);
        assert_eq!(byte_range("bytes=x-1", 100), None);
    }

    #[test]
    fn the_guard_lets_bytes_in_on_these_routes() {
        assert_eq!(crate::origin::BYTE_UPLOADS, format!("{BASE}{PREFIX}"));
    }
}
