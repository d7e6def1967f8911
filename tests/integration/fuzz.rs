//! Schemathesis against the master's own OpenAPI document: bounded examples per operation, a
//! hard time limit, and no answer may be a 5xx. Needs the virtualenv `tests/run.sh` prepares
//! (`target/st-venv`, schemathesis from PyPI).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{temp_dir, Master};

const LIMIT: Duration = Duration::from_secs(120);

fn schemathesis() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/st-venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run tests/run.sh (it installs schemathesis into target/st-venv), or \
         `python3 -m venv target/st-venv && target/st-venv/bin/pip install -q schemathesis`",
        bin.display()
    );
    bin
}

#[test]
fn schemathesis_finds_no_server_error() {
    let bin = schemathesis();
    let dir = temp_dir("fuzz");
    let m = Master::start_in(&dir, &["--no-docker", "--login-failures-max", "100000"]);
    // An administrator of its own, so that every operation can succeed.
    m.create_user("fuzzer", "admin", "fuzz-pw");
    // `PUT` and `DELETE /user/{name}` go to this one: schemathesis reuses names it sees in
    // answers, and deleting the fuzzer (or changing its password) would leave the rest of the
    // run with 401s.
    m.create_user("target", "user", "target-pw");
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, "[parameters]\n\"path.name\" = \"target\"\n").unwrap();
    let (s, v) = m.call("GET", "/api/0.6/openapi.json", None, None);
    assert_eq!(s, 200, "{v}");
    assert!(v["openapi"].as_str().is_some_and(|o| o.starts_with("3.")), "{v}");

    let report = dir.join("schemathesis");
    let mut child = Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/api/0.6/openapi.json", m.url))
        .args(["--checks", "not_a_server_error"])
        .args(["--auth", "fuzzer:fuzz-pw"])
        .args(["--max-examples", "50", "--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--request-timeout", "30", "--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .current_dir(&dir) // its cache (.schemathesis/) stays out of the repository
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    // Read the output on threads so that a full pipe cannot block it; kill it at the limit.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = format!("{}\n{}", out.join().unwrap(), err.join().unwrap());
    eprintln!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    let status = status.unwrap_or_else(|| panic!("schemathesis ran past {LIMIT:?}; killed:\n{output}"));
    assert!(status.success(), "schemathesis failed ({status}):\n{output}\n--- master log ---\n{}", m.log_text());

    eprintln!("{output}");
    // The master still answers, and still knows the fuzzer.
    let (s, v) = m.get("/api/0.6/info", ("fuzzer", "fuzz-pw"));
    assert_eq!(s, 200, "{v}");
    let (s, _) = m.call("GET", "/healthz", None, None);
    assert_eq!(s, 200);
}
