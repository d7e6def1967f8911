//! History: ended executions moved to the archive read exactly as before through every path
//! (API, filters and pages, query, metrics, the 0.9.7 client, the checkpoint tools), stay the
//! caller's own, survive restarts and reverts, and a missing segment stops the master.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{app, assert_error, temp_dir, wait_until, zoe_bin, Master, ADMIN};

/// Archive as soon as more than two ended executions are in the checkpoint.
const ARCHIVE_FAST: &[&str] = &["--no-docker", "--history-keep", "2", "--archive-batch", "1"];
const ALICE: (&str, &str) = ("alice", "pa");
const BOB: (&str, &str) = ("bob", "pb");

fn checkpoint_cmd(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(zoe_bin()).arg("checkpoint").args(args).arg("--state-dir").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn newest_checkpoint(dir: &Path) -> String {
    std::fs::read_to_string(files(&dir.join("checkpoints"), "ron").last().unwrap()).unwrap()
}

/// Waits until the newest checkpoint holds at most `keep` ended executions.
fn wait_archived(dir: &Path, keep: usize) {
    let polled = crate::common::poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let text = newest_checkpoint(dir);
        let ended = text.matches("status: terminated,").count();
        if ended <= keep && !files(&dir.join("archive"), "ron").is_empty() {
            Ok(())
        } else {
            Err(text)
        }
    });
    polled.unwrap_or_else(|text| panic!("nothing was archived in 20 s; newest checkpoint:\n{text}"));
}

/// Submits `n` executions named `prefix-0`, `prefix-1`... and terminates each; their ids.
fn submit_and_end(m: &Master, prefix: &str, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let id = m.submit(ADMIN, &format!("{prefix}-{i}"), &app("img", None));
            assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ADMIN).0, 204);
            id
        })
        .collect()
}

fn ids(list: &Value) -> Vec<u64> {
    list.as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

fn link_of(headers: &[(String, String)]) -> Option<String> {
    let link = headers.iter().find(|(k, _)| k == "link")?.1.clone();
    assert!(link.ends_with(">; rel=\"next\""), "{link}");
    Some(link.trim_start_matches('<').split('>').next().unwrap().to_string())
}

fn zoe097(m: &Master, auth: (&str, &str), args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/zoe097.py")).args(args);
    String::from_utf8(client_output(cmd, m, auth)).unwrap()
}

/// Runs a client of `m` as `auth` (`ZOE_URL`, `ZOE_USER`, `ZOE_PASS`); its output, once it succeeded.
fn client_output(mut cmd: Command, m: &Master, auth: (&str, &str)) -> Vec<u8> {
    let out = cmd.env("ZOE_URL", &m.url).env("ZOE_USER", auth.0).env("ZOE_PASS", auth.1).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn archived_executions_read_as_before_through_every_path() {
    let dir = temp_dir("history");
    // The executions are made before archiving may begin (default history settings), so that
    // the checkpoint before the first archiving holds all of them whatever the machine's speed;
    // the master is then restarted with a window of 2 and archives as it goes.
    let mut m = Master::start_in(&dir, &["--no-docker"]);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    // Six ended executions (five of alice, one of bob), and one of alice still queued.
    let mut ended = Vec::new();
    for (who, name) in [(ALICE, "a1"), (ALICE, "a2"), (BOB, "b1"), (ALICE, "a3"), (ALICE, "a4"), (ALICE, "a5")] {
        let id = m.submit(who, name, &app("img", None));
        assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), who).0, 204);
        let (s, v) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
        assert_eq!((s, v["status"].as_str()), (200, Some("terminated")), "{v}");
        ended.push((who, id, v));
    }
    let live = m.submit(ALICE, "live", &app("img", None));
    m.kill();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    wait_archived(&dir, 2);

    // The same JSON, by id, for the owner and an administrator; others see nothing.
    for (who, id, before) in &ended {
        for auth in [*who, ADMIN] {
            let (s, v) = m.get(&format!("/api/0.6/execution/{id}"), auth);
            assert_eq!((s, &v), (200, before), "execution {id} as {}", auth.0);
        }
        let other = if who.0 == "alice" { BOB } else { ALICE };
        assert_error(&m.get(&format!("/api/0.6/execution/{id}"), other), 404, "no_such_execution");
        assert_error(&m.delete(&format!("/api/0.6/execution/{id}"), other), 404, "no_such_execution");
        // Terminating an ended execution is a no-op, archived or not.
        assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), *who).0, 204);
    }
    let all: Vec<u64> = ended.iter().map(|(_, id, _)| *id).chain([live]).collect();
    let (s, list) = m.get("/api/0.6/execution", ADMIN);
    assert_eq!((s, ids(&list)), (200, all.clone()), "every execution once, in id order: {list}");
    for (_, id, before) in &ended {
        assert_eq!(list.as_array().unwrap().iter().find(|e| e["id"] == *id), Some(before));
    }
    let (_, mine) = m.get("/api/0.6/execution", BOB);
    assert_eq!(ids(&mine), [ended[2].1], "bob sees only his own");

    // Filters, and pages that follow the Link header to the end.
    let count = |q: &str, auth| m.get(&format!("/api/0.6/execution?{q}"), auth).1.as_array().unwrap().len();
    assert_eq!(count("status=terminated", ADMIN), 6);
    assert_eq!(count("status=terminated,scheduled", ADMIN), 7);
    assert_eq!(count("status=scheduled", ALICE), 1);
    assert_eq!(count("name=a3", ALICE), 1);
    assert_eq!(count("owner=bob", ADMIN), 1);
    assert_eq!(count("owner=bob", ALICE), 0, "a filter never widens what one sees");
    assert_eq!(count("since=2000-01-01T00:00:00Z", ADMIN), 7);
    assert_eq!(count("since=2100-01-01T00:00:00Z", ADMIN), 0);
    let mut paged = Vec::new();
    let mut next = Some("/api/0.6/execution?status=terminated&limit=4".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let (s, headers, v) = m.call_full("GET", &path, Some(ADMIN), None);
        assert_eq!(s, 200, "{v}");
        let mut page = ids(&v);
        assert!(page.len() <= 4);
        page.append(&mut paged);
        paged = page;
        next = link_of(&headers);
        pages += 1;
    }
    assert_eq!((pages, paged.as_slice()), (2, &all[..6]), "two pages, newest first, nothing twice");
    assert_error(&m.get("/api/0.6/execution?status=done", ADMIN), 400, "invalid_request");
    assert_error(&m.get("/api/0.6/execution?limit=0", ADMIN), 400, "invalid_request");
    assert_error(&m.get("/api/0.6/execution?stauts=running", ADMIN), 400, "invalid_request");

    // Query, metrics and the web page read the archive too.
    let (s, v) = m.post("/api/0.6/query", ALICE, &json!({"what": "execution", "filters": {"name": "a1"}}));
    assert_eq!((s, ids(&v)), (200, vec![ended[0].1]), "{v}");
    let (_, metrics) = m.call("GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("zoe_executions{status=\"terminated\"} 6"), "{metrics}");
    let (s, page) = m.get("/executions", ALICE);
    assert_eq!(s, 200);
    assert!(page.as_str().unwrap().contains("/executions/") && page.as_str().unwrap().contains(">a1<"), "{page}");

    // 0.9.7's client lists and reads archived executions.
    let ls = zoe097(&m, ALICE, &["exec-ls"]);
    assert!(ls.contains(&format!("Execution a1 (User: alice, ID: {}): terminated", ended[0].1)), "{ls}");
    assert_eq!(ls.lines().count(), 6, "{ls}");
    let get = zoe097(&m, ALICE, &["exec-get", &ended[0].1.to_string()]);
    assert!(get.contains(&format!("Execution a1 (ID: {})", ended[0].1)) && get.contains("Status: terminated"), "{get}");
    assert!(zoe097(&m, ALICE, &["exec-app-get", "a1"]).contains("\"name\": \"test-app\""));
    assert_eq!(zoe097(&m, BOB, &["exec-get", &ended[0].1.to_string()]).trim(), "Execution not found");

    // A restart reads the archive's index again.
    m.kill();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    let (_, list) = m.get("/api/0.6/execution", ADMIN);
    assert_eq!(ids(&list), all);
    m.kill();

    // The tools: who changed what, the segments, verify; show a segment.
    let (ok, out) = checkpoint_cmd(&dir, &["list"]);
    assert!(ok, "{out}");
    assert!(out.contains("alice submit") && out.contains("alice terminate"), "{out}");
    assert!(out.contains("zoe archive segment 1"), "{out}");
    assert!(out.contains("zoe init"), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("segment")), "{out}");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok && out.contains("segment 1: ok"), "{out}");
    let (ok, out) = checkpoint_cmd(&dir, &["show", "--segment", "1"]);
    assert!(ok && out.starts_with("// Zoe archive segment 1 of deployment \"test\""), "{out}");

    // Revert to the checkpoint just before the first archiving: what segment 1 holds is in that
    // checkpoint too, and is listed once; ids are not handed out again.
    let checkpoints = files(&dir.join("checkpoints"), "ron");
    let first_archive = checkpoints
        .iter()
        .position(|f| std::fs::read_to_string(f).unwrap().contains("action: archive, ids: [1]"))
        .expect("a checkpoint records the first archiving");
    let before_archive = &checkpoints[first_archive - 1];
    let number = before_archive.file_stem().unwrap().to_string_lossy().parse::<u64>().unwrap();
    let segment_one = std::fs::read_to_string(dir.join("archive/0000000001.ron")).unwrap();
    let in_both = ended.iter().filter(|(_, id, _)| segment_one.contains(&format!("            id: {id},\n"))).count();
    assert!(in_both >= 1);
    let (ok, out) = checkpoint_cmd(&dir, &["revert", &number.to_string()]);
    assert!(ok && out.contains("stays readable"), "{out}");
    let m = Master::start_in(&dir, ARCHIVE_FAST);
    let max_archived = ended.iter().map(|(_, id, _)| *id).max().unwrap();
    let listed_once = |m: &Master| {
        let (_, list) = m.get("/api/0.6/execution", ADMIN);
        let mut seen = ids(&list);
        seen.dedup();
        assert_eq!(seen.len(), list.as_array().unwrap().len(), "nothing twice after a revert: {list}");
        for (_, id, _) in &ended {
            assert!(seen.contains(id), "archived execution {id} lost by the revert");
        }
        let (_, metrics) = m.call("GET", "/metrics", None, None);
        assert!(metrics.as_str().unwrap().contains("zoe_executions{status=\"terminated\"} 6"), "counted once");
    };
    listed_once(&m);
    // What the reverted checkpoint holds beyond the window is archived again, in a new segment.
    wait_archived(&dir, 2);
    listed_once(&m);
    let carol = m.create_user("carol", "user", "pc");
    assert!(carol > max_archived, "archived ids never come back: carol got {carol}");
    drop(m);

    // A segment the checkpoint needs is missing: the master says which, and does not start.
    assert!(!newest_checkpoint(&dir).contains("archived_segments: 0,"));
    std::fs::rename(dir.join("archive/0000000001.ron"), dir.join("0000000001.ron.away")).unwrap();
    let err = Master::try_start_in(&dir, &["--no-docker"]).err().expect("refused without segment 1");
    assert!(err.contains("archive segment 1 is missing"), "{err}");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok && out.contains("segment 1: MISSING"), "{out}");
}

/// On Docker: an execution that ran and ended is archived, and its services, their kept logs and
/// its page are still there for its owner (and only for them).
#[test]
fn an_archived_execution_keeps_its_services_logs_and_page() {
    use crate::common::docker::{application, docker_master_with, service, wait_status};
    let (m, _cleanup, _) = docker_master_with("archived", &["--history-keep", "0", "--archive-batch", "1"]);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let main = service("main", true, 1, 1, "sh -c 'echo hello from the archive; sleep 2'", json!([]));
    let id = m.submit(ALICE, "ran", &application(vec![main]));
    let running = wait_status(&m, ALICE, id, &["running", "error"], 60);
    assert_eq!(running["status"], "running", "{running}");
    let sid = running["services"][0].as_u64().unwrap();
    let (_, live) = m.get(&format!("/api/0.6/service/{sid}"), ALICE);
    let ended = wait_status(&m, ALICE, id, &["finished", "error"], 60);
    assert_eq!(ended["status"], "finished", "{ended}");
    // Archived: out of the newest checkpoint, into a segment.
    let archived = || !newest_checkpoint(&m.state_dir).contains(&format!("            id: {id},\n"));
    wait_until(20, archived, || format!("execution {id} was not archived"));
    assert!(std::fs::read_to_string(m.state_dir.join("archive/0000000001.ron")).unwrap().contains("name: \"ran\""));
    let (s, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
    assert_eq!((s, &e), (200, &ended), "the same JSON once archived");
    let (s, svc) = m.get(&format!("/api/0.6/service/{sid}"), ALICE);
    assert_eq!(s, 200, "{svc}");
    assert_eq!((svc["name"].clone(), svc["execution_id"].clone()), (live["name"].clone(), json!(id)));
    assert_eq!((svc["status"].as_str(), svc["exit_code"].as_i64()), (Some("exited"), Some(0)), "{svc}");
    let (s, headers, log) = m.call_full("GET", &format!("/api/0.6/service/{sid}/logs"), Some(ALICE), None);
    assert_eq!(s, 200);
    assert!(log.as_str().unwrap_or_default().contains("hello from the archive"), "{log}");
    assert!(headers.contains(&("x-content-type-options".into(), "nosniff".into())), "a kept log: {headers:?}");
    let (s, page) = m.get(&format!("/executions/{id}"), ALICE);
    assert_eq!(s, 200);
    assert!(page.as_str().unwrap().contains(live["name"].as_str().unwrap()), "the page lists its service");
    assert_error(&m.get(&format!("/api/0.6/service/{sid}"), BOB), 404, "no_such_service");
    assert_error(&m.get(&format!("/api/0.6/service/{sid}/logs"), BOB), 404, "no_such_service");
    assert_eq!(m.get(&format!("/executions/{id}"), BOB).0, 404);
}

/// A listing that reaches deep into the archive is written piece by piece: whole, in order,
/// valid JSON, the same as page by page; the command-line client filters on the server.
#[test]
fn a_listing_deep_in_the_archive_is_whole_and_pages_agree() {
    let dir = temp_dir("history-deep");
    let m = Master::start_in(&dir, ARCHIVE_FAST);
    let all = submit_and_end(&m, "deep", 300);
    wait_archived(&dir, 2);
    let (s, list) = m.get("/api/0.6/execution", ADMIN);
    assert_eq!(s, 200);
    assert_eq!(ids(&list), all, "every execution once, in id order");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == "terminated" && e["application"]["name"] == "test-app"));
    let mut paged = Vec::new();
    let mut next = Some("/api/0.6/execution?limit=128".to_string());
    while let Some(path) = next {
        let (s, headers, v) = m.call_full("GET", &path, Some(ADMIN), None);
        assert_eq!(s, 200, "{v}");
        paged.splice(0..0, ids(&v));
        next = link_of(&headers);
    }
    assert_eq!(paged, all);
    let (s, q) = m.post("/api/0.6/query", ADMIN, &json!({"what": "execution", "filters": {"status": "terminated"}}));
    assert_eq!((s, ids(&q).len()), (200, 300));

    let mut cmd = Command::new(zoe_bin());
    cmd.args(["--json", "exec-ls", "--status", "terminated", "--name", "deep-7", "--limit", "5"]);
    let v: Value = serde_json::from_slice(&client_output(cmd, &m, ADMIN)).unwrap();
    assert_eq!(ids(&v), [all[7]], "{v}");

    // A segment damaged behind the master's back: that execution is a clear 500 that names no
    // path of the master; everything else still answers; verify names the segment.
    let seg = dir.join("archive/0000000001.ron");
    let text = std::fs::read_to_string(&seg).unwrap();
    let first: u64 = text.split("\n            id: ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    std::fs::write(&seg, text.replacen("status: terminated,", "status: terminatex,", 1)).unwrap();
    let (s, v) = m.get(&format!("/api/0.6/execution/{first}"), ADMIN);
    assert_error(&(s, v.clone()), 500, "archive_unreadable");
    assert!(!v["message"].as_str().unwrap().contains(dir.to_str().unwrap()), "{v}");
    assert_eq!(m.get(&format!("/api/0.6/execution/{}", all[299]), ADMIN).0, 200);
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok && out.contains("segment 1: DAMAGED"), "{out}");
}

/// The archive's index file: rebuilt from the segments when it is missing, then read as is;
/// a segment edited by hand (same size) is caught while the master runs and indexed again at the
/// next start, or refused with its place; a stray segment stops the master, and is never
/// numbered past.
#[test]
fn the_archive_index_is_rebuilt_edits_are_seen_and_strays_refused() {
    let dir = temp_dir("history-index");
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    let ended = submit_and_end(&m, "ix", 8);
    wait_archived(&dir, 2);
    let (_, before) = m.get("/api/0.6/execution", ADMIN);
    m.kill();
    let archive = dir.join("archive");
    let segments = files(&archive, "ron");
    let index = archive.join("index");
    assert!(!segments.is_empty() && index.exists(), "{segments:?}");
    let indexed_from_text = |m: &Master| m.log_text().contains("indexed from their text");

    // No index: every segment is indexed from its text, the same; the next start reads the file.
    std::fs::remove_file(&index).unwrap();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    assert!(indexed_from_text(&m), "{}", m.log_text());
    assert!(index.exists());
    assert_eq!(m.get("/api/0.6/execution", ADMIN).1, before);
    m.kill();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    assert!(!indexed_from_text(&m), "fast again: {}", m.log_text());
    assert_eq!(m.get("/api/0.6/execution", ADMIN).1, before);

    // A same-size edit while the master runs: the execution it touches is refused with a hint
    // that helps (a restart), and the restart shows the edit, in reads and in filters.
    let (seg, id) = segments
        .iter()
        .find_map(|s| {
            let text = std::fs::read_to_string(s).unwrap();
            ended.iter().find(|id| text.contains(&format!("            id: {id},\n"))).map(|id| (s.clone(), *id))
        })
        .unwrap();
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    let name = e["name"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&seg).unwrap();
    let edited = text.replace(&format!("name: \"{name}\","), "name: \"ix-w\",");
    assert_eq!((edited.len(), edited != text), (text.len(), true));
    std::fs::write(&seg, &edited).unwrap();
    let (s, v) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    assert_error(&(s, v.clone()), 500, "archive_unreadable");
    assert!(v["message"].as_str().unwrap().contains("restarts the master"), "{v}");
    m.kill();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    assert!(indexed_from_text(&m), "{}", m.log_text());
    assert_eq!(m.get(&format!("/api/0.6/execution/{id}"), ADMIN).1["name"], "ix-w");
    let named = |m: &Master, n: &str| ids(&m.get(&format!("/api/0.6/execution?name={n}"), ADMIN).1);
    assert_eq!((named(&m, "ix-w"), named(&m, &name)), (vec![id], vec![]));
    m.kill();

    // The same text written again (a touch, a copy): read and compared, not parsed. An edit that
    // breaks the segment stops the master with the file and the line.
    std::fs::write(&seg, &edited).unwrap();
    let mut m = Master::start_in(&dir, ARCHIVE_FAST);
    assert!(!indexed_from_text(&m), "{}", m.log_text());
    m.kill();
    let broken = edited.replace("name: \"ix-w\",", "name: \"ix-w\"!");
    let line = broken.lines().position(|l| l.contains("\"ix-w\"!")).unwrap() + 1;
    std::fs::write(&seg, &broken).unwrap();
    let err = Master::try_start_in(&dir, ARCHIVE_FAST).err().expect("a broken segment is refused");
    let file = seg.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&format!("{file}:{line}:")), "names {file}:{line}: {err}");
    std::fs::write(&seg, &edited).unwrap();

    // A stray segment after a gap, then right after the last: refused, named, and verify says so.
    let n = segments.len() as u64;
    let stray = archive.join(format!("{:010}.ron", n + 2));
    std::fs::copy(&segments[0], &stray).unwrap();
    let err = Master::try_start_in(&dir, ARCHIVE_FAST).err().expect("a stray segment is refused");
    assert!(err.contains(&format!("archive segment {} is not this state's", n + 2)), "{err}");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok && out.contains(&format!("segment {}: STRAY", n + 2)), "{out}");
    // Right after the last, a sound segment of this deployment (segment 1 again, renumbered).
    let next = archive.join(format!("{:010}.ron", n + 1));
    let copy =
        std::fs::read_to_string(&stray).unwrap().replace("    segment: 1,\n", &format!("    segment: {},\n", n + 1));
    std::fs::write(&next, copy).unwrap();
    std::fs::remove_file(&stray).unwrap();
    let err = Master::try_start_in(&dir, ARCHIVE_FAST).err().expect("a stray segment is refused");
    assert!(err.contains(&format!("archive segment {} ", n + 1)) && err.contains("is not this state's"), "{err}");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok && out.contains(&format!("segment {}: STRAY", n + 1)), "{out}");
    std::fs::remove_file(&next).unwrap();

    // Without it, the next segment takes the next number; verify checks every segment whole and
    // says how long it took.
    let m = Master::start_in(&dir, ARCHIVE_FAST);
    let id = m.submit(ADMIN, "ix-8", &app("img", None));
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ADMIN).0, 204);
    let needs = format!("action: archive, ids: [{}]", n + 1);
    wait_until(20, || newest_checkpoint(&dir).contains(&needs), || format!("no segment {} was written", n + 1));
    let (_, before) = m.get("/api/0.6/execution", ADMIN);
    drop(m);
    assert_eq!(files(&archive, "ron").len() as u64, n + 1, "numbered without a gap");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("and {} archive segment(s) whole", n + 1)) && out.trim_end().ends_with(" s"),
        "{out}"
    );

    // A crash after segment n + 1 was written and before the checkpoint that needs it (that
    // checkpoint and any later one are gone): the segment is kept, what it holds listed once.
    let checkpoints = files(&dir.join("checkpoints"), "ron");
    let at = checkpoints.iter().position(|f| std::fs::read_to_string(f).unwrap().contains(&needs)).unwrap();
    for f in &checkpoints[at..] {
        std::fs::remove_file(f).unwrap();
    }
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok && out.contains(&format!("segment {}: ok (1 executions; written just before a crash", n + 1)), "{out}");
    let m = Master::start_in(&dir, ARCHIVE_FAST);
    assert!(m.log_text().contains("written just before a crash"), "{}", m.log_text());
    assert_eq!(m.get("/api/0.6/execution", ADMIN).1, before, "nothing lost, nothing twice");
}
