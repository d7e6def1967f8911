//! A master that cannot start says why in one line on its standard error and exits with a
//! non-zero code, never with a panic: a port that is taken, a TLS file it cannot read, a state
//! directory another master holds, settings it refuses.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use crate::common::{temp_dir, zoe_bin, Master};

/// Runs `zoe master` on `state_dir` with `args` until it gives up (at most a minute); asserts that
/// it failed with exactly one line on its standard error, which starts with `start`; returns it.
#[track_caller]
fn assert_refused(state_dir: &Path, args: &[&str], start: &str) -> String {
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(zoe_bin())
        .arg("master")
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .env("ZOE_ADMIN_PASSWORD", "exits-pw")
        .env("ZOE_WORKSPACE_BASE_PATH", state_dir.join("ws"))
        .env("ZOE_LOG", "info")
        .env_remove("ZOE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!stderr.contains("panicked"), "it panicked:\n{stderr}");
    assert!(!out.status.success() && out.status.code() != Some(124), "exit {:?}:\n{stderr}", out.status);
    assert_eq!(lines.len(), 1, "not one line:\n{stderr}");
    assert!(lines[0].starts_with(start), "expected {start:?}, got:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn a_port_that_is_taken_is_one_line_and_an_exit_code() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_refused(
        &temp_dir("port-taken"),
        &["--no-docker", "--listen-address", "127.0.0.1", "--listen-port", &port],
        &format!("zoe master: cannot listen on 127.0.0.1:{port}: Address already in use"),
    );
}

#[test]
fn an_unreadable_tls_file_is_one_line_and_an_exit_code() {
    let dir = temp_dir("tls-unreadable");
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    assert_refused(&dir.join("state"), &["--no-docker", "--tls-cert", missing, "--tls-key", missing], "zoe master: ");
}

#[test]
fn a_state_directory_in_use_is_one_line_and_an_exit_code() {
    let dir = temp_dir("state-locked");
    let _first = Master::start_in(&dir, &["--no-docker"]);
    assert_refused(&dir, &["--no-docker", "--listen-port", "0"], "zoe master: another master is running on");
}

#[test]
fn refused_settings_are_one_line_and_an_exit_code() {
    let dir = temp_dir("bad-settings");
    assert_refused(&dir, &["--no-docker", "--listen-port", "0", "--default-cores", "0"], "zoe master: --default-cores");
    let file = dir.join("zoe.toml");
    std::fs::write(&file, "no-such-key = 1\n").unwrap();
    let file = file.to_str().unwrap();
    assert_refused(&dir, &["--no-docker", "--listen-port", "0", "--config", file], "zoe master: config file");
}

#[test]
fn a_bad_dataset_setting_is_one_line_and_an_exit_code() {
    let dir = temp_dir("bad-dataset");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(dir.join("file"), "x").unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("sub")).unwrap();
    let good = format!("corpus={}", data.display());
    let cases = [
        (format!("corpus={}/missing", data.display()), "cannot use"),
        (format!("corpus={}", dir.join("file").display()), "is not a folder"),
        ("corpus=relative/data".to_string(), "must be absolute"),
        (format!("Corpus={}", data.display()), "lowercase DNS label"),
        (data.display().to_string(), "must be NAME=HOSTPATH"),
        // Every user would read the checkpoints (their password hashes) or others' workspaces.
        (format!("state={}", state.display()), "overlaps the state directory"),
        (format!("all={}", dir.display()), "overlaps the state directory"),
        (format!("sub={}/sub", state.display()), "overlaps the state directory"),
    ];
    for (setting, why) in cases {
        let args = ["--no-docker", "--listen-port", "0", "--dataset", &setting];
        let line = assert_refused(&state, &args, "zoe master: --dataset");
        assert!(line.contains(why), "{setting}: {line}");
    }
    // A name given twice, by flags, the environment (comma-separated) and the config file.
    let twice = ["--no-docker", "--listen-port", "0", "--dataset", &good, "--dataset", &good];
    assert_refused(&state, &twice, "zoe master: --dataset: the name \"corpus\" is given twice");
    let file = dir.join("zoe.toml");
    std::fs::write(&file, format!("dataset = [\"{good}\", \"other={}/nope\"]\n", data.display())).unwrap();
    let file = file.to_str().unwrap();
    assert_refused(&state, &["--no-docker", "--listen-port", "0", "--config", file], "zoe master: --dataset \"other=");
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(zoe_bin())
        .args(["master", "--no-docker", "--listen-port", "0", "--state-dir"])
        .arg(&state)
        .env("ZOE_DATASETS", format!("{good},{good}"))
        .env("ZOE_WORKSPACE_BASE_PATH", state.join("ws"))
        .env_remove("ZOE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is given twice"), "{stderr}");
}
