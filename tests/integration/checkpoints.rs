//! Durability and the checkpoint tools: SIGKILL in the middle of a stream of changes, damaged
//! and hand-edited checkpoints, `zoe checkpoint list|show|diff|verify|revert`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::{app, assert_error, assert_kept, newest_checkpoint, temp_dir, wait_until, zoe_bin, Master, ADMIN};

const NO_DOCKER: &[&str] = &["--no-docker"];
/// Ended executions move to the archive almost at once, so SIGKILL lands in archiving too; the
/// per-user limits are lifted so that the clients stream changes as fast as they are taken.
const ARCHIVING: &[&str] = &[
    "--no-docker",
    "--history-keep",
    "3",
    "--archive-batch",
    "2",
    "--submit-rate",
    "1000000",
    "--submit-burst",
    "1000000",
    "--user-max-queued",
    "1000000",
    "--user-max-active",
    "1000000",
];

fn checkpoint_cmd(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(zoe_bin()).arg("checkpoint").args(args).arg("--state-dir").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A state directory (a new temporary one, `name`) that holds the user alice, its master stopped.
fn state_with_alice(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    m.kill();
    dir
}

/// What the clients were told: (execution id, terminated?) for every acknowledged change.
type Acked = Arc<Mutex<Vec<(String, u64, bool)>>>;

/// Also covers archiving: ended executions move to archive segments while the clients run, so
/// kills land between a segment and the checkpoint that drops its executions, and inside either
/// write. Nothing acknowledged is lost and nothing is listed twice.
#[test]
fn every_acknowledged_change_survives_sigkill() {
    let dir = temp_dir("sigkill");
    let mut m = Master::start_in(&dir, ARCHIVING);
    m.create_user("alice", "user", "pa");
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..4 {
        let stop = Arc::new(AtomicBool::new(false));
        let url = m.url.clone();
        let clients: Vec<_> = (0..6)
            .map(|t| {
                let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
                std::thread::spawn(move || {
                    let agent: ureq::Agent =
                        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
                    let auth = "Basic YWxpY2U6cGE="; // alice:pa
                    for n in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let name = format!("r{round}-t{t}-{n}");
                        let body = json!({"name": name, "application": app("img", None)}).to_string();
                        let mut resp = match agent
                            .post(format!("{url}/api/0.6/execution"))
                            .header("Authorization", auth)
                            .header("Content-Type", "application/json")
                            .send(body.as_bytes())
                        {
                            Ok(r) => r,
                            Err(e) => {
                                eprintln!("round {round} client {t}: POST failed after {n}: {e}");
                                break;
                            }
                        };
                        let Ok(v) = resp.body_mut().read_json::<serde_json::Value>() else { break };
                        let id = v["execution_id"].as_u64().unwrap();
                        acked.lock().unwrap().push((name, id, false));
                        if n % 3 == 0 {
                            let ok = agent
                                .delete(format!("{url}/api/0.6/execution/{id}"))
                                .header("Authorization", auth)
                                .call()
                                .is_ok_and(|r| r.status() == 204);
                            if !ok {
                                break;
                            }
                            acked.lock().unwrap().push((String::new(), id, true));
                        }
                    }
                })
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(700 + rng % 1300));
        m.kill();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        m = Master::start_in(&dir, ARCHIVING);
        let (s, list) = m.get("/api/0.6/execution", ADMIN);
        assert_eq!(s, 200);
        let list = list.as_array().unwrap().clone();
        let mut ids: Vec<u64> = list.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        ids.dedup();
        assert_eq!(ids.len(), list.len(), "round {round}: an execution is listed twice");
        let acked = acked.lock().unwrap();
        assert!(acked.len() > 10, "round {round}: too few changes to mean anything ({})", acked.len());
        for (name, id, terminated) in acked.iter() {
            let e = assert_kept(&list, &format!("round {round}"), *id, &format!("{id} {name}"), *terminated);
            if !*terminated && !name.is_empty() {
                assert_eq!(e["name"], name.as_str());
            }
        }
        let segments = std::fs::read_dir(dir.join("archive")).unwrap().count();
        eprintln!(
            "round {round}: {} acknowledged changes all present after SIGKILL ({segments} archive files)",
            acked.len()
        );
    }
    drop(m);
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok, "every checkpoint and segment file loads: {out}");
    assert!(out.contains("segment 1: ok"), "executions were archived meanwhile: {out}");
}

#[test]
fn damaged_newest_checkpoint_stops_the_master_with_place_and_hint() {
    let dir = temp_dir("damaged");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    m.kill();
    let newest = newest_checkpoint(&dir);
    let text = std::fs::read_to_string(&newest).unwrap();
    std::fs::write(&newest, &text[..text.len() / 2]).unwrap();

    let err = Master::try_start_in(&dir, NO_DOCKER).err().expect("the master must refuse a damaged checkpoint");
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name), "names the file: {err}");
    assert!(err.contains("zoe checkpoint verify"), "hints at verify: {err}");
    assert!(err.contains("--from-checkpoint"), "hints at --from-checkpoint: {err}");
    assert!(regex_line_col(&err), "gives line and column: {err}");

    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok, "{out}");
    assert!(out.contains("DAMAGED"), "{out}");

    // Starting from the previous checkpoint works: it becomes the newest, bob is not there.
    let number: u64 = name.trim_end_matches(".ron").parse().unwrap();
    let m = Master::start_in(&dir, &["--no-docker", "--from-checkpoint", &(number - 1).to_string()]);
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6/user/bob", ADMIN).0, 404);
    assert_ne!(newest_checkpoint(&dir), newest, "the old state was written as a new checkpoint");
}

fn regex_line_col(s: &str) -> bool {
    s.split(".ron:").nth(1).is_some_and(|rest| {
        let mut parts = rest.split(':');
        parts.next().is_some_and(|l| l.parse::<u32>().is_ok()) && parts.next().is_some_and(|c| c.parse::<u32>().is_ok())
    })
}

#[test]
fn a_hand_edited_checkpoint_is_used_and_a_bad_edit_is_pinpointed() {
    let dir = state_with_alice("handedit");
    let newest = newest_checkpoint(&dir);
    let text = std::fs::read_to_string(&newest).unwrap();
    // Promote alice to admin by hand.
    let edited = text.replacen("role: user,", "role: admin,", 1);
    assert_ne!(edited, text);
    std::fs::write(&newest, &edited).unwrap();
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok, "{out}");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    let (s, v) = m.get("/api/0.6/user/alice", ("alice", "pa"));
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
    m.kill();

    // A typo in an edit is refused with its line.
    let newest = newest_checkpoint(&dir);
    let text = std::fs::read_to_string(&newest).unwrap();
    let bad = text.replacen("role: admin,", "role: superuser,", 1);
    let bad_line = bad.lines().position(|l| l.contains("superuser")).unwrap() + 1;
    std::fs::write(&newest, &bad).unwrap();
    let err = Master::try_start_in(&dir, NO_DOCKER).err().expect("refused");
    assert!(err.contains(&format!(".ron:{bad_line}:")), "points at line {bad_line}: {err}");
}

#[test]
fn checkpoint_tools_list_show_diff_and_revert() {
    let dir = temp_dir("tools");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    let before = newest_checkpoint(&dir);
    m.create_user("bob", "user", "pb");

    // Revert refuses while the master runs.
    let n_before: u64 = before.file_stem().unwrap().to_string_lossy().parse().unwrap();
    let (ok, out) = checkpoint_cmd(&dir, &["revert", &n_before.to_string()]);
    assert!(!ok && out.contains("master is running"), "{out}");
    m.kill();

    let (ok, out) = checkpoint_cmd(&dir, &["list"]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 4, "header + three checkpoints: {out}");
    let (ok, out) = checkpoint_cmd(&dir, &["show"]);
    assert!(ok && out.contains("name: \"bob\""), "{out}");
    let (ok, out) = checkpoint_cmd(&dir, &["diff", &n_before.to_string()]);
    assert!(ok, "{out}");
    assert!(out.contains("+            name: \"bob\","), "{out}");
    assert!(!out.contains("-            name: \"alice\","), "{out}");

    let (ok, out) = checkpoint_cmd(&dir, &["revert", &n_before.to_string()]);
    assert!(ok, "{out}");
    let (_, out) = checkpoint_cmd(&dir, &["list"]);
    assert_eq!(out.lines().count(), 5, "revert adds a checkpoint, history kept: {out}");
    let m = Master::start_in(&dir, NO_DOCKER);
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6/user/bob", ADMIN).0, 404);
    // Ids are never reused after a revert: the counter came back with the state, and bob's id
    // lived only in the reverted-away checkpoint, so a new user may take it; what matters is
    // that the state is consistent.
    let (s, v) = m.post("/api/0.6/user", ADMIN, &json!({"name": "carol", "role": "guest", "password": "pc"}));
    assert_eq!(s, 201, "{v}");
}

/// The number of a checkpoint file.
fn number_of(path: &std::path::Path) -> u64 {
    path.file_stem().unwrap().to_string_lossy().parse().unwrap()
}

/// Finding 1: with the lock file deleted, a revert and a second master went ahead and wrote the
/// same checkpoint numbers. The lock is now the kernel's, on the directory itself; and a number
/// is written once, whatever else fails.
#[test]
fn one_master_per_state_directory_whatever_files_are_deleted() {
    let dir = temp_dir("lockheld");
    let m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    // Whatever files a careless operator deletes at the top of the state directory...
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    // ...a revert and a second master are refused while this one runs.
    let (ok, out) = checkpoint_cmd(&dir, &["revert", "1"]);
    assert!(!ok && out.contains("master is running"), "{out}");
    let err = Master::try_start_in(&dir, NO_DOCKER).err().expect("a second master must be refused");
    assert!(err.contains("another master is running"), "{err}");
    let before = newest_checkpoint(&dir);
    m.create_user("bob", "user", "pb");
    assert_eq!(number_of(&newest_checkpoint(&dir)), number_of(&before) + 1, "the master went on alone");

    // Even if another writer got past the lock, a checkpoint number is never written twice: the
    // master's change is refused and the other file kept.
    let next = dir.join("checkpoints").join(format!("{:010}.ron", number_of(&newest_checkpoint(&dir)) + 1));
    std::fs::write(&next, "written by someone else").unwrap();
    let r = m.post("/api/0.6/user", ADMIN, &json!({"name": "carol", "role": "user", "password": "pc"}));
    assert_error(&r, 503, "checkpoint_failed");
    assert!(r.1["message"].as_str().unwrap().contains("already exists"), "{}", r.1);
    assert_eq!(std::fs::read_to_string(&next).unwrap(), "written by someone else");
    std::fs::remove_file(&next).unwrap();
    m.create_user("carol", "user", "pc");
    assert_eq!(m.get("/api/0.6/user/bob", ADMIN).0, 200);
}

/// Finding 2: with `checkpoints/` empty or gone beside an archive, the master started afresh
/// with only `zoeadmin`.
#[test]
fn a_state_directory_with_a_past_but_no_checkpoint_is_refused() {
    let dir = temp_dir("pastlife");
    let flags = ["--no-docker", "--history-keep", "0", "--archive-batch", "1"];
    let mut m = Master::start_in(&dir, &flags);
    for n in 0..2 {
        let id = m.submit(ADMIN, &format!("gone-{n}"), &app("img", None));
        assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ADMIN).0, 204);
    }
    let segment = dir.join("archive").join("0000000001.ron");
    wait_until(10, || segment.exists(), || format!("nothing was archived:\n{}", m.log_text()));
    m.kill();
    for entry in std::fs::read_dir(dir.join("checkpoints")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let err = Master::try_start_in(&dir, &flags).err().expect("no empty start over an archive");
    assert!(err.contains("holds no checkpoint") && err.contains("archive/0000000001"), "{err}");
    assert!(err.contains("zoe checkpoint verify") && err.contains("move"), "says what to do: {err}");
    std::fs::remove_dir(dir.join("checkpoints")).unwrap();
    let err = Master::try_start_in(&dir, &flags).err().expect("no empty start without checkpoints/ either");
    assert!(err.contains("holds no checkpoint"), "{err}");
    assert!(!dir.join("checkpoints").read_dir().unwrap().any(|e| e.is_ok()), "nothing was written");
}

/// Finding 3: `from-checkpoint` left in the configuration reverted again at every restart.
#[test]
fn from_checkpoint_acts_once() {
    let dir = temp_dir("fromonce");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    let with_alice = number_of(&newest_checkpoint(&dir));
    m.create_user("bob", "user", "pb");
    m.kill();
    let from = ["--no-docker", "--from-checkpoint", &with_alice.to_string()];
    let mut m = Master::start_in(&dir, &from);
    assert_eq!((m.get("/api/0.6/user/alice", ADMIN).0, m.get("/api/0.6/user/bob", ADMIN).0), (200, 404));
    m.kill();
    // Started again with the setting and nothing changed since: the copy is used, loudly.
    let mut m = Master::start_in(&dir, &from);
    assert!(m.log_text().contains("already used"), "{}", m.log_text());
    m.create_user("carol", "user", "pc");
    m.kill();
    // Changes were made since: refused, naming the setting and what to do.
    let err = Master::try_start_in(&dir, &from).err().expect("a second revert would throw carol away");
    assert!(err.contains("ZOE_FROM_CHECKPOINT") && err.contains("already used"), "{err}");
    assert!(err.contains(&format!("zoe checkpoint revert {with_alice}")), "{err}");
    let m = Master::start_in(&dir, NO_DOCKER);
    assert_eq!(m.get("/api/0.6/user/carol", ADMIN).0, 200, "nothing was lost");
}

/// `text` with the value of the `nth` line starting with `field: ` replaced.
fn set_field(text: &str, field: &str, nth: usize, value: &str) -> (String, usize) {
    let key = format!("{field}: ");
    let mut seen = 0;
    let mut at = 0;
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let trimmed = l.trim_start();
            if trimmed.starts_with(&key) {
                seen += 1;
                if seen == nth + 1 {
                    at = i + 1;
                    let indent = &l[..l.len() - trimmed.len()];
                    return format!("{indent}{key}{value},");
                }
            }
            l.to_string()
        })
        .collect();
    assert!(at > 0, "no {field} #{nth}");
    (lines.join("\n") + "\n", at)
}

/// Finding 4: hand edits that `verify` accepted and that broke the master later (ids wrapping,
/// two users with uid -1, a 64 GB allocation on the first `GET`, a running execution without
/// services). `verify` and the master now refuse each, at its line.
#[test]
fn hand_edits_that_would_break_the_master_later_are_refused_at_their_line() {
    let dir = temp_dir("edits");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    m.submit(("alice", "pa"), "queued", &app("img", None));
    m.kill();
    let newest = newest_checkpoint(&dir);
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(&newest).unwrap();
    let running = text
        .replace("status: scheduled,", "status: running,")
        .replace("time_started: None,", "time_started: Some(\"2026-01-01T00:00:00Z\"),");
    let cases: Vec<(String, usize, &str)> = vec![
        with(set_field(&text, "next_id", 0, "18446744073709551615"), "ids would run out"),
        with(set_field(&text, "next_uid", 0, "4294967295"), "next_uid"),
        with(set_field(&text, "uid", 1, "65534"), "reserved"),
        with(set_field(&text, "total_count", 0, "4000000000"), "total_count 4000000000"),
        with(set_field(&text, "total_count", 0, "0"), "total_count 0"),
        with(set_field(&text, "memory", 0, "18446744073709551615"), "memory"),
        with(set_field(&text, "priority", 0, "4000000000"), "priority"),
        (running.clone(), running.lines().position(|l| l.trim() == "services: [],").unwrap() + 1, "service records"),
    ];
    fn with((text, line): (String, usize), why: &'static str) -> (String, usize, &'static str) {
        (text, line, why)
    }
    for (edited, line, why) in cases {
        std::fs::write(&newest, &edited).unwrap();
        let place = format!("{name}:{line}:");
        let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
        assert!(!ok && out.contains("DAMAGED") && out.contains(&place) && out.contains(why), "{why}: {out}");
        let err = Master::try_start_in(&dir, NO_DOCKER).err().unwrap_or_else(|| panic!("{why}: the master started"));
        assert!(err.contains(&place) && err.contains(why), "{why}: {err}");
    }
    // Cores that are not a number, infinite or not positive.
    // A submission writes its cores (`default-cores` when the description gives none).
    let with_cores = text.clone();
    assert!(with_cores.contains("cores: Some(1.0),"), "{with_cores}");
    for (bad, shown) in [("NaN", "NaN"), ("inf", "inf"), ("-1.0", "-1")] {
        std::fs::write(&newest, with_cores.replace("cores: Some(1.0),", &format!("cores: Some({bad}),"))).unwrap();
        let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
        assert!(!ok && out.contains(&format!("cores {shown} is not")), "{out}");
    }
    std::fs::write(&newest, &with_cores).unwrap();
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(ok, "a sound edit still passes: {out}");
}

/// Finding 7: the tools panicked on a closed pipe (`| head -1`): "failed printing to stdout",
/// a backtrace, rc 101. And hostile values came out whole.
#[test]
fn the_tools_exit_cleanly_on_a_closed_pipe_and_shorten_hostile_values() {
    let dir = state_with_alice("pipe");
    for args in [&["list"][..], &["show"], &["diff", "1"], &["verify"]] {
        let mut child = Command::new(zoe_bin())
            .arg("checkpoint")
            .args(args)
            .arg("--state-dir")
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before reading anything, as `head -1` does after a line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{args:?}: {:?} {stderr}", out.status);
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} checkpoint list --state-dir {} | head -1; echo \"rc=${{PIPESTATUS[0]}}\"",
            zoe_bin(),
            dir.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("checkpoint") && text.contains("rc=0"), "{text}");

    // A name of a megabyte, in who changed what and in a user name: a line, not a megabyte.
    let newest = newest_checkpoint(&dir);
    let text = std::fs::read_to_string(&newest).unwrap();
    let long = "x".repeat(1 << 20);
    let changes = format!("changes: [\n        (by: \"{long}\", action: submit, ids: [1]),\n    ],");
    let edited = text.replacen("changes: [", &changes.replacen("],", "", 1), 1);
    let edited = if edited == text { text.replacen("changes: [],", &changes, 1) } else { edited };
    std::fs::write(&newest, &edited).unwrap();
    let (ok, out) = checkpoint_cmd(&dir, &["list"]);
    assert!(ok && out.len() < 4096 && out.contains("bytes)"), "{} bytes: {}", out.len(), &out[..out.len().min(500)]);
    std::fs::write(&newest, text.replacen("name: \"alice\"", &format!("name: \"{long}\""), 1)).unwrap();
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(
        !ok && out.len() < 4096 && out.contains("DNS label"),
        "{} bytes: {}",
        out.len(),
        &out[..out.len().min(500)]
    );
}

/// The hint names the newest checkpoint that actually loads, not simply the one before.
#[test]
fn the_hint_names_the_newest_checkpoint_that_loads() {
    let dir = temp_dir("hint");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    for n in ["alice", "bob", "carol"] {
        m.create_user(n, "user", "p");
    }
    m.kill();
    let newest = number_of(&newest_checkpoint(&dir));
    for n in [newest, newest - 1] {
        std::fs::write(dir.join("checkpoints").join(format!("{n:010}.ron")), "(damaged").unwrap();
    }
    let good = newest - 2;
    let err = Master::try_start_in(&dir, NO_DOCKER).err().expect("refused");
    assert!(err.contains(&format!("--from-checkpoint {good}")), "{err}");
    let (ok, out) = checkpoint_cmd(&dir, &["verify"]);
    assert!(!ok && out.contains(&format!("zoe checkpoint revert {good}")), "{out}");
}
