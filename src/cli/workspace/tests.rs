//! `zoe ws` against a fake, hostile server: what it lists never makes `get` write outside the
//! folder it was given; and what `put` sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::*;
use crate::cli::client::Connection;

/// A request the fake server got: its first line, headers (lowercase names) and body length.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A fake master: a `GET` of a path in `listings` answers that JSON listing, any other `GET`
/// answers the bytes `pwned`, a `PUT` 201, a `DELETE` 204. Returns its URL and what it saw.
fn fake(listings: Vec<(&'static str, Value)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let line = line.trim_end().to_string();
            log.lock().unwrap().push(Seen { line: line.clone(), headers, body: len });
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let (status, kind, body) = if line.starts_with("PUT ") {
                ("201 Created", "application/json", b"{}".to_vec())
            } else if line.starts_with("DELETE ") {
                ("204 No Content", "application/json", Vec::new())
            } else if let Some((_, v)) = listings.iter().find(|(p, _)| format!("/api/0.6/workspace/{p}") == path) {
                ("200 OK", "application/json", v.to_string().into_bytes())
            } else {
                ("200 OK", "application/octet-stream", b"pwned".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    (url, seen)
}

/// A fresh, empty folder for one test.
fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zoe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn client(url: &str) -> Client {
    let conn = Connection { url: url.into(), user: "alice".into(), password: "pw".into(), token: None, ca_file: None };
    Client::new(conn).unwrap()
}

fn file(name: &str, size: u64) -> Value {
    json!({"name": name, "type": "file", "size": size, "mtime": "2023-11-14T22:13:20Z"})
}

fn dir(name: &str) -> Value {
    json!({"name": name, "type": "dir", "size": 0, "mtime": "2024-05-01T12:34:56Z"})
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(tree(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[test]
fn a_hostile_listing_never_makes_get_write_outside_its_folder() {
    let scratch = tempdir("ws-get-hostile");
    let outside = scratch.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let absolute = outside.join("absolute");
    let (url, seen) = fake(vec![
        (
            "",
            json!([
                file("../escaped", 6),
                file(absolute.to_str().unwrap(), 6),
                file("a/../../b", 6),
                file("", 6),
                dir("."),
                dir(".."),
                {"name": "link", "type": "link", "size": 11, "mtime": "2024-05-01T12:34:56Z"},
                {"name": "fifo", "type": "other", "size": 0, "mtime": "2024-05-01T12:34:56Z"},
                file("ok.txt", 5),
                dir("sub"),
            ]),
        ),
        ("sub", json!([file("../../escaped2", 5), file("inner.txt", 5), dir("/tmp")])),
    ]);
    let c = client(&url);
    let ws = Remote { c: &c, owner: None };
    let dest = scratch.join("dest");
    let got = get(&ws, false, "", Some(dest.clone()));

    // The plain names are downloaded; each hostile one is refused and reported (exit 1).
    let Err(CliError::Failed(message)) = got else { panic!("{got:?}") };
    assert!(message.contains("Downloaded 2 files") && message.contains("10 left out"), "{message}");
    assert_eq!(tree(&dest), ["ok.txt", "sub/inner.txt"]);
    assert_eq!(tree(&scratch), ["dest/ok.txt", "dest/sub/inner.txt"], "something was written outside dest");
    assert!(!absolute.exists() && !Path::new("/tmp/inner.txt").exists());
    // Nothing but the listings and the two plain files was asked for.
    let asked: Vec<String> = seen.lock().unwrap().iter().map(|s| s.line.clone()).collect();
    let paths: Vec<&str> = asked.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/api/0.6/workspace/",
            "/api/0.6/workspace/ok.txt",
            "/api/0.6/workspace/sub",
            "/api/0.6/workspace/sub/inner.txt"
        ]
    );
}

#[test]
fn get_writes_through_no_link_that_was_already_in_its_folder() {
    let scratch = tempdir("ws-get-links");
    let outside = scratch.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("kept"), "mine").unwrap();

    // A link where a file goes is replaced by the file, not written through. `dest` exists, so
    // the root goes inside it, as `workspace`.
    let (url, _) = fake(vec![("", json!([file("ok.txt", 5)]))]);
    let c = client(&url);
    let ws = Remote { c: &c, owner: None };
    let dest = scratch.join("dest");
    std::fs::create_dir_all(dest.join("workspace")).unwrap();
    std::os::unix::fs::symlink(outside.join("kept"), dest.join("workspace/ok.txt")).unwrap();
    let got = get(&ws, false, "/", Some(dest.clone()));
    assert!(got.is_ok(), "{got:?}");
    assert!(std::fs::symlink_metadata(dest.join("workspace/ok.txt")).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(dest.join("workspace/ok.txt")).unwrap(), "pwned");

    // A link where a folder goes stops the download there.
    let (url, _) = fake(vec![("", json!([dir("sub")])), ("sub", json!([file("kept", 5), file("new", 5)]))]);
    let c = client(&url);
    let ws = Remote { c: &c, owner: None };
    let linked = scratch.join("linked");
    std::fs::create_dir_all(linked.join("workspace")).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("workspace/sub")).unwrap();
    let got = get(&ws, false, "", Some(linked.clone()));
    let Err(CliError::Failed(message)) = got else { panic!("{got:?}") };
    assert!(message.contains("exists and is not a folder"), "{message}");

    // What the links pointed at is untouched, and no temporary file is left behind.
    assert_eq!(std::fs::read_to_string(outside.join("kept")).unwrap(), "mine");
    assert_eq!(tree(&outside), ["kept"]);
    assert_eq!(tree(&dest), ["workspace/ok.txt"]);
}

#[test]
fn put_streams_each_file_with_its_length_and_skips_links() {
    let scratch = tempdir("ws-put");
    let up = scratch.join("up");
    std::fs::create_dir_all(up.join("deeper")).unwrap();
    std::fs::write(up.join("a b.txt"), "hello").unwrap();
    std::fs::write(up.join("deeper/c"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", up.join("link")).unwrap();
    let (url, seen) = fake(vec![]);
    let c = client(&url);
    let ws = Remote { c: &c, owner: Some("bob".into()) };

    let put = put(&ws, false, &up, Some("data/"));
    let Err(CliError::Failed(message)) = put else { panic!("{put:?}") };
    assert!(message.contains("Uploaded 2 files") && message.contains("1 left out"), "{message}");
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<&str> = seen.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "PUT /api/0.6/workspace/data/up/a%20b.txt?user=bob HTTP/1.1",
            "PUT /api/0.6/workspace/data/up/deeper/c?user=bob HTTP/1.1"
        ]
    );
    for (s, len) in seen.iter().zip([5, 300_000]) {
        assert_eq!(s.header("content-length"), Some(len.to_string().as_str()), "{s:?}");
        assert_eq!(s.header("transfer-encoding"), None, "{s:?}");
        assert_eq!(s.header("content-type"), Some("application/octet-stream"), "{s:?}");
        assert_eq!(s.body, len);
    }
}

#[test]
fn rm_asks_for_recursion_and_never_for_the_root() {
    let (url, seen) = fake(vec![]);
    let c = client(&url);
    let ws = Remote { c: &c, owner: None };
    assert_eq!(rm(&ws, false, "/out/", true).unwrap(), "Removed out\n");
    assert!(matches!(rm(&ws, false, "//", true), Err(CliError::Usage(_))));
    let lines: Vec<String> = seen.lock().unwrap().iter().map(|s| s.line.clone()).collect();
    assert_eq!(lines, ["DELETE /api/0.6/workspace/out?recursive=true HTTP/1.1"]);
}
