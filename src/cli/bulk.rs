//! Workspace files over plain HTTP without an HTTP library in the way: the body goes between
//! the socket and the file through one buffer ([`PIECE`] for an upload, [`INTO_FILE`] for a
//! download), each byte copied once into it and once out. Through ureq it was copied twice
//! more (into ureq's buffer and out of it, in pieces of its buffer's size), which made the
//! client, not the master, the slow end of a download (README, "Workspace files"). Two ways
//! with fewer copies were measured and left: `splice` from the socket into the file through a
//! pipe was no faster here, and an upload sent by `sendfile` made the master's receiving cost
//! twice the CPU (200 to 240 ms per 200 MiB against 90 to 110), the master being the slow end
//! of an upload.
//!
//! Only the plain case goes this way: an `http://` master without a proxy, and a download
//! answered `200` with a `Content-Length`. Anything else (TLS, a proxy, a redirect, a refusal
//! of a download, a server that cannot be reached) is [`Outcome::Declined`] before any byte of
//! the body moved, and the client asks again its general way (ureq), which gives every answer
//! its usual meaning (retries, redirects, error codes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Bytes of an upload read from the file and written to the socket at once.
pub const PIECE: usize = 1 << 20;
/// Bytes of a download read from the socket and written to the file at once. Larger writes
/// were as fast most of the time but not always: with writes of 1 MiB, 0 to 4 downloads of 7
/// took 3 to 6 times as long, all of it in writing the file (strace), never with writes of 128
/// or 256 KiB in 56 rounds of `benches/master/files.rs`. The likely cause is this virtual
/// machine's free page reporting (memory given back to its host is slow to touch again), which
/// the large page-cache folios of large writes meet more often; it was not proven.
pub const INTO_FILE: usize = 256 << 10;
/// Largest answer head read; a longer one is declined.
const MAX_HEAD: usize = 16 * 1024;
/// Largest answer body read after an upload (a JSON document or a refusal).
const MAX_ANSWER: u64 = 1 << 20;

/// A master reached over plain HTTP, without a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plain {
    /// `host[:port]` as the URL has it: the `Host` header.
    host: String,
    /// `host:port`: where to connect.
    addr: String,
    /// The path the master's URL has before the API's (empty for most).
    prefix: String,
}

impl Plain {
    /// The master at `url` (`http://host[:port][/prefix]`), unless it is `https://`, has user
    /// information in it, or is reached through a proxy.
    pub fn of(url: &str, proxied: bool) -> Option<Plain> {
        let rest = url.strip_prefix("http://")?;
        let (host, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if proxied || host.is_empty() || host.contains(['@', '?', '#']) {
            return None;
        }
        let has_port = match host.rfind(']') {
            Some(end) => host[end..].contains(':'),
            None => host.contains(':'),
        };
        let addr = if has_port { host.to_string() } else { format!("{host}:80") };
        Some(Plain { host: host.to_string(), addr, prefix: prefix.to_string() })
    }

    fn connect(&self, timeout: Duration) -> Option<TcpStream> {
        let addrs = self.addr.to_socket_addrs().ok()?;
        addrs.into_iter().find_map(|a| TcpStream::connect_timeout(&a, timeout).ok())
    }

    /// The head of a request for the API path `target` (`/api/0.6/...`).
    fn head(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
        let mut head =
            format!("{method} {}{target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.prefix, self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

/// How a transfer went.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Nothing of the body moved: ask the general way.
    Declined,
    Done(T),
}

/// A failure once the body started moving.
#[derive(Debug)]
pub enum Broke {
    /// The connection failed or stalled.
    Network(io::Error),
    /// The local file could not be read or written.
    Disk(io::Error),
}

/// A download answered `200` with its length: its body not read yet.
pub struct Body {
    stream: TcpStream,
    /// The body's first bytes, read with the head.
    start: Vec<u8>,
    /// `Content-Length`.
    pub length: u64,
}

/// `GET target`: the answer's body when it is a `200` with a `Content-Length` (no other
/// transfer coding); [`Outcome::Declined`] for anything else, and when the master cannot be
/// reached or does not answer within `answer`.
pub fn get(plain: &Plain, target: &str, headers: &[(&str, &str)], answer: Duration) -> Outcome<Body> {
    let Some(mut stream) = plain.connect(answer) else { return Outcome::Declined };
    let sent = stream.set_read_timeout(Some(answer)).and_then(|()| stream.set_write_timeout(Some(answer)));
    if sent.and_then(|()| stream.write_all(plain.head("GET", target, headers).as_bytes())).is_err() {
        return Outcome::Declined;
    }
    let Some((head, mut start)) = read_head(&mut stream) else { return Outcome::Declined };
    let length = match head {
        Head { status: 200, length: Some(length), chunked: false } => length,
        _ => return Outcome::Declined,
    };
    start.truncate(usize::try_from(length).unwrap_or(usize::MAX));
    Outcome::Done(Body { stream, start, length })
}

impl Body {
    /// Writes the body into `file` (at its current position), `got` told the bytes so far;
    /// without a byte for `stall`, it fails. Returns the bytes moved: fewer than the length
    /// when the server closed early.
    pub fn copy_to(self, file: &mut File, stall: Duration, got: &dyn Fn(u64)) -> Result<u64, Broke> {
        let Body { mut stream, start, length } = self;
        file.write_all(&start).map_err(Broke::Disk)?;
        got(start.len() as u64);
        stream.set_read_timeout(Some(stall)).map_err(Broke::Network)?;
        pour(&mut stream, file, start.len() as u64, length, got).map_err(|e| match e {
            Broke::Network(e) => Broke::Network(stalled(e, stall)),
            disk => disk,
        })
    }
}

/// Copies what `from` gives into `file` through one buffer of [`INTO_FILE`], until it ends or
/// the count, starting at `done`, reaches `until`; `got` is told the count after each piece.
/// Returns the count; a read error is [`Broke::Network`] as it came.
pub fn pour(from: &mut dyn Read, file: &mut File, mut done: u64, until: u64, got: &dyn Fn(u64)) -> Result<u64, Broke> {
    let mut buf = vec![0u8; INTO_FILE.min(usize::try_from(until.saturating_sub(done)).unwrap_or(INTO_FILE))];
    while done < until {
        let want = usize::try_from(until - done).unwrap_or(usize::MAX).min(buf.len());
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Broke::Network(e)),
        };
        file.write_all(&buf[..n]).map_err(Broke::Disk)?;
        done += n as u64;
        got(done);
    }
    Ok(done)
}

/// What an upload was answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

/// `PUT target` with the first `len` bytes of `file` as the body; `sent`
/// is told the bytes sent so far; without progress for `stall`, it fails. Returns the answer
/// (also a refusal sent before the whole body was, which ends the sending); declined when the
/// master cannot be reached or redirects.
pub fn put(
    plain: &Plain,
    target: &str,
    headers: &[(&str, &str)],
    file: &File,
    len: u64,
    stall: Duration,
    sent: &dyn Fn(u64),
) -> Result<Outcome<Answer>, Broke> {
    let Some(mut stream) = plain.connect(stall) else { return Ok(Outcome::Declined) };
    let length = len.to_string();
    let headers = [headers, &[("Content-Type", "application/octet-stream"), ("Content-Length", &length)]].concat();
    let ready = stream.set_read_timeout(Some(stall)).and_then(|()| stream.set_write_timeout(Some(stall)));
    if ready.and_then(|()| stream.write_all(plain.head("PUT", target, &headers).as_bytes())).is_err() {
        return Ok(Outcome::Declined);
    }
    let mut buf = vec![0u8; PIECE.min(usize::try_from(len).unwrap_or(PIECE))];
    let mut offset = 0u64;
    let mut failed = None;
    while offset < len {
        let want = usize::try_from(len - offset).unwrap_or(usize::MAX).min(buf.len());
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[..want], offset).map_err(Broke::Disk)?;
        if n == 0 {
            return Err(Broke::Disk(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended after {offset} of its {len} bytes (did it change while it was sent?)"),
            )));
        }
        // When the master stops reading, its answer (a refusal) says why.
        if let Err(e) = stream.write_all(&buf[..n]) {
            failed = Some(stalled(e, stall));
            break;
        }
        offset += n as u64;
        sent(offset);
    }
    let Some((head, mut text)) = read_head(&mut stream) else {
        return Err(Broke::Network(
            failed.unwrap_or_else(|| io::Error::other("the master closed the connection without an answer")),
        ));
    };
    if (300..400).contains(&head.status) {
        return Ok(Outcome::Declined);
    }
    let more = head.length.unwrap_or(MAX_ANSWER).min(MAX_ANSWER).saturating_sub(text.len() as u64);
    // The answer's end; a refusal's body may be cut short by the connection's reset.
    let _ = (&mut stream).take(more).read_to_end(&mut text);
    Ok(Outcome::Done(Answer { status: head.status, text: String::from_utf8_lossy(&text).into_owned() }))
}

/// What a head says of its body.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    length: Option<u64>,
    chunked: bool,
}

/// Reads an answer's head: what it says, and the bytes of the body read with it. `None` when
/// the connection ends or times out first, or the head is not HTTP/1.1 or too long.
fn read_head(stream: &mut TcpStream) -> Option<(Head, Vec<u8>)> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).ok().filter(|&n| n > 0)?;
        filled += n;
        if let Some((head, used)) = parse_head(&buf[..filled])? {
            return Some((head, buf[used..filled].to_vec()));
        }
        if filled == buf.len() {
            return None;
        }
    }
}

/// A complete head at the start of `bytes` and its length; `Some(None)` when it is not complete
/// yet, `None` when it cannot be one.
fn parse_head(bytes: &[u8]) -> Option<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut answer = httparse::Response::new(&mut headers);
    let used = match answer.parse(bytes).ok()? {
        httparse::Status::Complete(used) => used,
        httparse::Status::Partial => return Some(None),
    };
    let value = |name: &str| {
        let mut values = answer.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
        values.next().map(|h| (String::from_utf8_lossy(h.value).trim().to_string(), values.next().is_some()))
    };
    let length = match value("content-length") {
        None => None,
        // Two lengths: not a plain answer.
        Some((_, true)) => return None,
        Some((v, false)) => Some(v.parse().ok()?),
    };
    let chunked = value("transfer-encoding").is_some();
    Some(Some((Head { status: answer.code?, length, chunked }, used)))
}

/// A socket's timeout (`EAGAIN` on a blocking socket, or a timeout) said as a stall of `stall`.
pub fn stalled(e: io::Error, stall: Duration) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, format!("nothing moved for {stall:?}"))
        }
        _ => e,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    impl<T> Outcome<T> {
        /// What was done; `None` when declined.
        fn done(self) -> Option<T> {
            match self {
                Outcome::Declined => None,
                Outcome::Done(t) => Some(t),
            }
        }
    }

    #[test]
    fn only_plain_http_without_a_proxy_goes_straight() {
        let plain = |host: &str, addr: &str, prefix: &str| {
            Some(Plain { host: host.into(), addr: addr.into(), prefix: prefix.into() })
        };
        assert_eq!(Plain::of("http://127.0.0.1:4850", false), plain("127.0.0.1:4850", "127.0.0.1:4850", ""));
        assert_eq!(Plain::of("http://zoe.example", false), plain("zoe.example", "zoe.example:80", ""));
        assert_eq!(Plain::of("http://[::1]:4850/zoe", false), plain("[::1]:4850", "[::1]:4850", "/zoe"));
        assert_eq!(Plain::of("http://[::1]", false), plain("[::1]", "[::1]:80", ""));
        assert_eq!(Plain::of("https://zoe.example", false), None);
        assert_eq!(Plain::of("http://zoe.example", true), None);
        assert_eq!(Plain::of("http://u:p@zoe.example", false), None);
        assert_eq!(Plain::of("http://", false), None);
    }

    #[test]
    fn a_request_head_names_the_path_under_the_prefix() {
        let plain = Plain::of("http://h:1/zoe", false).unwrap();
        assert_eq!(
            plain.head("GET", "/api/0.6/workspace/a", &[("Authorization", "Basic eA==")]),
            "GET /zoe/api/0.6/workspace/a HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nAuthorization: Basic eA==\r\n\r\n"
        );
    }

    #[test]
    fn heads_are_read_with_what_they_say_of_the_body() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_head(ok), Some(Some((Head { status: 200, length: Some(5), chunked: false }, ok.len() - 5))));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-len"), Some(None));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked).unwrap().unwrap().0, Head { status: 200, length: None, chunked: true });
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_head(refused).unwrap().unwrap().0.status, 404);
        // Two lengths, a length that is not a number, not HTTP: never taken as a plain answer.
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), None);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), None);
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }

    /// A one-connection server at a plain URL: reads the request's head, then runs `answer` on
    /// the connection with the head's text.
    fn serve(answer: impl FnOnce(TcpStream, String) + Send + 'static) -> Plain {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let plain = Plain::of(&format!("http://{}", listener.local_addr().unwrap()), false).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            answer(conn, String::from_utf8(head).unwrap());
        });
        plain
    }

    fn scratch(tag: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("zoe-bulk-{tag}-{}", std::process::id()));
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        (path, file)
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_download_is_moved_whole_into_the_file() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let plain = serve(move |mut conn, head| {
            assert!(head.starts_with("GET /api/0.6/workspace/f HTTP/1.1\r\n"), "{head}");
            assert!(head.contains("\r\nAuthorization: Bearer t\r\n"), "{head}");
            // The head and the body's start in one piece, the rest in uneven pieces.
            let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".to_vec();
            first.extend_from_slice(&sent[..1000]);
            conn.write_all(&first).unwrap();
            for piece in sent[1000..].chunks(777_777) {
                conn.write_all(piece).unwrap();
            }
        });
        let Outcome::Done(body) = get(&plain, "/api/0.6/workspace/f", &[("Authorization", "Bearer t")], LONG) else {
            panic!("declined")
        };
        assert_eq!(body.length, 3_000_000);
        let (path, mut file) = scratch("get");
        let seen = std::cell::Cell::new(0);
        assert_eq!(body.copy_to(&mut file, LONG, &|n| seen.set(n)).unwrap(), 3_000_000);
        assert_eq!(seen.get(), 3_000_000);
        assert!(std::fs::read(&path).unwrap() == data, "the file holds what was sent");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_download_cut_short_or_stalled_is_told() {
        let plain = serve(|mut conn, _| conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap());
        let Outcome::Done(body) = get(&plain, "/x", &[], LONG) else { panic!("declined") };
        let (path, mut file) = scratch("short");
        assert_eq!(body.copy_to(&mut file, LONG, &|_| {}).unwrap(), 3, "fewer bytes than announced");
        let _ = std::fs::remove_file(path);

        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let plain = serve(move |mut conn, _| {
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
            let _ = rx.recv(); // holds the connection open, silent
        });
        let Outcome::Done(body) = get(&plain, "/x", &[], LONG) else { panic!("declined") };
        let (path, mut file) = scratch("stall");
        let stalled = body.copy_to(&mut file, Duration::from_millis(200), &|_| {});
        assert!(matches!(&stalled, Err(Broke::Network(e)) if e.kind() == io::ErrorKind::TimedOut), "{stalled:?}");
        drop(tx);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn anything_but_a_plain_success_is_declined() {
        for answer in [
            "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\nuntil the end",
            "",
        ] {
            let plain = serve(move |mut conn, _| conn.write_all(answer.as_bytes()).unwrap());
            assert!(matches!(get(&plain, "/x", &[], LONG), Outcome::Declined), "{answer:?}");
        }
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let plain = Plain::of(&format!("http://{closed}"), false).unwrap();
        assert!(matches!(get(&plain, "/x", &[], LONG), Outcome::Declined));
    }

    #[test]
    fn an_upload_sends_the_file_and_hears_the_answer() {
        let data = vec![5u8; 2_500_000];
        let (path, mut file) = scratch("put");
        file.write_all(&data).unwrap();
        let plain = serve(|mut conn, head| {
            assert!(head.starts_with("PUT /api/0.6/workspace/up HTTP/1.1\r\n"), "{head}");
            assert!(head.contains("\r\nContent-Length: 2500000\r\n"), "{head}");
            assert!(head.contains("\r\nContent-Type: application/octet-stream\r\n"), "{head}");
            let mut body = Vec::new();
            (&mut conn).take(2_500_000).read_to_end(&mut body).unwrap();
            assert!(body.iter().all(|&b| b == 5) && body.len() == 2_500_000);
            conn.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        });
        let seen = std::cell::Cell::new(0);
        let answer = put(&plain, "/api/0.6/workspace/up", &[], &file, 2_500_000, LONG, &|n| seen.set(n));
        assert_eq!(answer.unwrap_or_else(|e| panic!("{e:?}")).done(), Some(Answer { status: 201, text: "{}".into() }));
        assert_eq!(seen.get(), 2_500_000);

        // A file shorter than announced (it shrank): the upload fails, the server gets no
        // whole body.
        let plain = serve(|mut conn, _| {
            let mut body = Vec::new();
            let _ = conn.read_to_end(&mut body);
            assert!(body.len() < 3_000_000);
        });
        let short = put(&plain, "/up", &[], &file, 3_000_000, LONG, &|_| {});
        assert!(matches!(&short, Err(Broke::Disk(e)) if e.kind() == io::ErrorKind::UnexpectedEof), "{short:?}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_refusal_before_the_body_is_heard_although_the_body_was_not_read() {
        let (path, mut file) = scratch("refused");
        file.write_all(&vec![1u8; 20 << 20]).unwrap();
        let refusal = r#"{"code":"workspace_full","message":"no room"}"#;
        let plain = serve(move |mut conn, _| {
            let answer =
                format!("HTTP/1.1 507 Insufficient Storage\r\nContent-Length: {}\r\n\r\n{refusal}", refusal.len());
            conn.write_all(answer.as_bytes()).unwrap();
            // Closed with the body unread: the client's sending fails (a reset).
        });
        let answer = put(&plain, "/up", &[], &file, 20 << 20, LONG, &|_| {});
        assert_eq!(
            answer.unwrap_or_else(|e| panic!("{e:?}")).done(),
            Some(Answer { status: 507, text: refusal.into() })
        );
        let _ = std::fs::remove_file(path);
    }
}
