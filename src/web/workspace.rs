//! The workspace page: a folder's files with breadcrumbs, download links (a file as an
//! attachment, a folder as a tar archive: the API's answers, [`crate::file_answers`], here for
//! browsers signed in with a session, which the API does not take), an upload form that works without JavaScript (a
//! `multipart/form-data` POST read as it streams, [`super::multipart`]; with JavaScript the same
//! form is sent with a progress bar), and deletion after a confirmation page. Administrators
//! reach another user's workspace with `?user=`, as in the API.
//!
//! Every file operation is the workspace module's (`crate::workspaces`, `crate::files`), the
//! same as the API's: paths are confined there, by the kernel, and uploads bounded by the room
//! left in the quota. The CSRF token is the first field of the upload form and is checked before
//! a byte of a file is read.

use std::ops::Deref;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};
use askama::Template;

use super::multipart::{Multipart, MultipartError};
use super::page::{render, see_other, Layout, PageResult, Posted, WebError, WebUser};
use super::rows::show_time;
use crate::error::{ApiError, HttpCode};
use crate::file_answers;
use crate::files::{self, Entry, Kind, Opened, WsPath};
use crate::percent::{encode, encode_path};
use crate::AppData;

/// Longest value of the form's small fields (the token, the folder).
const FIELD_BYTES: usize = 8 * 1024;
/// Most parts one upload form may have.
const MAX_PARTS: usize = 1000;
/// What a multipart body may hold beyond its files' bytes (boundaries, headers, small fields),
/// when its length is compared with the room left.
const FORM_OVERHEAD: u64 = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workspace", web::get().to(listing))
        .route("/workspace/file", web::get().to(download))
        .route("/workspace/upload", web::post().to(upload))
        .route("/workspace/delete", web::get().to(confirm_delete))
        .route("/workspace/delete", web::post().to(delete));
}

/// `?path=` (a folder, plainly written) and `?user=` (administrators), and what was just done.
#[derive(Debug, Default, serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    path: String,
    user: Option<String>,
    uploaded: Option<u64>,
    deleted: Option<String>,
}

/// `?user=` alone (the forms' addresses).
#[derive(Debug, Default, serde::Deserialize)]
struct OwnerQuery {
    user: Option<String>,
}

/// `&user=<name>` (or `?user=`) to keep in the page's links when another workspace is shown.
fn owner_param(owner: Option<&str>, first: bool) -> String {
    owner.map(|o| format!("{}user={}", if first { '?' } else { '&' }, encode(o))).unwrap_or_default()
}

/// The page of the folder `path`.
fn folder_href(path: &WsPath, owner: Option<&str>) -> String {
    if path.is_root() {
        return format!("/workspace{}", owner_param(owner, true));
    }
    format!("/workspace?path={}{}", encode_path(&path.relative()), owner_param(owner, false))
}

/// The download of the file (or, as a tar archive, the folder) `path`.
fn file_href(path: &WsPath, owner: Option<&str>) -> String {
    format!("/workspace/file?path={}{}", encode_path(&path.relative()), owner_param(owner, false))
}

fn bad_path(user: &WebUser, e: files::BadPath) -> WebError {
    user.error(ApiError::from(files::FileError::from(e)))
}

/// A link of the breadcrumbs.
pub struct Crumb {
    pub name: String,
    pub href: String,
}

/// An entry of the folder as the page shows it, with its links.
pub struct EntryRow {
    entry: Entry,
    pub href: String,
    /// A file's download, or a folder's as a tar archive.
    pub download_href: String,
    pub delete_href: String,
}

impl Deref for EntryRow {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        &self.entry
    }
}

impl EntryRow {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
    pub fn kind_word(&self) -> &'static str {
        match self.kind {
            Kind::File => "file",
            Kind::Dir => "folder",
            Kind::Link => "symbolic link",
            Kind::Other => "pipe or socket",
        }
    }
    pub fn size_text(&self) -> String {
        if self.is_file() {
            super::page::show_bytes(self.size)
        } else {
            String::new()
        }
    }
    pub fn modified(&self) -> String {
        show_time(&self.mtime)
    }
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    layout: Layout,
    usage: Option<zoe_actors::backend::workspace::WorkspaceUse>,
    crumbs: Vec<Crumb>,
    entries: Vec<EntryRow>,
    /// The folder, as the form sends it back.
    path: String,
    shown_path: String,
    owner_query: String,
    limit: String,
    notice: String,
}

async fn listing(data: web::Data<AppData>, user: WebUser, q: web::Query<PageQuery>) -> PageResult {
    let q = q.into_inner();
    let path = WsPath::parse(&q.path).map_err(|e| bad_path(&user, e))?;
    let owner = q.user.as_deref();
    let reached = data.workspaces.reach(&data.reader, &user.caller, owner).await.map_err(|e| user.error(e))?;
    let usage = data.workspaces.usage(&reached.owner, reached.role).await;
    let listed = path.clone();
    let entries = web::block(move || reached.ws.list(&listed))
        .await
        .map_err(|e| user.error(ApiError::new(HttpCode::Internal, format!("the listing failed: {e}"))))?
        .map_err(|e| user.error(ApiError::from(e)))?;
    let mut entries: Vec<EntryRow> = entries
        .into_iter()
        .filter(|e| !e.name.starts_with(files::UPLOAD_PREFIX))
        .filter_map(|entry| {
            let at = path.join(&entry.name).ok()?;
            let download_href = file_href(&at, owner);
            let href = if entry.kind == Kind::Dir { folder_href(&at, owner) } else { download_href.clone() };
            let delete_href =
                format!("/workspace/delete?path={}{}", encode_path(&at.relative()), owner_param(owner, false));
            Some(EntryRow { entry, href, download_href, delete_href })
        })
        .collect();
    entries.sort_by(|a, b| (!a.is_dir(), &a.name).cmp(&(!b.is_dir(), &b.name)));
    let mut crumbs = vec![Crumb {
        name: match owner {
            Some(o) if o != user.caller.name => format!("{o}'s workspace"),
            _ => "workspace".to_string(),
        },
        href: folder_href(&WsPath::root(), owner),
    }];
    let mut so_far = WsPath::root();
    for name in path.names() {
        so_far = so_far.join(name).map_err(|e| bad_path(&user, e))?;
        crumbs.push(Crumb { name: name.clone(), href: folder_href(&so_far, owner) });
    }
    let notice = match (q.uploaded, &q.deleted) {
        (Some(1), _) => "1 file was uploaded.".to_string(),
        (Some(n), _) => format!("{n} files were uploaded."),
        (None, Some(name)) => format!("{name} was deleted."),
        (None, None) => String::new(),
    };
    let limit = usage.map(|u| super::page::show_bytes(u.available)).unwrap_or_else(|| "the room left".into());
    let page = WorkspacePage {
        layout: user.layout.at("workspace"),
        usage,
        crumbs,
        entries,
        shown_path: path.to_string(),
        path: if path.is_root() { String::new() } else { path.relative() },
        owner_query: owner_param(owner, true),
        limit,
        notice,
    };
    Ok(render(&page, StatusCode::OK))
}

/// A file's bytes (one range, if asked), or a folder as a tar archive: the API's answers, for a
/// browser signed in with a session (which the API does not take).
async fn download(req: HttpRequest, data: web::Data<AppData>, user: WebUser, q: web::Query<PathQuery>) -> PageResult {
    let path = WsPath::parse(&q.path).map_err(|e| bad_path(&user, e))?;
    let reached =
        data.workspaces.reach(&data.reader, &user.caller, q.user.as_deref()).await.map_err(|e| user.error(e))?;
    let opening = path.clone();
    let (ws, opened) = web::block(move || {
        let opened = reached.ws.open_read(&opening);
        (reached.ws, opened)
    })
    .await
    .map_err(|e| user.error(ApiError::new(HttpCode::Internal, format!("the workspace cannot be read: {e}"))))?;
    let answer = match opened.map_err(|e| user.error(ApiError::from(e)))? {
        Opened::File { file, size, mtime } => file_answers::file(&req, &path, file, size, mtime),
        Opened::Dir(fd) => {
            drop(fd);
            file_answers::tar(ws, path)
        }
    };
    answer.map_err(|e| user.error(e))
}

fn bad_form(user: &WebUser, e: MultipartError) -> WebError {
    user.error(ApiError::new(HttpCode::InvalidRequest, e.0))
}

/// The upload form: the token (checked first), the folder, then the files, each written as it
/// arrives by the workspace module.
async fn upload(
    req: HttpRequest,
    data: web::Data<AppData>,
    user: WebUser,
    q: web::Query<OwnerQuery>,
    payload: web::Payload,
) -> PageResult {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut form = Multipart::new(content_type, payload).map_err(|e| bad_form(&user, e))?;
    let token = match form.next_part().await.map_err(|e| bad_form(&user, e))? {
        Some(p) if p.name == "csrf" => form.text(FIELD_BYTES).await.map_err(|e| bad_form(&user, e))?,
        // No token first: refused like a wrong one, before anything else is read.
        _ => String::new(),
    };
    user.check_post(&req, &token)?;
    let folder = match form.next_part().await.map_err(|e| bad_form(&user, e))? {
        Some(p) if p.name == "folder" => form.text(FIELD_BYTES).await.map_err(|e| bad_form(&user, e))?,
        _ => return Err(bad_form(&user, MultipartError("the form has no folder to upload into".into()))),
    };
    let folder = WsPath::parse(&folder).map_err(|e| bad_path(&user, e))?;
    let owner = q.user.as_deref();
    let mut reached = data.workspaces.reach(&data.reader, &user.caller, owner).await.map_err(|e| user.error(e))?;
    // A form larger than the room left is refused before its files are read (each file is
    // bounded by the room left as it is written in any case).
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(len) = declared.map(|len: u64| len.saturating_sub(FORM_OVERHEAD)) {
        let room = data.workspaces.room_left(&reached.owner, reached.role).await.unwrap_or(u64::MAX);
        if len > room {
            return Err(user.error(ApiError::new(
                HttpCode::WorkspaceFull,
                format!(
                    "the workspace is full: these files ({len} bytes) do not fit in the {room} bytes left of its quota"
                ),
            )));
        }
    }
    let mut uploaded = 0u64;
    let mut parts = 2;
    while let Some(part) = form.next_part().await.map_err(|e| bad_form(&user, e))? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(bad_form(&user, MultipartError(format!("the form has more than {MAX_PARTS} parts"))));
        }
        let Some(name) = part.filename.filter(|n| part.name == "file" && !n.is_empty()) else {
            // Another field, or no file chosen: skipped.
            continue;
        };
        let path = folder.join(&name).map_err(|e| bad_path(&user, e))?;
        let bytes = Box::pin(futures_util::stream::unfold(&mut form, |form| async move {
            match form.chunk().await {
                Ok(Some(b)) => Some((Ok(b), form)),
                Ok(None) => None,
                Err(e) => Some((Err(e), form)),
            }
        }));
        reached = data.workspaces.store(reached, path, None, bytes).await.map_err(|e| user.error(e))?.1;
        uploaded += 1;
    }
    let folder_page = folder_href(&folder, owner);
    let sep = if folder_page.contains('?') { '&' } else { '?' };
    Ok(see_other(&format!("{folder_page}{sep}uploaded={uploaded}")))
}

#[derive(Template)]
#[template(path = "workspace_delete.html")]
struct DeletePage {
    layout: Layout,
    name: String,
    path: String,
    shown_path: String,
    is_dir: bool,
    back: String,
    owner_query: String,
}

#[derive(serde::Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: String,
    user: Option<String>,
}

/// The confirmation page of a deletion.
async fn confirm_delete(data: web::Data<AppData>, user: WebUser, q: web::Query<PathQuery>) -> PageResult {
    let path = WsPath::parse(&q.path).map_err(|e| bad_path(&user, e))?;
    if path.is_root() {
        return Err(user.error(ApiError::new(HttpCode::PathConflict, "the workspace itself cannot be deleted")));
    }
    let owner = q.user.as_deref();
    let reached = data.workspaces.reach(&data.reader, &user.caller, owner).await.map_err(|e| user.error(e))?;
    let stat = path.clone();
    let entry = web::block(move || reached.ws.stat(&stat))
        .await
        .map_err(|e| user.error(ApiError::new(HttpCode::Internal, format!("the workspace cannot be read: {e}"))))?
        .map_err(|e| user.error(ApiError::from(e)))?;
    let page = DeletePage {
        layout: user.layout.at("workspace"),
        name: path.name().unwrap_or_default().to_string(),
        shown_path: path.to_string(),
        path: path.relative(),
        is_dir: entry.kind == Kind::Dir,
        back: folder_href(&path.parent(), owner),
        owner_query: owner_param(owner, true),
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(serde::Deserialize)]
struct DeleteForm {
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: bool,
}

async fn delete(
    data: web::Data<AppData>,
    q: web::Query<OwnerQuery>,
    Posted { user, form }: Posted<DeleteForm>,
) -> PageResult {
    let path = WsPath::parse(&form.path).map_err(|e| bad_path(&user, e))?;
    let owner = q.user.as_deref();
    let reached = data.workspaces.reach(&data.reader, &user.caller, owner).await.map_err(|e| user.error(e))?;
    data.workspaces.remove(reached, path.clone(), form.recursive).await.map_err(|e| user.error(e))?;
    let folder_page = folder_href(&path.parent(), owner);
    let sep = if folder_page.contains('?') { '&' } else { '?' };
    Ok(see_other(&format!("{folder_page}{sep}deleted={}", encode(path.name().unwrap_or("")))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_each_name_and_keep_the_owner() {
        let p = WsPath::parse("a b/c&d?/é.txt").unwrap();
        assert_eq!(file_href(&p, None), "/workspace/file?path=a%20b/c%26d%3F/%C3%A9.txt");
        assert_eq!(file_href(&p, Some("bob")), "/workspace/file?path=a%20b/c%26d%3F/%C3%A9.txt&user=bob");
        assert_eq!(folder_href(&p.parent(), None), "/workspace?path=a%20b/c%26d%3F");
        assert_eq!(folder_href(&WsPath::root(), Some("bob")), "/workspace?user=bob");
        assert_eq!(folder_href(&p.parent(), Some("bob")), "/workspace?path=a%20b/c%26d%3F&user=bob");
    }
}
