//! Durability and the checkpoint tools: SIGKILL in the middle of a stream of changes, damaged
//! and hand-edited checkpoints, `zoe checkpoint list|show|diff|verify|revert`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::{app, temp_dir, zoe_bin, Master, ADMIN};

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

fn newest_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    files.pop().unwrap()
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
            let e = list
                .iter()
                .find(|e| e["id"] == *id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged execution {id} {name} lost"));
            if *terminated {
                assert_eq!(e["status"], "terminated", "round {round}: acknowledged termination of {id} lost");
            } else if !name.is_empty() {
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
    let newest = newest_file(&dir);
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
    assert_ne!(newest_file(&dir), newest, "the old state was written as a new checkpoint");
}

fn regex_line_col(s: &str) -> bool {
    s.split(".ron:").nth(1).is_some_and(|rest| {
        let mut parts = rest.split(':');
        parts.next().is_some_and(|l| l.parse::<u32>().is_ok()) && parts.next().is_some_and(|c| c.parse::<u32>().is_ok())
    })
}

#[test]
fn a_hand_edited_checkpoint_is_used_and_a_bad_edit_is_pinpointed() {
    let dir = temp_dir("handedit");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pa");
    m.kill();
    let newest = newest_file(&dir);
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
    let newest = newest_file(&dir);
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
    let before = newest_file(&dir);
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
