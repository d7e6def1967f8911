//! The clients of the workspace's files against a real master (real HTTP, real files on the
//! host): `zoe ws` run as a process (a folder with a large file put, listed, got back with the
//! same digests, removed; refusals and their exit codes); the web page over plain HTTP (an upload
//! form sent as a browser without JavaScript sends it, multipart; its CSRF and origin refusals
//! with nothing written; deletion after its confirmation page; the quota); and the upload in
//! headless Chromium, with its progress shown by the page's script.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` (`tests/run.sh` installs
//! them); it fails loudly without them.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use serde_json::{json, Value};

use crate::common::browser::{start_driver, Browser};
use crate::common::{outcome, request_builder, temp_dir, unfollowing_agent, wait_until, zoe_bin, Master, Run, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");
/// The large file of the round trips: past the client's progress threshold and the server's
/// 1 MiB write batches.
const LARGE: usize = 24 << 20;

/// A master without Docker (workspaces are plain folders), with alice and bob.
fn master(tag: &str, extra: &[&str]) -> Master {
    let mut args = vec!["--no-docker"];
    args.extend_from_slice(extra);
    let m = Master::start_in(&temp_dir(tag), &args);
    m.create_user(ALICE.0, "user", ALICE.1);
    m.create_user(BOB.0, "user", BOB.1);
    m
}

/// A user's workspace folder on the master's host.
fn host_ws(m: &Master, user: &str) -> PathBuf {
    m.state_dir.join("ws").join("test").join(user)
}

fn uid_of(m: &Master, user: &str) -> u32 {
    let (s, v) = m.get(&format!("/api/0.6/user/{user}"), ADMIN);
    assert_eq!(s, 200, "{v}");
    v["uid"].as_u64().unwrap() as u32
}

/// `n` bytes that do not repeat in any short period (a digest mix-up cannot pass).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn digest(path: &Path) -> String {
    let mut h = Blake2s256::new();
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file below `dir`, relative, with its digest, sorted.
fn digests(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(digests(&e.path()).into_iter().map(|(n, d)| (format!("{name}/{n}"), d)));
        } else {
            out.push((name, digest(&e.path())));
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------- CLI

/// Runs `zoe` as `who` on `m`, in the folder `cwd`; fails the test after two minutes.
fn zoe(m: &Master, who: (&str, &str), cwd: &Path, args: &[&str]) -> Run {
    let child = m
        .client(who, args)
        .current_dir(cwd)
        .env_remove("ZOE_CA_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    outcome(child, Duration::from_secs(120), &format!("zoe {args:?} did not end within two minutes"))
}

#[test]
fn zoe_ws_puts_a_folder_lists_it_gets_it_back_whole_and_removes_it() {
    let m = master("ws-cli", &[]);
    let here = temp_dir("ws-cli-local");
    let up = here.join("results");
    std::fs::create_dir_all(up.join("sub/deeper")).unwrap();
    std::fs::write(up.join("large.bin"), noise(LARGE, 1)).unwrap();
    std::fs::write(up.join("sub/counts & notes ü.txt"), "the 3\nand 2\n").unwrap();
    std::fs::write(up.join("sub/deeper/empty"), "").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", up.join("sub/passwd")).unwrap();

    // The folder goes up recursively; the link in it is left out, and said so (exit 1).
    let started = Instant::now();
    let put = zoe(&m, ALICE, &here, &["ws", "put", "results", "runs/"]);
    let secs = started.elapsed().as_secs_f64();
    put.fails(1, "3 files");
    assert!(put.stderr.contains("sub/passwd: not a plain file nor a folder"), "{put:#?}");
    eprintln!("zoe ws put: {} MiB in {secs:.2} s", LARGE >> 20);
    // On the host: the same bytes, belonging to alice's uid; nothing of the link.
    let stored = host_ws(&m, "alice").join("runs/results");
    let uid = uid_of(&m, "alice");
    assert_eq!(digests(&stored), digests(&up).into_iter().filter(|(n, _)| n != "sub/passwd").collect::<Vec<_>>());
    for f in ["large.bin", "sub", "sub/counts & notes ü.txt"] {
        let meta = std::fs::metadata(stored.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{f}");
    }
    std::fs::remove_file(up.join("sub/passwd")).unwrap();

    // Listed: a table, or the API's JSON; one file alone.
    let ls = zoe(&m, ALICE, &here, &["ws", "ls", "runs/results"]);
    let table = ls.ok();
    assert!(table.starts_with("TYPE  SIZE    MODIFIED"), "{table}");
    assert!(table.contains("file  24 MiB") && table.contains("large.bin") && table.contains("sub/"), "{table}");
    let listed: Value =
        serde_json::from_str(zoe(&m, ALICE, &here, &["--json", "ws", "ls", "/runs/results/"]).ok()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed.as_array().unwrap().iter().any(|e| e["name"] == "large.bin" && e["size"] == LARGE), "{listed}");
    let one = zoe(&m, ALICE, &here, &["ws", "ls", "runs/results/sub/counts & notes ü.txt"]);
    assert!(one.ok().contains("12 bytes"), "{one:#?}");

    // Back whole: a folder into a new local folder, a file into an existing folder.
    let started = Instant::now();
    let got = zoe(&m, ALICE, &here, &["ws", "get", "runs/results", "copy"]);
    let secs = started.elapsed().as_secs_f64();
    assert!(got.ok().starts_with("Downloaded 3 files, 24 MiB, into copy in "), "{got:#?}");
    eprintln!("zoe ws get: {} MiB in {secs:.2} s", LARGE >> 20);
    assert_eq!(digests(&here.join("copy")), digests(&up));
    std::fs::create_dir(here.join("into")).unwrap();
    zoe(&m, ALICE, &here, &["ws", "get", "runs/results/large.bin", "into"]).ok();
    assert_eq!(digest(&here.join("into/large.bin")), digest(&up.join("large.bin")));
    // Without LOCAL: under its own name, here.
    zoe(&m, ALICE, &here, &["ws", "get", "runs/results/sub"]).ok();
    assert_eq!(digests(&here.join("sub")), digests(&up.join("sub")));
    // Progress lines are for terminals only: none in a pipe; on a terminal, a line redrawn in
    // place that ends complete.
    assert!(!got.stderr.contains('\r'), "{got:#?}");
    let command = format!("{} ws get runs/results/large.bin on-a-tty.bin", zoe_bin());
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&here)
        .env("ZOE_URL", &m.url)
        .env("ZOE_USER", ALICE.0)
        .env("ZOE_PASS", ALICE.1)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{seen}");
    assert!(seen.contains("\rruns/results/large.bin  100%  24 MiB of 24 MiB  "), "{seen:?}");
    assert_eq!(digest(&here.join("on-a-tty.bin")), digest(&up.join("large.bin")));
    std::fs::remove_file(here.join("on-a-tty.bin")).unwrap();

    // Another user sees none of it and reaches nothing of it; an administrator does, with --user.
    zoe(&m, BOB, &here, &["ws", "ls", "runs"]).fails(1, "(no_such_file)");
    zoe(&m, BOB, &here, &["ws", "ls", "--user", "alice"]).fails(1, "(no_such_user)");
    zoe(&m, BOB, &here, &["ws", "get", "runs/results/large.bin", "--user", "alice", "stolen"]).fails(1, "no_such_user");
    assert!(!here.join("stolen").exists());
    let admin = zoe(&m, ADMIN, &here, &["ws", "--user", "alice", "ls", "runs"]);
    assert!(admin.ok().contains("results/"), "{admin:#?}");
    // Paths out of the workspace are refused by the server.
    zoe(&m, ALICE, &here, &["ws", "get", "../bob/x", "out"]).fails(1, "invalid_path");
    zoe(&m, ALICE, &here, &["ws", "put", "results/large.bin", "../bob/x"]).fails(1, "invalid_path");
    assert!(!host_ws(&m, "bob").join("x").exists());

    // Removed: a folder only with -r.
    zoe(&m, ALICE, &here, &["ws", "rm", "runs/results"]).fails(1, "(path_conflict)");
    assert_eq!(zoe(&m, ALICE, &here, &["ws", "rm", "-r", "runs/results"]).ok(), "Removed runs/results\n");
    assert!(!stored.exists());
    assert_eq!(zoe(&m, ALICE, &here, &["--json", "ws", "ls", "runs"]).ok().trim(), "[]");
    zoe(&m, ALICE, &here, &["ws", "rm", "runs/results"]).fails(1, "(no_such_file)");
    zoe(&m, ALICE, &here, &["ws", "rm", "/"]).fails(2, "root");
    // Nothing was left in the local folder but what was asked for.
    let mut local: Vec<String> =
        std::fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    local.sort();
    assert_eq!(local, ["copy", "into", "results", "sub"]);
}

#[test]
fn zoe_ws_put_over_the_quota_is_workspace_full_and_leaves_nothing() {
    let m = master("ws-cli-quota", &["--workspace-quota", "16MiB"]);
    let here = temp_dir("ws-cli-quota-local");
    std::fs::write(here.join("big"), noise(20 << 20, 2)).unwrap();
    zoe(&m, ALICE, &here, &["ws", "put", "big"]).fails(1, "(workspace_full)");
    let left: Vec<_> = std::fs::read_dir(host_ws(&m, "alice")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------------------- web

/// An answer: status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The anti-CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let text = self.text();
        let marker = "name=\"csrf\" value=\"";
        let start = text.find(marker).unwrap_or_else(|| panic!("no CSRF token in:\n{text}")) + marker.len();
        text[start..].split('"').next().unwrap().to_string()
    }
}

/// One request, redirects not followed; `auth` `("", "")` sends no credentials.
fn send(
    m: &Master,
    method: &str,
    path: &str,
    auth: (&str, &str),
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> Answer {
    let agent = unfollowing_agent(Duration::from_secs(120));
    let auth = Some(auth).filter(|(user, _)| !user.is_empty());
    let mut req = request_builder(method, &format!("{}{path}", m.url), auth);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some((content_type, bytes)) => {
            req = req.header("Content-Type", content_type);
            bytes
        }
        None => Vec::new(),
    };
    let mut resp = agent.run(req.body(bytes).unwrap()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().with_config().limit(256 << 20).read_to_vec().unwrap_or_default();
    Answer { status: resp.status().as_u16(), headers, body }
}

const BOUNDARY: &str = "----zoeFormBoundaryX7q";

/// A part of a form: its field's name, its file name (file fields), its value.
type FormPart<'a> = (&'a str, Option<&'a str>, &'a [u8]);
/// A forged form: what it is, its parts, the headers it comes with.
type Forged<'a> = (&'a str, Vec<FormPart<'a>>, Vec<(&'a str, &'a str)>);

/// A multipart/form-data body as a browser sends it: text fields, and files with their names.
fn multipart(parts: &[FormPart]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, filename, value) in parts {
        write!(body, "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").unwrap();
        if let Some(f) = filename {
            write!(body, "; filename=\"{f}\"\r\nContent-Type: application/octet-stream").unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// What is in a folder of the host (empty when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_workspace_page_uploads_without_javascript_refuses_forged_forms_and_deletes_after_confirming() {
    let m = master("ws-web", &[]);
    let page = send(&m, "GET", "/workspace", ALICE, None, &[]);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("<a href=\"/workspace\" aria-current=\"page\">Workspace</a>"), "{html}");
    assert!(html.contains("enctype=\"multipart/form-data\"") && html.contains("This folder is empty."), "{html}");
    let csrf = page.csrf();
    let ws = host_ws(&m, "alice");

    // A form as a browser without JavaScript sends it: the token, the folder, two files.
    let large = noise(3 << 20, 3);
    let (kind, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("folder", None, b"inbox/day 1"),
        ("file", Some("data <1>.bin"), &large),
        ("file", Some("notes.txt"), b"hello\r\n--not a boundary\r\n"),
    ]);
    let sent = send(&m, "POST", "/workspace/upload", ALICE, Some((&kind, body)), &[]);
    assert_eq!(sent.status, 303, "{}", sent.text());
    assert_eq!(sent.header("location"), Some("/workspace?path=inbox/day%201&uploaded=2"));
    assert_eq!(std::fs::read(ws.join("inbox/day 1/data <1>.bin")).unwrap(), large);
    assert_eq!(std::fs::read(ws.join("inbox/day 1/notes.txt")).unwrap(), b"hello\r\n--not a boundary\r\n");
    let uid = uid_of(&m, "alice");
    assert_eq!(std::fs::metadata(ws.join("inbox/day 1/notes.txt")).unwrap().uid(), uid);

    // The folder's page: breadcrumbs, names escaped, download links to the API.
    let folder = send(&m, "GET", "/workspace?path=inbox/day%201&uploaded=2", ALICE, None, &[]).text();
    assert!(folder.contains("2 files were uploaded."), "{folder}");
    assert!(folder.contains("<a href=\"/workspace?path=inbox\">inbox</a>"), "{folder}");
    assert!(folder.contains("<span aria-current=\"page\">day 1</span>"), "{folder}");
    assert!(folder.contains(">data &#60;1&#62;.bin</a>") && !folder.contains("data <1>"), "{folder}");
    let link = "/workspace/file?path=inbox/day%201/data%20%3C1%3E.bin";
    assert!(folder.contains(&format!("href=\"{link}\"")), "{folder}");
    let download = send(&m, "GET", link, ALICE, None, &[]);
    assert_eq!((download.status, download.body == large), (200, true));
    assert_eq!(download.header("content-type"), Some("application/octet-stream"));
    let disposition = download.header("content-disposition").unwrap_or("");
    assert_eq!(disposition, "attachment; filename*=UTF-8''data%20%3C1%3E.bin");
    let range = send(&m, "GET", link, ALICE, None, &[("Range", "bytes=10-19")]);
    assert_eq!((range.status, range.body.as_slice()), (206, &large[10..20]));
    // A folder comes as a tar archive, with the file in it.
    let tar = send(&m, "GET", "/workspace/file?path=inbox", ALICE, None, &[]);
    assert_eq!((tar.status, tar.header("content-type")), (200, Some("application/x-tar")));
    let at = tar.body.windows(large.len().min(4096)).position(|w| w == &large[..4096]);
    assert!(at.is_some(), "the file is not in the archive");
    // With a session cookie (which the API refuses), the page's download works.
    let signed = send(
        &m,
        "POST",
        "/login",
        ("", ""),
        Some(("application/x-www-form-urlencoded", b"username=alice&password=alice-pw&next=/workspace".to_vec())),
        &[],
    );
    assert_eq!(signed.status, 303, "{}", signed.text());
    let cookie = signed.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let by_cookie = send(&m, "GET", link, ("", ""), None, &[("Cookie", &cookie)]);
    assert_eq!((by_cookie.status, by_cookie.body == large), (200, true));
    // Not for another user, nor outside the workspace.
    assert_eq!(send(&m, "GET", &format!("{link}&user=alice"), BOB, None, &[]).status, 404);
    assert_eq!(send(&m, "GET", "/workspace/file?path=inbox/day%201/data%20%3C1%3E.bin", BOB, None, &[]).status, 404);
    assert_eq!(send(&m, "GET", "/workspace/file?path=../alice/inbox", BOB, None, &[]).status, 400);

    // Forged forms write nothing: no token, a wrong one, bob's, a token after the file, a
    // form from another site.
    let bobs = send(&m, "GET", "/workspace", BOB, None, &[]).csrf();
    let forged: Vec<Forged> = vec![
        ("no token", vec![("folder", None, b""), ("file", Some("evil"), b"x")], vec![]),
        ("a wrong token", vec![("csrf", None, b"0123"), ("folder", None, b""), ("file", Some("evil"), b"x")], vec![]),
        (
            "bob's token",
            vec![("csrf", None, bobs.as_bytes()), ("folder", None, b""), ("file", Some("evil"), b"x")],
            vec![],
        ),
        ("the token last", vec![("file", Some("evil"), b"x"), ("csrf", None, csrf.as_bytes())], vec![]),
        (
            "another site",
            vec![("csrf", None, csrf.as_bytes()), ("folder", None, b""), ("file", Some("evil"), b"x")],
            vec![("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")],
        ),
    ];
    for (what, parts, headers) in &forged {
        let (kind, body) = multipart(parts);
        let refused = send(&m, "POST", "/workspace/upload", ALICE, Some((&kind, body)), headers);
        assert_eq!(refused.status, 403, "{what}: {}", refused.text());
        assert!(refused.text().contains("Request refused"), "{what}");
    }
    assert_eq!(names_in(&ws), ["inbox"], "a forged form wrote something");
    // Bad forms: not multipart, names that are not file names, folders out of the workspace.
    let not_multipart = send(&m, "POST", "/workspace/upload", ALICE, Some(("text/plain", b"x".to_vec())), &[]);
    assert_eq!(not_multipart.status, 400);
    for (folder, file) in [("", ".."), ("", "."), ("../bob", "x"), ("inbox/../../bob", "x"), ("inbox//x", "x")] {
        let (kind, body) = multipart(&[
            ("csrf", None, csrf.as_bytes()),
            ("folder", None, folder.as_bytes()),
            ("file", Some(file), b"x"),
        ]);
        let refused = send(&m, "POST", "/workspace/upload", ALICE, Some((&kind, body)), &[]);
        assert_eq!(refused.status, 400, "{folder} {file}: {}", refused.text());
    }
    assert_eq!(names_in(&ws), ["inbox"]);
    assert_eq!(names_in(&host_ws(&m, "bob")), Vec::<String>::new());
    // Another user's workspace: not for bob, for the administrator.
    assert_eq!(send(&m, "GET", "/workspace?user=alice", BOB, None, &[]).status, 404);
    let seen = send(&m, "GET", "/workspace?user=alice&path=inbox", ADMIN, None, &[]).text();
    assert!(seen.contains(">alice&#39;s workspace</a>"), "{seen}");
    assert!(seen.contains("href=\"/workspace?path=inbox/day%201&#38;user=alice\">day 1/</a>"), "{seen}");
    assert_eq!(send(&m, "GET", "/workspace?path=../bob", ALICE, None, &[]).status, 400);

    // Deleting asks first (a page that works without JavaScript), then deletes on the form.
    let confirm = send(&m, "GET", "/workspace/delete?path=inbox", ALICE, None, &[]);
    assert_eq!(confirm.status, 200);
    let text = confirm.text();
    assert!(text.contains("Delete inbox?") && text.contains("everything in it"), "{text}");
    assert!(ws.join("inbox").exists(), "the confirmation page deleted something");
    assert_eq!(send(&m, "GET", "/workspace/delete?path=", ALICE, None, &[]).status, 409, "the root");
    let form = format!("csrf={csrf}&path=inbox&recursive=true");
    let kind = "application/x-www-form-urlencoded";
    let bob_form = format!("csrf={bobs}&path=inbox&recursive=true");
    assert_eq!(send(&m, "POST", "/workspace/delete", ALICE, Some((kind, bob_form.into_bytes())), &[]).status, 403);
    let deleted = send(&m, "POST", "/workspace/delete", ALICE, Some((kind, form.into_bytes())), &[]);
    assert_eq!((deleted.status, deleted.header("location")), (303, Some("/workspace?deleted=inbox")));
    assert_eq!(names_in(&ws), Vec::<String>::new());
    assert!(send(&m, "GET", "/workspace?deleted=inbox", ALICE, None, &[]).text().contains("inbox was deleted."));
}

#[test]
fn an_upload_form_larger_than_the_room_left_is_workspace_full_with_nothing_written() {
    let m = master("ws-web-quota", &["--workspace-quota", "16MiB"]);
    let csrf = send(&m, "GET", "/workspace", ALICE, None, &[]).csrf();
    let big = noise(20 << 20, 4);
    let (kind, body) =
        multipart(&[("csrf", None, csrf.as_bytes()), ("folder", None, b""), ("file", Some("big"), &big)]);
    let refused = send(&m, "POST", "/workspace/upload", ALICE, Some((&kind, body)), &[]);
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert!(refused.text().contains("workspace is full"), "{}", refused.text());
    assert_eq!(names_in(&host_ws(&m, "alice")), Vec::<String>::new());
}

#[test]
fn a_browser_uploads_into_the_workspace_showing_progress() {
    let m = master("ws-browser", &[]);
    let dir = temp_dir("ws-browser-files");
    let file = dir.join("measurements.csv");
    let bytes = noise(8 << 20, 5);
    std::fs::write(&file, &bytes).unwrap();
    let port = m.url.rsplit(':').next().unwrap().to_string();
    let driver = start_driver();
    let b = Browser::open(&driver, 1280, 860);
    // Signed in with the form (a session cookie), as people are.
    b.goto(&format!("http://127.0.0.1:{port}/workspace"));
    b.wait_for("id=\"sign-in-form\"");
    b.type_into("#username", ALICE.0);
    b.type_into("#password", ALICE.1);
    b.click("#sign-in");
    b.wait_for("This folder is empty.");

    // What the page's script says about the upload is recorded where it survives the page
    // that follows (the script leaves for the folder's page when the upload is done).
    b.cmd(
        "POST",
        "/execute/sync",
        Some(json!({"args": [], "script": "
            var said = document.getElementById('upload-status');
            sessionStorage.setItem('said', '');
            new MutationObserver(function () {
                sessionStorage.setItem('said', sessionStorage.getItem('said') + '|' + said.textContent);
            }).observe(said, {childList: true, characterData: true, subtree: true});
        "})),
    );
    b.send_keys("#upload-file", file.to_str().unwrap());
    b.click("#upload-button");
    let done = b.wait_for("1 file was uploaded.");
    assert!(done.contains("measurements.csv") && done.contains("8 MiB"), "{done}");
    assert_eq!(b.url(), format!("http://127.0.0.1:{port}/workspace?uploaded=1"));
    let said =
        b.cmd("POST", "/execute/sync", Some(json!({"args": [], "script": "return sessionStorage.getItem('said');"})));
    let said = said.as_str().unwrap_or("").to_string();
    assert!(said.contains("Sending...") && said.contains("% sent"), "the script showed no progress: {said:?}");
    assert_eq!(std::fs::read(host_ws(&m, "alice").join("measurements.csv")).unwrap(), bytes);
    b.screenshot("workspace");
    // The download link works with the session (the API would refuse the cookie): fetched by
    // the page's own script, as a click would, its bytes counted.
    let fetched = b.cmd(
        "POST",
        "/execute/async",
        Some(json!({"args": [], "script": "
            var done = arguments[arguments.length - 1];
            fetch(document.querySelector('a.file').href)
                .then(function (r) { return r.arrayBuffer().then(function (b) { done([r.status, b.byteLength]); }); })
                .catch(function (e) { done(String(e)); });
        "})),
    );
    assert_eq!(fetched, json!([200, bytes.len()]));

    // Deleting goes through the confirmation page.
    b.click("a.button.danger");
    b.wait_for("Delete measurements.csv?");
    b.click("#confirm-delete");
    b.wait_for("measurements.csv was deleted.");
    wait_until(5, || !host_ws(&m, "alice").join("measurements.csv").exists(), || "not deleted".into());
}
