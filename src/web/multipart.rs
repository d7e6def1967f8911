//! A streaming reader of `multipart/form-data` bodies (RFC 7578), for the workspace page's
//! upload form: the parts come one after the other, a file's bytes as they arrive, never the
//! whole body in memory. What is held is bounded: a part's headers (8 KiB), the text before the
//! first part (8 KiB), a small field's value (the caller's limit), and at most one network piece
//! plus a boundary's length of a file's bytes. How many bytes a file may have is the caller's
//! business (the workspace's quota).
//!
//! Written here rather than taken from `actix-multipart`: that crate would be new to the tree,
//! and it buffers a part's headers without a bound.

use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Longest header block of a part, and longest preamble before the first part.
const MAX_HEADERS: usize = 8 * 1024;
/// Longest boundary (RFC 2046).
const MAX_BOUNDARY: usize = 70;

/// Why a body could not be read as a form.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MultipartError(pub String);

fn bad(what: impl Into<String>) -> MultipartError {
    MultipartError(what.into())
}

/// The headers of one part that matter to a form.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// The form field's name.
    pub name: String,
    /// The file's name as the browser gave it (file fields only; without any folder).
    pub filename: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first boundary.
    Start,
    /// Just after a boundary: `--` (the end) or the next part's headers follow.
    Boundary,
    /// In a part's body.
    Body,
    /// After the last boundary.
    End,
}

/// A `multipart/form-data` body being read.
pub struct Multipart<S> {
    stream: S,
    buf: BytesMut,
    /// `\r\n--<boundary>`.
    delimiter: Vec<u8>,
    state: State,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut parts = content_type.split(';');
    let kind = parts.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(bad(format!("the form must be sent as multipart/form-data, not {kind:?}")));
    }
    let params = params(&content_type[content_type.find(';').map_or(content_type.len(), |i| i + 1)..]);
    let b = params
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or_else(|| bad("the form's content type has no boundary"))?;
    if b.is_empty() || b.len() > MAX_BOUNDARY || !b.bytes().all(|c| c.is_ascii_graphic() || c == b' ') {
        return Err(bad("the form's boundary is not valid"));
    }
    Ok(b)
}

/// The `key=value` parameters after a header's first value, values unquoted (`\"` is `"`).
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        let Some(eq) = rest.find('=') else { return out };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &quoted[end..];
            v
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let v = rest[..end].trim().to_string();
            rest = &rest[end..];
            v
        };
        out.push((key, value));
    }
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Multipart<S> {
    /// A reader of `stream`, a body of the content type `content_type`.
    pub fn new(content_type: &str, stream: S) -> Result<Self, MultipartError> {
        let delimiter = format!("\r\n--{}", boundary(content_type)?).into_bytes();
        // The first boundary has no line break before it: one is put there.
        let buf = BytesMut::from(&b"\r\n"[..]);
        Ok(Multipart { stream, buf, delimiter, state: State::Start })
    }

    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        match self.stream.next().await {
            Some(Ok(bytes)) => {
                self.buf.extend_from_slice(&bytes);
                Ok(true)
            }
            Some(Err(e)) => Err(bad(format!("the form could not be read: {e}"))),
            None => Ok(false),
        }
    }

    /// Reads until `want` bytes are buffered; an error naming `what` if the body ends first.
    async fn need(&mut self, want: usize, what: &str) -> Result<(), MultipartError> {
        while self.buf.len() < want {
            if !self.fill().await? {
                return Err(bad(format!("the form ends in the middle of {what}")));
            }
        }
        Ok(())
    }

    /// The next part's headers, after what is left of the current one; `None` after the last.
    pub async fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            match self.state {
                State::End => return Ok(None),
                State::Body => while self.chunk().await?.is_some() {},
                State::Start => {
                    let at = loop {
                        if let Some(at) = memchr::memmem::find(&self.buf, &self.delimiter) {
                            break at;
                        }
                        if self.buf.len() > MAX_HEADERS {
                            return Err(bad("the form does not start with its boundary"));
                        }
                        if !self.fill().await? {
                            return Err(bad("the form has no parts"));
                        }
                    };
                    let _ = self.buf.split_to(at + self.delimiter.len());
                    self.state = State::Boundary;
                }
                State::Boundary => {
                    self.need(2, "a boundary").await?;
                    if self.buf.starts_with(b"--") {
                        // What follows the last boundary (an epilogue) is not read.
                        self.state = State::End;
                        return Ok(None);
                    }
                    if !self.buf.starts_with(b"\r\n") {
                        return Err(bad("a boundary of the form is not followed by a line break"));
                    }
                    return self.headers().await.map(Some);
                }
            }
        }
    }

    /// Reads the header block that starts with the line break at the start of the buffer.
    async fn headers(&mut self) -> Result<Part, MultipartError> {
        let end = loop {
            if let Some(at) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            if self.buf.len() > MAX_HEADERS {
                return Err(bad(format!("a part of the form has more than {MAX_HEADERS} bytes of headers")));
            }
            if !self.fill().await? {
                return Err(bad("the form ends in the middle of a part's headers"));
            }
        };
        let block = self.buf.split_to(end + 4);
        let text =
            std::str::from_utf8(&block[..end]).map_err(|_| bad("the headers of a part of the form are not UTF-8"))?;
        let mut part = None;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| bad("a part of the form has a malformed header"))?;
            if !name.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            let (kind, rest) = value.trim().split_once(';').unwrap_or((value.trim(), ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(bad("a part of the form is not form-data"));
            }
            let mut p = Part::default();
            for (k, v) in params(rest) {
                if k.eq_ignore_ascii_case("name") {
                    p.name = v;
                } else if k.eq_ignore_ascii_case("filename") {
                    // Some browsers send the whole path the file had.
                    p.filename = Some(v.rsplit(['/', '\\']).next().unwrap_or("").to_string());
                }
            }
            part = Some(p);
        }
        self.state = State::Body;
        part.ok_or_else(|| bad("a part of the form has no Content-Disposition"))
    }

    /// The next piece of the current part's body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        if self.state != State::Body {
            return Ok(None);
        }
        loop {
            if let Some(at) = memchr::memmem::find(&self.buf, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buf.split_to(at).freeze()));
                }
                let _ = self.buf.split_to(self.delimiter.len());
                self.state = State::Boundary;
                return Ok(None);
            }
            // All but what could be the start of the delimiter is the part's.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe).freeze()));
            }
            if !self.fill().await? {
                return Err(bad("the form ends in the middle of a part"));
            }
        }
    }

    /// The current part's body as text, refused when longer than `limit` bytes.
    pub async fn text(&mut self, limit: usize) -> Result<String, MultipartError> {
        let mut out = Vec::new();
        while let Some(piece) = self.chunk().await? {
            if out.len() + piece.len() > limit {
                return Err(bad(format!("a field of the form is longer than {limit} bytes")));
            }
            out.extend_from_slice(&piece);
        }
        String::from_utf8(out).map_err(|_| bad("a field of the form is not UTF-8 text"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    /// The body cut into pieces of `size` bytes, as a stream.
    fn pieces(body: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        let chunks: Vec<Result<Bytes, PayloadError>> =
            body.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures_util::stream::iter(chunks)
    }

    const TYPE: &str = "multipart/form-data; boundary=----zoeBoundary42";

    fn form(file: &[u8]) -> Vec<u8> {
        let mut b =
            b"preamble\r\n------zoeBoundary42\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nt0ken\r\n"
                .to_vec();
        b.extend_from_slice(b"------zoeBoundary42\r\nContent-Disposition: form-data; name=\"file\"; filename=\"C:\\\\x\\\\a \\\"b\\\".txt\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        b.extend_from_slice(file);
        b.extend_from_slice(b"\r\n------zoeBoundary42--\r\nepilogue");
        b
    }

    /// Every part of a body read in pieces of `size`: its headers and bytes.
    async fn read_all(body: &[u8], size: usize) -> Result<Vec<(Part, Vec<u8>)>, MultipartError> {
        let mut m = Multipart::new(TYPE, pieces(body, size))?;
        let mut out = Vec::new();
        while let Some(p) = m.next_part().await? {
            let mut bytes = Vec::new();
            while let Some(c) = m.chunk().await? {
                assert!(c.len() <= size + 64, "a piece larger than what came in");
                bytes.extend_from_slice(&c);
            }
            out.push((p, bytes));
        }
        Ok(out)
    }

    #[actix_web::test]
    async fn parts_come_whole_whatever_the_pieces_the_body_arrives_in() {
        // Bytes that look like the delimiter's start, and a line break at the end, are the file's.
        let mut file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.extend_from_slice(b"\r\n------zoeBoundary4\r\n--\r\n");
        for size in [1, 2, 3, 7, 41, 64, 1000, 100_000] {
            let parts = read_all(&form(&file), size).await.unwrap();
            assert_eq!(parts.len(), 2, "pieces of {size}");
            assert_eq!(parts[0].0, Part { name: "csrf".into(), filename: None });
            assert_eq!(parts[0].1, b"t0ken");
            assert_eq!(parts[1].0, Part { name: "file".into(), filename: Some("a \"b\".txt".into()) });
            assert_eq!(parts[1].1, file, "pieces of {size}");
        }
        // An empty file, and a field read as text.
        let mut m = Multipart::new(TYPE, pieces(&form(b""), 5)).unwrap();
        assert_eq!(m.next_part().await.unwrap().unwrap().name, "csrf");
        assert_eq!(m.text(16).await.unwrap(), "t0ken");
        assert_eq!(m.next_part().await.unwrap().unwrap().name, "file");
        assert_eq!(m.chunk().await.unwrap(), None);
        assert_eq!(m.next_part().await.unwrap(), None);
        assert_eq!(m.next_part().await.unwrap(), None);
    }

    #[actix_web::test]
    async fn what_is_held_in_memory_is_bounded_and_broken_forms_are_refused() {
        let mut m = Multipart::new(TYPE, pieces(&form(b"x"), 3)).unwrap();
        m.next_part().await.unwrap();
        assert!(m.text(4).await.unwrap_err().0.contains("longer than 4 bytes"));
        // Headers without an end, a body without a first boundary, a cut body.
        let endless = [b"------zoeBoundary42\r\nX: ".as_slice(), &[b'a'; 20_000]].concat();
        let e = read_all(&endless, 100).await.unwrap_err();
        assert!(e.0.contains("more than 8192 bytes of headers"), "{e}");
        assert!(read_all(&[b'a'; 20_000], 100).await.unwrap_err().0.contains("does not start"));
        let cut = &form(b"abc")[..150];
        assert!(read_all(cut, 10).await.unwrap_err().0.contains("ends in the middle"));
        let no_disposition = b"------zoeBoundary42\r\nContent-Type: text/plain\r\n\r\nx\r\n------zoeBoundary42--";
        assert!(read_all(no_disposition, 10).await.unwrap_err().0.contains("no Content-Disposition"));
        // Content types.
        assert_eq!(boundary("multipart/form-data; boundary=\"a b\"").unwrap(), "a b");
        assert_eq!(boundary("Multipart/Form-Data;charset=utf-8;BOUNDARY=x").unwrap(), "x");
        assert!(boundary("application/x-www-form-urlencoded").is_err());
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))).is_err());
    }
}
