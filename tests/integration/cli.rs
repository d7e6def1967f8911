//! The `zoe` command-line client, run as a real process against a real master: every
//! subcommand, its output, its errors and its exit codes (0 success, 1 refused, 2 usage,
//! 3 connection, 4 gave up waiting, 5 redirected elsewhere); and, against a fake server, what
//! the client does with redirects and with answers full of escape sequences. The last test runs a container on the real Docker Engine
//! (image `zoe-test-busybox:latest`, made by `tests/images/build.sh`) and fails loudly without
//! it.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{docker_deployment, IMAGE};
use crate::common::{app, outcome, temp_dir, zoe_bin, Master, Run, ADMIN};

/// Where the client points and as whom, through the environment (as 0.9.7).
#[derive(Clone, Copy)]
struct Env<'a> {
    url: &'a str,
    user: &'a str,
    pass: &'a str,
}

impl<'a> Env<'a> {
    fn of(m: &'a Master, (user, pass): (&'a str, &'a str)) -> Self {
        Env { url: &m.url, user, pass }
    }

    fn run(&self, args: &[&str]) -> Run {
        zoe(Some(*self), args, None)
    }
}

/// Runs the client with only the given settings in its environment; fails the test if it takes
/// more than a minute.
fn zoe(env: Option<Env>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(zoe_bin());
    cmd.args(args).env_remove("ZOE_URL").env_remove("ZOE_USER").env_remove("ZOE_PASS");
    if let Some(e) = env {
        cmd.env("ZOE_URL", e.url).env("ZOE_USER", e.user).env("ZOE_PASS", e.pass);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    outcome(child, Duration::from_secs(60), &format!("zoe {args:?} did not end within a minute"))
}

/// Writes `value` as a JSON file in `dir`.
fn json_file(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn settings_errors_are_one_line_and_unreachable_servers_fail_fast() {
    let dir = temp_dir("cli-settings");
    let good = json_file(&dir, "app.json", &app(IMAGE, Some("sleep 1")));

    // Each missing setting is named, on one line, with exit 2 and no request.
    let none = zoe(None, &["exec-ls"], None);
    none.fails_in_one_line(2, "no server given: set ZOE_URL or pass --url");
    assert_eq!(none.stderr.lines().count(), 1, "{none:#?}");
    let no_user = zoe(None, &["--url", "http://127.0.0.1:9", "exec-ls"], None);
    no_user.fails_in_one_line(2, "no user name given: set ZOE_USER or pass --user");
    assert_eq!(no_user.stderr.lines().count(), 1);
    let no_pass = zoe(None, &["--url", "http://127.0.0.1:9", "--user", "u", "user-ls"], None);
    no_pass.fails_in_one_line(2, "no password given: set ZOE_PASS or pass --password");
    zoe(None, &["--url", "ftp://example.org", "--user", "u", "--password", "p", "stats"], None)
        .fails_in_one_line(2, "use http:// or https://");
    // Usage errors from the argument parser also exit 2.
    zoe(None, &["exec-get", "not-a-number"], None).fails_in_one_line(2, "invalid value");
    zoe(None, &["user-set", "bob"], None).fails_in_one_line(2, "required arguments");
    zoe(None, &["start", "x", &good, "--timeout", "3"], None).fails_in_one_line(2, "--wait");

    // A closed port: exit 3 after the bounded retry (3 attempts, 1.5 s of pauses), quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let refused = zoe(Some(Env { url: &url, user: "u", pass: "p" }), &["exec-ls"], None);
    let took = started.elapsed();
    refused.fails_in_one_line(3, &format!("cannot connect to http://127.0.0.1:{port}"));
    assert!(refused.stderr.contains("tried 3 times"), "{refused:#?}");
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(10), "took {took:?}");

    // app-validate needs no server and uses the server's validation.
    assert_eq!(zoe(None, &["app-validate", &good], None).ok(), "Static validation OK\n");
    let mut bad = app(IMAGE, None);
    bad["services"][0]["ports"] = json!([{"name": "p", "protocol": "tcp", "port_number": "80"}]);
    let bad = json_file(&dir, "bad.json", &bad);
    zoe(None, &["app-validate", &bad], None)
        .fails_in_one_line(1, "application.services[0].ports[0].port_number: must be an integer");
    zoe(None, &["app-validate", &bad], None).fails_in_one_line(1, "(wrong_type)");
    std::fs::write(dir.join("broken.json"), "{\"name\": ").unwrap();
    zoe(None, &["app-validate", dir.join("broken.json").to_str().unwrap()], None)
        .fails_in_one_line(1, "(invalid_json)");
    zoe(None, &["app-validate", dir.join("missing.json").to_str().unwrap()], None).fails_in_one_line(2, "cannot read");
    assert_eq!(zoe(None, &["--json", "app-validate", &good], None).json(), json!({"valid": true}));
}

#[test]
fn users_and_stats_through_the_client() {
    let m = Master::start_in(&temp_dir("cli-users"), &["--no-docker"]);
    let admin = Env::of(&m, ADMIN);

    let out = admin.run(&["user-new", "--name", "alice", "--password", "pa", "--role", "user"]);
    assert!(out.ok().contains("User alice created"), "{out:#?}");
    admin
        .run(&["user-new", "--name", "alice", "--password", "x", "--role", "user"])
        .fails_in_one_line(1, "(user_exists)");
    admin
        .run(&["user-new", "--name", "bob", "--password", "x", "--role", "boss"])
        .fails_in_one_line(2, "invalid value 'boss'");
    admin
        .run(&["user-new", "--name", "Bad Name", "--password", "x", "--role", "user"])
        .fails_in_one_line(1, "(invalid_name)");
    // The password from standard input when not given (stdin is not a terminal here).
    let piped = zoe(Some(admin), &["user-new", "--name", "carol", "--role", "guest"], Some("cpass\n"));
    piped.ok();
    Env::of(&m, ("carol", "cpass")).run(&["user-get", "carol"]).ok();
    admin.run(&["user-new", "--name", "dave", "--role", "user"]).fails_in_one_line(2, "standard input was empty");

    let alice = Env::of(&m, ("alice", "pa"));
    let got = alice.run(&["user-get", "alice"]);
    assert!(got.ok().contains("User: alice\nRole: user\n"), "{got:#?}");
    admin.run(&["user-get", "nobody"]).fails_in_one_line(1, "(no_such_user)");
    alice.run(&["user-new", "--name", "eve", "--password", "x", "--role", "user"]).fails_in_one_line(1, "(admin_only)");

    let ls = admin.run(&["user-ls"]);
    let lines: Vec<&str> = ls.ok().lines().collect();
    assert!(lines[0].starts_with("ID  NAME") && lines[0].contains("ROLE"), "{ls:#?}");
    assert!(lines.iter().any(|l| l.split_whitespace().collect::<Vec<_>>()[1..3] == ["carol", "guest"]), "{ls:#?}");
    let users = admin.run(&["--json", "user-ls"]).json();
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");

    // Wrong password: the server's message and code, non-zero.
    Env::of(&m, ("alice", "wrong")).run(&["exec-ls"]).fails_in_one_line(1, "(unauthorized)");
    // Flags win over the environment.
    zoe(Some(Env::of(&m, ("alice", "wrong"))), &["--password", "pa", "user-get", "alice"], None).ok();

    // user-set: role by an administrator, password by the user; the old password stops working.
    let set = admin.run(&["user-set", "alice", "--role", "admin"]);
    assert!(set.ok().contains("Role: admin"), "{set:#?}");
    assert_eq!(admin.run(&["--json", "user-set", "alice", "--role", "user"]).json()["role"], "user");
    alice.run(&["user-set", "alice", "--role", "admin"]).fails_in_one_line(1, "(admin_only)");
    alice.run(&["user-set", "alice", "--password", "pb"]).ok();
    Env::of(&m, ("alice", "pb")).run(&["user-get", "alice"]).ok();

    // user-rm; then the user is gone.
    assert!(admin.run(&["user-rm", "carol"]).ok().contains("User carol deleted"));
    admin.run(&["user-rm", "carol"]).fails_in_one_line(1, "(no_such_user)");

    let stats = admin.run(&["stats"]);
    let text = stats.ok();
    for key in ["Scheduler", "waiting:", "running:", "Platform", "placement:", "status:"] {
        assert!(text.contains(key), "{key} missing: {stats:#?}");
    }
    // A master without a back end shows its engine as unreachable.
    assert!(text.contains("unreachable"), "{stats:#?}");
    let stats = admin.run(&["--json", "stats"]).json();
    assert!(stats["stats_swarm"]["stats"].is_object() && stats["stats_scheduler"]["stats"].is_object(), "{stats}");
}

#[test]
fn executions_through_the_client_without_docker() {
    let dir = temp_dir("cli-exec");
    let m = Master::start_in(&dir, &["--no-docker"]);
    m.create_user("alice", "user", "pa");
    let alice = Env::of(&m, ("alice", "pa"));
    let file = json_file(&dir, "app.json", &app(IMAGE, Some("sleep 60")));
    let mut invalid = app(IMAGE, None);
    invalid["services"][0]["monitr"] = json!(true);
    let invalid = json_file(&dir, "invalid.json", &invalid);

    // Checked locally first: nothing reaches the server.
    alice
        .run(&["start", "bad", &invalid])
        .fails_in_one_line(1, "application.services[0].monitr: unknown field \"monitr\" (did you mean \"monitor\"?)");
    let started = alice.run(&["start", "wc1", &file]);
    let id1: u64 = started
        .ok()
        .strip_prefix("Application scheduled successfully with ID ")
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{started:#?}"));
    alice.run(&["start", "wc1", &file]).fails_in_one_line(1, "(execution_name_in_use)");
    let id2 = alice.run(&["--json", "start", "wc2", &file]).json()["execution_id"].as_u64().unwrap();

    let ls = alice.run(&["exec-ls"]);
    let lines: Vec<Vec<&str>> = ls.ok().lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["ID", "NAME", "OWNER", "STATUS", "SCHEDULED", "STARTED", "FINISHED", "QUEUE"], "{ls:#?}");
    assert_eq!(
        (lines[1][..4].to_vec(), lines[1].last()),
        (vec![&*id1.to_string(), "wc1", "alice", "scheduled"], Some(&"1"))
    );
    assert_eq!((lines.len(), lines[2][1]), (3, "wc2"), "{ls:#?}");
    assert_eq!(alice.run(&["exec-ls", "--status", "running"]).ok().lines().count(), 1, "header only");
    let both = alice.run(&["--json", "exec-ls", "--status", "scheduled", "--status", "running"]).json();
    assert_eq!(both.as_array().unwrap().len(), 2, "{both}");
    alice.run(&["exec-ls", "--status", "queued"]).fails_in_one_line(2, "not a status");

    let got = alice.run(&["exec-get", &id1.to_string()]);
    for line in ["Execution wc1 (ID: ", "Status: scheduled\n", "Queue position: 1\n", "Application name: test-app\n"] {
        assert!(got.ok().contains(line), "{line:?} missing: {got:#?}");
    }
    let got = alice.run(&["--json", "exec-get", &id1.to_string()]).json();
    assert_eq!((&got["execution"]["status"], &got["services"]), (&json!("scheduled"), &json!([])));
    Env::of(&m, ADMIN).run(&["exec-get", "999"]).fails_in_one_line(1, "(no_such_execution)");
    let application: Value = serde_json::from_str(alice.run(&["exec-app-get", "wc1"]).ok()).unwrap();
    assert_eq!(application["services"][0]["command"], "sleep 60");
    alice.run(&["exec-app-get", "nothing"]).fails_in_one_line(1, "(no_such_execution)");

    // --wait is bounded by --timeout: progress on stderr, a clear message, exit 4.
    let t0 = Instant::now();
    let waited = alice.run(&["start", "wc3", &file, "--wait", "--timeout", "1"]);
    waited.fails_in_one_line(4, "gave up waiting after 1.0 s");
    assert!(waited.stderr.contains("still scheduled, queue position 3"), "{waited:#?}");
    assert!(waited.stderr.contains("scheduled (queue position 3)"), "progress: {waited:#?}");
    assert!(t0.elapsed() < Duration::from_secs(10));

    let term = alice.run(&["terminate", &id2.to_string()]);
    assert!(term.ok().contains(&format!("Execution {id2} terminated")));
    alice.run(&["terminate", "999"]).fails_in_one_line(1, "(no_such_execution)");
    let ended = alice.run(&["--json", "exec-ls", "--status", "terminated"]).json();
    assert_eq!(ended.as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect::<Vec<_>>(), [id2]);
    let active = alice.run(&["--json", "exec-ls", "--active"]).json();
    assert_eq!(active.as_array().unwrap().len(), 2, "{active}");
    // No container ever ran: no log.
    alice.run(&["logs", "999"]).fails_in_one_line(1, "(no_such_service)");
}

#[test]
fn start_wait_shows_endpoints_and_logs_stream_on_docker() {
    let (deployment, _cleanup) = docker_deployment(format!("c{}", std::process::id() % 100000));
    let dir = temp_dir("cli-docker");
    let ws = dir.join("ws");
    let m = Master::start_in(
        &dir,
        &[
            "--deployment-name",
            &deployment,
            "--workspace-base-path",
            ws.to_str().unwrap(),
            "--stop-grace",
            "1",
            "--publish-ports",
            "true",
        ],
    );
    let admin = Env::of(&m, ADMIN);

    let mut application = app(IMAGE, Some("sh -c 'echo hello; sleep 4; echo bye'"));
    application["services"][0]["ports"] = json!([{"name": "web", "protocol": "http", "port_number": 8080, "path": "/ui", "is_main_endpoint": true, "expose": true}]);
    let file = json_file(&dir, "app.json", &application);
    let run = admin.run(&["start", "hello", &file, "--wait", "--timeout", "60"]);
    let out = run.ok();
    assert!(out.contains("Execution hello (ID: ") && out.contains(") is running\n"), "{run:#?}");
    assert!(run.stderr.contains("execution") && run.stderr.contains(": running"), "progress: {run:#?}");
    let service_line =
        out.lines().find(|l| l.starts_with("Service main-hello-zoeadmin-")).unwrap_or_else(|| panic!("{run:#?}"));
    assert!(service_line.ends_with("): running"), "{run:#?}");
    let sid = service_line.split("(ID: ").nth(1).and_then(|r| r.split(')').next()).unwrap();
    // The link through the master's proxy, then where the port was published.
    let endpoint =
        out.lines().find(|l| l.starts_with(&format!(" - web: {}/proxy/", m.url))).unwrap_or_else(|| panic!("{run:#?}"));
    assert!(
        endpoint.contains("/main/8080/ui (published: http://127.0.0.1:") && endpoint.ends_with("/ui)"),
        "{endpoint}"
    );

    // logs --follow streams lines as they come and ends when the container does.
    let t0 = Instant::now();
    let mut follow = Command::new(zoe_bin())
        .args(["logs", sid, "--follow"])
        .env("ZOE_URL", &m.url)
        .env("ZOE_USER", ADMIN.0)
        .env("ZOE_PASS", ADMIN.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "hello");
    let first_at = t0.elapsed();
    assert_eq!(lines.next().unwrap().unwrap(), "bye");
    let second_at = t0.elapsed();
    assert!(second_at > first_at + Duration::from_secs(1), "not streamed: hello at {first_at:?}, bye at {second_at:?}");
    assert!(lines.next().is_none());
    let status = follow.wait().unwrap();
    assert!(status.success() && t0.elapsed() < Duration::from_secs(30), "{status:?} after {:?}", t0.elapsed());

    // The execution ended on its own; the log is kept.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = admin.run(&["--json", "exec-ls", "--status", "finished"]).json();
        if e.as_array().unwrap().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {}", admin.run(&["exec-ls"]).stdout);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(admin.run(&["logs", sid]).ok(), "hello\nbye\n");

    // An execution that fails to start: --wait says so and exits 1.
    let broken = json_file(&dir, "broken.json", &app(IMAGE, Some("no-such-program-here")));
    let failed = admin.run(&["start", "broken", &broken, "--wait", "--timeout", "60"]);
    failed.fails_in_one_line(1, "before running");

    // A long one, terminated through the client.
    let long = json_file(&dir, "long.json", &app(IMAGE, Some("sh -c 'echo one; echo two; sleep 600'")));
    let run = admin.run(&["--json", "start", "long", &long, "--wait", "--timeout", "60"]);
    let v = run.json();
    assert_eq!(v["execution"]["status"], "running", "{v}");
    assert_eq!(v["services"][0]["status"], "running", "{v}");
    let sid = v["services"][0]["id"].as_u64().unwrap().to_string();
    assert_eq!(admin.run(&["logs", &sid, "--tail", "1"]).ok(), "two\n");
    let id = v["execution"]["id"].as_u64().unwrap().to_string();
    admin.run(&["terminate", &id]).ok();
}

#[test]
fn simulate_compares_the_policies_on_a_sample_trace_and_names_bad_lines() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/traces/mixed-1000.csv");
    let out =
        std::process::Command::new(crate::common::zoe_bin()).args(["simulate", "--trace", trace]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for policy in ["| fifo | 1000 |", "| priority | 1000 |", "| size | 1000 |"] {
        assert!(text.lines().any(|l| l.starts_with(policy)), "{policy} in\n{text}");
    }
    let bad = crate::common::temp_dir("badtrace").join("t.csv");
    std::fs::write(&bad, "submit_s,memory_mib,cores,duration_s,priority\n0,512,1,60,1\n5,lots,1,60,1\n").unwrap();
    let out =
        std::process::Command::new(crate::common::zoe_bin()).args(["simulate", "--trace"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("line 3") && err.contains("memory_mib"), "{err}");
    // The generator is reproducible.
    let gen = |seed: &str| {
        std::process::Command::new(crate::common::zoe_bin())
            .args(["simulate", "--generate", "50", "--seed", seed])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(gen("7"), gen("7"));
    assert_ne!(gen("7"), gen("8"));
}

#[test]
fn simulate_refuses_hostile_traces_and_flags_with_a_sentence_and_shows_progress_on_a_terminal() {
    let dir = temp_dir("hostile-trace");
    let simulate = |args: &[&str]| {
        let out = Command::new(zoe_bin()).arg("simulate").args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // A running time that once made it panic (exit 101), named by its line.
    let big = dir.join("big.csv");
    std::fs::write(&big, "submit_s,memory_mib,cores,duration_s,priority\n0,512,1,60,1\n1,512,1,2.6e11,1\n").unwrap();
    let (code, _, err) = simulate(&["--trace", big.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 3: duration_s \"2.6e11\" is not a number") && !err.contains("panicked"), "{err}");
    // Capacities and loads that mean nothing, and a count that once aborted on its allocation.
    for flags in [
        &["--trace", "t.csv", "--cores", "NaN"][..],
        &["--trace", "t.csv", "--memory", "0"],
        &["--generate", "10", "--load", "0"],
        &["--generate", "10", "--load", "NaN"],
        &["--generate", "100000000000"],
    ] {
        let (code, out, err) = simulate(flags);
        assert_eq!(code, Some(2), "{flags:?}: {err}");
        assert!(out.is_empty() && err.starts_with("error: invalid value"), "{flags:?}: {err}");
    }
    // An endless line is refused at once, not read into memory.
    let (code, _, err) = simulate(&["--trace", "/dev/zero", "--policy", "fifo", "--mode", "rigid"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/dev/zero: line 1 is longer than 1024 bytes"), "{err}");
    // Executions that never fit are in the table.
    let huge = dir.join("huge.csv");
    std::fs::write(&huge, "0,4096,1,60,1\n0,512,1,60,1\n").unwrap();
    let (code, out, err) = simulate(&["--trace", huge.to_str().unwrap(), "--memory", "1GiB", "--mode", "rigid"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("| makespan | refused |") && out.contains("| fifo | 1 | rigid |"), "{out}");
    assert!(out.lines().filter(|l| l.starts_with("| fifo")).all(|l| l.ends_with("| 60 s | 1 |")), "{out}");
    // A long run on a terminal says how far it is; piped, stderr has no progress line.
    let long = dir.join("long.csv");
    let gen = Command::new(zoe_bin()).args(["simulate", "--generate", "150000", "--load", "1.5"]).output().unwrap();
    std::fs::write(&long, gen.stdout).unwrap();
    let args = ["--trace", long.to_str().unwrap(), "--policy", "fifo", "--mode", "rigid"];
    let (code, _, err) = simulate(&args);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("submitted") && !err.contains('\r'), "{err}");
    let command = format!("{} simulate {}", zoe_bin(), args.join(" "));
    // The line is due at once (not after a second): the run's length depends on the machine.
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("ZOE_SIMULATE_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{seen}");
    assert!(seen.contains("zoe simulate: fifo rigid (run 1 of 1): ") && seen.contains("% of the trace"), "{seen}");
    assert!(seen.contains("| fifo | 150000 | rigid |"), "{seen}");
}

/// A fake HTTP server on a free port of 127.0.0.1: answers every request (`METHOD /path`) with
/// the whole HTTP response `answer` gives, and keeps the requests it saw.
struct Fake {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn fake(answer: impl Fn(&str) -> String + Send + 'static) -> Fake {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request: String = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
            log.lock().unwrap().push(request.clone());
            let _ = s.write_all(answer(&request).as_bytes());
        }
    });
    Fake { url, seen }
}

/// A whole HTTP response.
fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let headers: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

#[test]
fn the_client_does_not_follow_a_redirect_to_another_origin_and_says_where() {
    // Another host, which would answer anything: it must never be asked.
    let elsewhere = fake(|_| response("200 OK", &[("Content-Type", "application/json")], "[]"));
    // (Named `localhost`: another host name than the 127.0.0.1 of the client's URL.)
    let target = format!("{}/api/0.6/user", elsewhere.url.replace("127.0.0.1", "localhost"));
    let moved = {
        let target = target.clone();
        fake(move |_| response("302 Found", &[("Location", &target)], ""))
    };
    let env = Env { url: &moved.url, user: "u", pass: "p" };
    let get = env.run(&["user-ls"]);
    get.fails_in_one_line(5, &format!("was redirected (302) by {} to {target}, another host; not followed", moved.url));
    assert!(get.stderr.contains("--url") && get.stdout.is_empty(), "{get:#?}");
    let post = env.run(&["user-new", "--name", "x", "--role", "user", "--password", "p"]);
    post.fails_in_one_line(5, "POST /user was redirected (302)");
    assert!(elsewhere.seen.lock().unwrap().is_empty(), "{:?}", elsewhere.seen.lock().unwrap());

    // The same host in https: another origin as well.
    let port = moved.url.rsplit(':').next().unwrap().to_string();
    let upgrade = fake(move |r| {
        let path = r.split(' ').nth(1).unwrap_or("/").to_string();
        response("301 Moved Permanently", &[("Location", &format!("https://127.0.0.1:{port}{path}"))], "")
    });
    Env { url: &upgrade.url, user: "u", pass: "p" }
        .run(&["stats"])
        .fails_in_one_line(5, "another scheme or port of the same host");

    // Within the server's origin a GET follows (a few times at most); a POST only with 307/308.
    let user = r#"{"id": 7, "name": "bob", "role": "user", "uid": 200001, "gateway_urls": [], "owner": "bob", "created_at": "2026-12-01T08:00:00Z"}"#;
    let same = fake(move |r| match r {
        "GET /api/0.6/user/alice" => response("307 Temporary Redirect", &[("Location", "/api/0.6/user/bob")], ""),
        "GET /api/0.6/user/bob" => response("200 OK", &[("Content-Type", "application/json")], user),
        "GET /api/0.6/user/loop" => response("302 Found", &[("Location", "/api/0.6/user/loop")], ""),
        _ => response("303 See Other", &[("Location", "/api/0.6/info")], ""),
    });
    let env = Env { url: &same.url, user: "u", pass: "p" };
    assert!(env.run(&["user-get", "alice"]).ok().starts_with("User: bob\n"));
    env.run(&["user-get", "loop"]).fails_in_one_line(5, "more than 3 redirects");
    env.run(&["user-rm", "carol"]).fails_in_one_line(5, "on the same server, which would change the request's method");
    assert_eq!(same.seen.lock().unwrap().iter().filter(|r| r.as_str() == "GET /api/0.6/user/loop").count(), 4);
}

/// What a tenant's command would do to the terminal of an administrator who reads it back.
const SPOOF: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good";

/// Whether `text` holds a control character other than a newline or a tab.
fn raw_controls(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

#[test]
fn what_the_server_sends_is_printed_with_its_control_characters_escaped() {
    // The JSON of a real execution, from a real master, with a tenant's escape sequences in it
    // (as an older master, or any server pretending to be one, could send).
    let m = Master::start_in(&temp_dir("cli-spoof"), &["--no-docker"]);
    let id = m.submit(ADMIN, "real", &app(IMAGE, None));
    let (_, mut e) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    e["error"] = json!(format!("start failed: exec {SPOOF}: not found"));
    e["application"]["name"] = json!(SPOOF);
    e["owner"] = json!(format!("{SPOOF}\nOwner: zoeadmin"));
    let one = e.to_string();
    let list = json!([e]).to_string();
    let refusal = json!({"message": SPOOF, "code": "no_such_execution"}).to_string();
    let log = format!("first line\n{SPOOF}\n\u{9b}31mred\ttab\n");
    let server = fake(move |r| {
        let json = [("Content-Type", "application/json")];
        match r {
            "GET /api/0.6/execution" => response("200 OK", &json, &list),
            "GET /api/0.6/execution/1" => response("200 OK", &json, &one),
            "GET /api/0.6/service/4/logs" => response("200 OK", &[("Content-Type", "text/plain")], &log),
            _ => response("404 Not Found", &json, &refusal),
        }
    });
    let env = Env { url: &server.url, user: "u", pass: "p" };
    assert_eq!(id, 1);
    for args in [&["exec-get", "1"][..], &["exec-ls"], &["logs", "4"]] {
        let out = env.run(args);
        let text = out.ok();
        assert!(!raw_controls(text), "{args:?}: {text:?}");
        assert!(text.contains("\\u{1b}]0;PWNED\\u{7}\\u{1b}[1A\\u{1b}[2K\\rzoe: all good"), "{args:?}: {text}");
    }
    let shown = env.run(&["exec-get", "1"]).ok().to_string();
    assert!(shown.contains("Owner: \\u{1b}]0;PWNED") && shown.contains("all good\\nOwner: zoeadmin\n"), "{shown}");
    assert_eq!(shown.lines().filter(|l| l.starts_with("Owner:")).count(), 1, "no forged line: {shown}");
    let logged = env.run(&["logs", "4"]).ok().to_string();
    assert!(logged.starts_with("first line\n") && logged.ends_with("\\u{9b}31mred\ttab\n"), "{logged:?}");
    // --raw gives the log as it is; --json the same data, in JSON that escapes it.
    assert_eq!(env.run(&["logs", "4", "--raw"]).ok(), format!("first line\n{SPOOF}\n\u{9b}31mred\ttab\n"));
    let out = env.run(&["--json", "exec-get", "1"]);
    assert!(!raw_controls(out.ok()), "{:?}", out.stdout);
    let v: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(v["execution"]["application"]["name"], SPOOF);
    // A refusal quoting a tenant: one escaped line on stderr.
    let refused = env.run(&["exec-get", "2"]);
    refused.fails_in_one_line(1, "zoe: \\u{1b}]0;PWNED\\u{7}");
    assert!(!raw_controls(&refused.stderr) && refused.stderr.lines().count() == 1, "{refused:#?}");
}
