//! Issue 26: the files of a workspace over the API, with a real master, real containers and real
//! files on the host: round trips, ranges, archives, ownership, the quota, and a hostile user's
//! links and paths.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use blake2::{Blake2b512, Digest};
use serde_json::{json, Value};

use crate::common::docker::{application, docker_master_with, exec_in, log_with, service, wait_status};
use crate::common::{assert_error, request_builder, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

/// A request with raw bytes: (status, headers, body bytes).
fn send(
    m: &Master,
    method: &str,
    path: &str,
    auth: (&str, &str),
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = request_builder(method, &format!("{}{path}", m.url), Some(auth));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = m.agent.run(req.body(body).unwrap()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = crate::common::headers_of(&resp);
    let bytes = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap_or_default();
    (status, headers, bytes)
}

fn put(m: &Master, path: &str, auth: (&str, &str), body: Vec<u8>) -> (u16, Value) {
    let (s, _, b) = send(m, "PUT", path, auth, &[("Content-Type", "application/octet-stream")], body);
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn get_bytes(m: &Master, path: &str, auth: (&str, &str)) -> (u16, Vec<u8>) {
    let (s, _, b) = send(m, "GET", path, auth, &[], Vec::new());
    (s, b)
}

fn json_of(resp: (u16, Vec<u8>)) -> (u16, Value) {
    (resp.0, serde_json::from_slice(&resp.1).unwrap_or(Value::Null))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
}

/// `n` bytes that do not compress (xorshift).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    Blake2b512::digest(bytes).to_vec()
}

/// The names in a folder listing.
fn names(listing: &Value) -> Vec<String> {
    listing.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

fn workspace_dir(m: &Master, dep: &str, user: &str) -> PathBuf {
    m.state_dir.join("ws").join(dep).join(user)
}

/// A large random file goes in and comes out the same; ranges of it; a folder as an archive;
/// what the API writes belongs to the user on the host and a container sees it, and the API
/// serves what a container wrote.
#[test]
fn files_go_in_and_out_whole_and_in_ranges_owned_by_their_user() {
    let (m, _cleanup, dep) = docker_master_with("files", &["--workspace-quota", "256MiB"]);
    m.create_user("alice", "user", ALICE.1);
    let uid = m.get("/api/0.6/user/alice", ALICE).1["uid"].as_u64().unwrap() as u32;
    // The root of a workspace never used yet: made, empty.
    let (s, root) = json_of(get_bytes(&m, "/api/0.6/workspace/", ALICE));
    assert_eq!((s, root), (200, json!([])));

    let big = random_bytes(48 << 20, 26);
    let (s, entry) = put(&m, "/api/0.6/workspace/data/in/big.bin", ALICE, big.clone());
    assert_eq!(s, 201, "{entry}");
    assert_eq!(
        (entry["name"].as_str(), entry["type"].as_str(), entry["size"].as_u64()),
        (Some("big.bin"), Some("file"), Some(48 << 20))
    );
    let (s, headers, back) = send(&m, "GET", "/api/0.6/workspace/data/in/big.bin", ALICE, &[], Vec::new());
    assert_eq!(s, 200);
    assert_eq!(digest(&back), digest(&big), "the same bytes came back");
    assert_eq!(header(&headers, "content-length"), (48u64 << 20).to_string());
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert!(header(&headers, "last-modified").ends_with(" GMT"), "{headers:?}");

    // Ranges: one in the middle, the end, a suffix; outside: 416 with the size.
    let range = |r: &str| send(&m, "GET", "/api/0.6/workspace/data/in/big.bin", ALICE, &[("Range", r)], Vec::new());
    let (s, h, part) = range("bytes=1000-1999");
    assert_eq!((s, part.as_slice()), (206, &big[1000..2000]));
    assert_eq!(header(&h, "content-range"), format!("bytes 1000-1999/{}", big.len()));
    let (s, _, part) = range("bytes=50000000-");
    assert_eq!((s, part.as_slice()), (206, &big[50_000_000..]));
    let (s, _, part) = range("bytes=-7");
    assert_eq!((s, part.as_slice()), (206, &big[big.len() - 7..]));
    let (s, h, body) = range("bytes=60000000-");
    assert_eq!(s, 416);
    assert_eq!(header(&h, "content-range"), format!("bytes */{}", big.len()));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], "range_not_satisfiable");

    // Owned by alice on the host, with the modes of a container's files; parents made too.
    let host = workspace_dir(&m, &dep, "alice");
    for (p, mode) in [("data", 0o755), ("data/in", 0o755), ("data/in/big.bin", 0o644)] {
        let meta = std::fs::metadata(host.join(p)).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (uid, uid, mode), "{p}");
    }

    // A container sees the upload, and writes a file the API then serves.
    assert_eq!(put(&m, "/api/0.6/workspace/data/in/words.txt", ALICE, b"to be or not to be\n".to_vec()).0, 201);
    let cmd = "sh -c 'wc -w < /mnt/workspace/data/in/words.txt > /mnt/workspace/data/count.txt; \
               mkdir -p /mnt/workspace/data/out && echo made-inside > /mnt/workspace/data/out/result; \
               echo ready; exec sleep 600'";
    let id = m.submit(ALICE, "wc", &application(vec![service("main", true, 1, 0, cmd, json!([]))]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    let sid = e["services"][0].as_u64().unwrap();
    assert!(log_with(&m, ALICE, sid, "ready", 60).contains("ready"));
    let (ok, seen) =
        exec_in(&format!("main-wc-alice-{dep}"), "cat /mnt/workspace/data/in/words.txt; ls -ln /mnt/workspace/data/in");
    let words: Vec<&str> = seen.split_whitespace().collect();
    let owned = words.windows(3).any(|w| w[0] == uid.to_string() && w[1] == uid.to_string() && w[2] == "19");
    assert!(ok && seen.contains("to be or not to be") && owned, "alice's, as the container sees it: {seen}");
    assert_eq!(get_bytes(&m, "/api/0.6/workspace/data/count.txt", ALICE), (200, b"6\n".to_vec()));

    // The folder as a tar archive: its entries, read back by tar.
    let (s, h, archive) = send(&m, "GET", "/api/0.6/workspace/data?format=tar", ALICE, &[], Vec::new());
    assert_eq!((s, header(&h, "content-type")), (200, "application/x-tar"));
    let out = m.state_dir.join("untar");
    std::fs::create_dir_all(&out).unwrap();
    let mut tar = std::process::Command::new("tar")
        .args(["-xvf", "-", "-C"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(&archive).unwrap();
    let listed = tar.wait_with_output().unwrap();
    assert!(listed.status.success());
    let mut entries: Vec<String> = String::from_utf8_lossy(&listed.stdout).lines().map(String::from).collect();
    entries.sort();
    assert_eq!(
        entries,
        ["data/", "data/count.txt", "data/in/", "data/in/big.bin", "data/in/words.txt", "data/out/", "data/out/result"]
    );
    assert_eq!(digest(&std::fs::read(out.join("data/in/big.bin")).unwrap()), digest(&big));
    assert_eq!(std::fs::read(out.join("data/out/result")).unwrap(), b"made-inside\n");

    // Listings: types, sizes, times.
    let (s, listing) = json_of(get_bytes(&m, "/api/0.6/workspace/data", ALICE));
    assert_eq!(s, 200);
    assert_eq!(names(&listing), ["count.txt", "in", "out"]);
    assert_eq!(listing[1]["type"], "dir");
    assert_eq!((listing[0]["type"].as_str(), listing[0]["size"].as_u64()), (Some("file"), Some(2)));
    assert!(listing[0]["mtime"].as_str().unwrap().ends_with('Z'), "{listing}");

    // Removal: a file, a folder not empty (refused, then recursive), 404 after.
    assert_eq!(send(&m, "DELETE", "/api/0.6/workspace/data/count.txt", ALICE, &[], Vec::new()).0, 204);
    assert_error(&json_of(get_bytes(&m, "/api/0.6/workspace/data/count.txt", ALICE)), 404, "no_such_file");
    let refused = send(&m, "DELETE", "/api/0.6/workspace/data", ALICE, &[], Vec::new());
    assert_error(&json_of((refused.0, refused.2)), 409, "path_conflict");
    assert_eq!(send(&m, "DELETE", "/api/0.6/workspace/data?recursive=true", ALICE, &[], Vec::new()).0, 204);
    assert!(!host.join("data").exists());
    // Bytes only: a JSON upload is refused.
    let (s, _, b) =
        send(&m, "PUT", "/api/0.6/workspace/x.json", ALICE, &[("Content-Type", "application/json")], b"{}".to_vec());
    assert_error(&json_of((s, b)), 415, "unsupported_media_type");
}

/// A hostile user's container makes links towards `/etc`, another user's workspace and the host
/// file system; through the API they lead nowhere, for reading, writing, making folders,
/// removing and archiving, and nothing outside is touched. `..` in every spelling is refused;
/// another user's files are invisible to a user and open to administrators.
#[test]
fn links_and_paths_out_of_a_workspace_are_refused_and_other_users_files_invisible() {
    let (m, _cleanup, dep) = docker_master_with("wslinks", &["--workspace-quota", "64MiB"]);
    m.create_user("alice", "user", ALICE.1);
    m.create_user("bob", "user", BOB.1);
    assert_eq!(put(&m, "/api/0.6/workspace/secret.txt", BOB, b"bob's secret".to_vec()).0, 201);
    let bob_host = workspace_dir(&m, &dep, "bob");
    let cmd = format!(
        "sh -c 'cd /mnt/workspace && ln -s /etc etc && ln -s /etc/passwd passwd && ln -s ../bob bob && \
         ln -s {bob} bobabs && ln -s {bob}/secret.txt bobsecret && mkdir -p sub && ln -s ../../bob sub/up && \
         echo ready; exec sleep 600'",
        bob = bob_host.display()
    );
    let id = m.submit(ALICE, "links", &application(vec![service("main", true, 1, 0, &cmd, json!([]))]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    let sid = e["services"][0].as_u64().unwrap();
    assert!(log_with(&m, ALICE, sid, "ready", 60).contains("ready"));
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let etc_names = std::fs::read_dir("/etc").unwrap().count();

    let refused = |resp: (u16, Value), what: &str| {
        assert_eq!(resp.0, 403, "{what}: {}", resp.1);
        assert_eq!(resp.1["code"], "outside_workspace", "{what}: {}", resp.1);
    };
    let api = |p: &str| format!("/api/0.6/workspace/{p}");
    for p in ["etc/passwd", "passwd", "bob/secret.txt", "bobabs/secret.txt", "bobsecret", "sub/up/secret.txt"] {
        refused(json_of(get_bytes(&m, &api(p), ALICE)), &format!("read {p}"));
        refused(put(&m, &api(p), ALICE, b"pwned".to_vec()), &format!("write {p}"));
        refused(put(&m, &api(&format!("{p}/made/file")), ALICE, b"pwned".to_vec()), &format!("folders under {p}"));
        let (s, _, b) = send(&m, "DELETE", &format!("{}?recursive=true", api(p)), ALICE, &[], Vec::new());
        if p.contains('/') {
            refused(json_of((s, b)), &format!("delete {p}"));
        } else {
            // The link itself is alice's own file: removed, never what it points to.
            assert_eq!(s, 204, "delete the link {p}");
        }
    }
    for p in ["etc", "bob", "bobabs", "sub/up"] {
        refused(json_of(get_bytes(&m, &api(p), ALICE)), &format!("list {p}"));
        refused(json_of(get_bytes(&m, &format!("{}?format=tar", api(p)), ALICE)), &format!("tar {p}"));
    }
    // The archive of the whole workspace holds the links as links, never what they point to.
    let (s, archive) = get_bytes(&m, "/api/0.6/workspace/?format=tar", ALICE);
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&archive);
    assert!(!text.contains("bob's secret") && !text.contains("root:x:0:0"), "nothing from outside in the archive");
    // Nothing outside was touched: /etc, bob's workspace.
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    assert_eq!(std::fs::read_dir("/etc").unwrap().count(), etc_names);
    assert_eq!(std::fs::read(bob_host.join("secret.txt")).unwrap(), b"bob's secret");
    let mut bob_names: Vec<_> = std::fs::read_dir(&bob_host).unwrap().map(|e| e.unwrap().file_name()).collect();
    bob_names.sort();
    assert_eq!(bob_names, ["secret.txt"]);

    // `..`, `.`, encoded slashes and dots: 400 invalid_path, in every spelling.
    for p in [
        "..",
        "../bob/secret.txt",
        "a/../../bob",
        "%2e%2e/bob/secret.txt",
        "%2E%2E",
        "a%2F..%2F..%2Fbob",
        "%2Fetc%2Fpasswd",
        ".",
        "a/./b",
        "x%00y",
    ] {
        assert_error(&json_of(get_bytes(&m, &api(p), ALICE)), 400, "invalid_path");
        assert_error(&put(&m, &api(p), ALICE, b"x".to_vec()), 400, "invalid_path");
    }
    // Another user's files: invisible to alice (as an unknown user is), open to an administrator.
    for who in ["bob", "nobody-such"] {
        let path = format!("/api/0.6/workspace/secret.txt?user={who}");
        assert_error(&json_of(get_bytes(&m, &path, ALICE)), 404, "no_such_user");
        assert_error(&put(&m, &path, ALICE, b"x".to_vec()), 404, "no_such_user");
        let (s, _, b) = send(&m, "DELETE", &path, ALICE, &[], Vec::new());
        assert_error(&json_of((s, b)), 404, "no_such_user");
    }
    assert_eq!(std::fs::read(bob_host.join("secret.txt")).unwrap(), b"bob's secret");
    assert_eq!(get_bytes(&m, "/api/0.6/workspace/secret.txt?user=bob", ADMIN), (200, b"bob's secret".to_vec()));
    assert_eq!(put(&m, "/api/0.6/workspace/note?user=bob", ADMIN, b"from the admin".to_vec()).0, 201);
    let bob_uid = m.get("/api/0.6/user/bob", BOB).1["uid"].as_u64().unwrap() as u32;
    assert_eq!(std::fs::metadata(bob_host.join("note")).unwrap().uid(), bob_uid, "the owner's, not the admin's");
    assert_error(&json_of(get_bytes(&m, "/api/0.6/workspace/?user=nobody-such", ADMIN)), 404, "no_such_user");
}

/// An upload that does not fit in the room left is answered 507 `workspace_full` and leaves no
/// partial file: refused up front by its Content-Length, or midway (a body of unknown length).
#[test]
fn an_upload_past_the_quota_is_refused_and_leaves_nothing() {
    let (m, _cleanup, dep) = docker_master_with("wsfull", &["--workspace-quota", "16MiB"]);
    m.create_user("alice", "user", ALICE.1);
    assert_eq!(put(&m, "/api/0.6/workspace/small", ALICE, vec![1u8; 2 << 20]).0, 201);
    let host = workspace_dir(&m, &dep, "alice");
    let leftovers = || {
        let mut v: Vec<String> =
            std::fs::read_dir(&host).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };

    // Declared too large: answered before the body is read (only the headers are sent here).
    let addr = m.url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:alice-pw");
    write!(
        conn,
        "PUT /api/0.6/workspace/huge HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        20u64 << 20
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = conn.take(64 << 10).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert!(answer.contains("\"code\":\"workspace_full\""), "{answer}");

    // Of unknown length (chunked): refused when it passes the room left; nothing left of it.
    let mut body = std::io::Cursor::new(vec![7u8; 24 << 20]);
    let req = request_builder("PUT", &format!("{}/api/0.6/workspace/dir/huge", m.url), Some(ALICE))
        .header("Content-Type", "application/octet-stream")
        .body(ureq::SendBody::from_reader(&mut body))
        .unwrap();
    let mut resp = m.agent.run(req).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("workspace_full"), "{text}");
    assert_eq!(leftovers(), ["dir", "small"], "no partial file, no temporary file");
    assert_eq!(std::fs::read_dir(host.join("dir")).unwrap().count(), 0);

    // The room is still there for what fits; the workspace is as it was.
    assert_eq!(put(&m, "/api/0.6/workspace/dir/fits", ALICE, vec![2u8; 4 << 20]).0, 201);
    assert_eq!(std::fs::metadata(host.join("dir/fits")).unwrap().len(), 4 << 20);
    // Over max-body-bytes (1 MiB by default) is fine for files: the limit is the quota.
    assert_eq!(std::fs::metadata(host.join("small")).unwrap().len(), 2 << 20);
}
