//! A workspace's files as HTTP answers, for the files API and the workspace page alike (the
//! page cannot use the API's routes: a browser signed in with a session cookie is refused there):
//! a file's bytes, whole or the one range asked for, streamed from the disk as an attachment; a
//! folder as a tar archive. Each counts among the transfers under way ([`turn`]).

use actix_web::http::header;
use actix_web::HttpRequest;
use actix_web::HttpResponse;

use crate::error::{ApiError, HttpCode};
use crate::files::{stream, Workspace, WsPath};
use crate::workspaces::turn;

/// The folder `path` of `ws` as a tar archive, streamed as it is made.
pub fn tar(ws: Workspace, path: WsPath) -> Result<HttpResponse, ApiError> {
    let name = format!("{}.tar", path.name().unwrap_or("workspace"));
    let body =
        stream::produce(turn()?, move |sink| ws.tar(&path, sink).map_err(|e| std::io::Error::other(e.to_string())));
    Ok(HttpResponse::Ok()
        .content_type("application/x-tar")
        .insert_header((header::CONTENT_DISPOSITION, attachment(&name)))
        .streaming(body))
}

/// A file's bytes, whole or the one range asked for.
pub fn file(
    req: &HttpRequest,
    path: &WsPath,
    file: std::fs::File,
    size: u64,
    mtime: time::OffsetDateTime,
) -> Result<HttpResponse, ApiError> {
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
            return Ok(finish(r, path, modified).streaming(stream::file_body(turn()?, file, start, len)));
        }
        // No range, or one this does not serve (several): the whole file.
        _ => HttpResponse::Ok(),
    };
    resp.no_chunking(size);
    Ok(finish(resp, path, modified).streaming(stream::file_body(turn()?, file, 0, size)))
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
}
