//! Test harness: runs the real `zoe` binary as a master on a free port with its own state
//! directory, and talks to it over real HTTP.

pub mod apps;
pub mod browser;
pub mod docker;
pub mod engine;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod slapd;
pub mod states;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use process::MasterProcess;

pub const ADMIN: (&str, &str) = ("zoeadmin", "admin-secret");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("zoe-it-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The newest checkpoint file (`checkpoints/*.ron`) of the state directory `dir`.
pub fn newest_checkpoint(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

/// Unmounts every file system mounted at a folder for which `wanted` holds (workspace images),
/// deepest first, and removes the images beside them (`<folder>.ext4`).
pub fn unmount_where(wanted: impl Fn(&Path) -> bool) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> =
        table.lines().filter_map(|l| l.split(' ').nth(4)).map(PathBuf::from).filter(|p| wanted(p)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for p in points {
        let _ = Command::new("timeout").args(["-k", "5", "60", "umount"]).arg(&p).status();
        let mut image = p.clone().into_os_string();
        image.push(".ext4");
        let _ = std::fs::remove_file(image);
    }
}

/// Unmounts every file system mounted under `dir` (see [`unmount_where`]).
pub fn unmount_under(dir: &Path) {
    unmount_where(|p| p.starts_with(dir));
}

/// A master process, and an HTTP client for it.
pub struct Master {
    pub process: MasterProcess,
    pub url: String,
    pub state_dir: PathBuf,
    pub agent: ureq::Agent,
}

/// The masters this test process started and has not reaped: their process ids and deployments.
static STARTED: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// Kills (SIGKILL) the masters of `deployment` that this test process started, by process id
/// (their `Master`s reap them when dropped).
pub fn kill_masters_of(deployment: &str) {
    for (pid, _) in STARTED.lock().unwrap().iter().filter(|(_, d)| d == deployment) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
}

pub fn zoe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_zoe")
}

impl Master {
    /// Starts a master on `state_dir` with extra flags, and waits until it listens.
    pub fn start_in(state_dir: &Path, extra: &[&str]) -> Master {
        Self::try_start_in(state_dir, extra).unwrap_or_else(|e| panic!("master did not start: {e}"))
    }

    /// Starts a master from another `zoe` binary (e.g. a release build).
    pub fn start_with_bin(bin: &str, state_dir: &Path, extra: &[&str]) -> Master {
        Self::try_start_bin(bin, state_dir, extra).unwrap_or_else(|e| panic!("master did not start: {e}"))
    }

    /// Starts a master, or returns what it printed when it did not come up.
    pub fn try_start_in(state_dir: &Path, extra: &[&str]) -> Result<Master, String> {
        Self::try_start_bin(zoe_bin(), state_dir, extra)
    }

    fn try_start_bin(bin: &str, state_dir: &Path, extra: &[&str]) -> Result<Master, String> {
        let mut command = Command::new(bin);
        command
            .arg("master")
            .args(["--listen-port", "0"])
            .env("ZOE_DEPLOYMENT_NAME", "test")
            .env("ZOE_HTTP_WORKERS", "2")
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .env("ZOE_ADMIN_PASSWORD", ADMIN.1)
            // Most tests use short passwords; tests of the minimum pass --min-password-length.
            .env("ZOE_MIN_PASSWORD_LENGTH", "1")
            // Workspaces (loop-mounted images) under the test's own folder, never in the
            // checkout, where nothing would unmount them (a `--workspace-base-path` flag wins).
            .env("ZOE_WORKSPACE_BASE_PATH", state_dir.join("ws"))
            .env("ZOE_LOG", "info")
            .env_remove("ZOE_CONFIG")
            .stdout(Stdio::null());
        let process = MasterProcess::spawn(command)?;
        let deployment = extra.windows(2).find(|w| w[0] == "--deployment-name").map_or("test", |w| w[1]);
        STARTED.lock().unwrap().push((process.child.id(), deployment.to_string()));
        let agent = process::agent(Duration::from_secs(30));
        Ok(Master { url: process.url.clone(), process, state_dir: state_dir.to_path_buf(), agent })
    }

    /// Kills the master with SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        self.process.kill();
        let pid = self.process.child.id();
        STARTED.lock().unwrap().retain(|(p, _)| *p != pid);
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The `zoe` client with `args`, signed in to this master as `who` (`ZOE_URL`, `ZOE_USER`,
    /// `ZOE_PASS`).
    pub fn client(&self, who: (&str, &str), args: &[&str]) -> Command {
        let mut cmd = Command::new(zoe_bin());
        cmd.args(args).env("ZOE_URL", &self.url).env("ZOE_USER", who.0).env("ZOE_PASS", who.1);
        cmd
    }

    /// Sends a request; returns the status and the body as JSON (Null when empty, a string
    /// when not JSON).
    pub fn call(&self, method: &str, path: &str, auth: Option<(&str, &str)>, body: Option<&str>) -> (u16, Value) {
        let (status, _, value) = self.call_full(method, path, auth, body);
        (status, value)
    }

    /// Like `call`, with the response headers.
    pub fn call_full(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> (u16, Vec<(String, String)>, Value) {
        let url = format!("{}{path}", self.url);
        let mut req = request_builder(method, &url, auth);
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(body.unwrap_or("").as_bytes().to_vec()).unwrap();
        let mut resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = headers_of(&resp);
        let text = resp.body_mut().with_config().limit(64 * 1024 * 1024).read_to_string().unwrap_or_default();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, value)
    }

    pub fn get(&self, path: &str, auth: (&str, &str)) -> (u16, Value) {
        self.call("GET", path, Some(auth), None)
    }

    pub fn post(&self, path: &str, auth: (&str, &str), body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(auth), Some(&body.to_string()))
    }

    pub fn delete(&self, path: &str, auth: (&str, &str)) -> (u16, Value) {
        self.call("DELETE", path, Some(auth), None)
    }

    /// Creates a user as zoeadmin; panics unless it worked.
    pub fn create_user(&self, name: &str, role: &str, password: &str) -> u64 {
        let (s, v) = self.post("/api/0.6/user", ADMIN, &json!({"name": name, "role": role, "password": password}));
        assert_eq!(s, 201, "create user {name}: {v}");
        v["user"]["id"].as_u64().unwrap()
    }

    /// Submits an execution; panics unless it worked.
    pub fn submit(&self, auth: (&str, &str), name: &str, app: &Value) -> u64 {
        let (s, v) = self.post("/api/0.6/execution", auth, &json!({"name": name, "application": app}));
        assert_eq!(s, 201, "submit {name}: {v}");
        v["execution_id"].as_u64().unwrap()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asks `check` every `every` until it is done (`Ok`), for at most `within`; then gives what it
/// said last (`Err`). The one way the tests wait for something to happen.
pub fn poll<T, E>(within: Duration, every: Duration, mut check: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(done) => return Ok(done),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// An HTTP client as a test of pages wants it: statuses and redirects are answers (a redirect
/// is not followed); nothing waits longer than `timeout`.
pub fn unfollowing_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// What one run of a client (`zoe`) did: its exit code (-1 when a signal ended it), standard
/// output and standard error.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success; its standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts the exit code and `text` on standard error.
    #[track_caller]
    pub fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        assert!(self.stderr.contains(text), "expected {text:?} on stderr: {self:#?}");
    }

    /// As [`Run::fails`], and the error is one line of the client's (`zoe: ...`) or of its
    /// argument parser (`error: ...`).
    #[track_caller]
    pub fn fails_in_one_line(&self, code: i32, text: &str) {
        self.fails(code, text);
        let last = self.stderr.lines().last().unwrap_or("");
        assert!(last.starts_with("zoe: ") || self.stderr.starts_with("error: "), "{self:#?}");
    }

    /// Asserts success; its standard output read as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// Waits for `child`, spawned with its standard output and error piped, reading both as it runs;
/// kills it and fails with `late` when it has not ended within `limit`.
pub fn outcome(mut child: Child, limit: Duration, late: &str) -> Run {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{late}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// Asks `done` every 100 ms until it holds, for at most `secs`; then fails with what `why` says.
#[track_caller]
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    let polled = poll(Duration::from_secs(secs), Duration::from_millis(100), || done().then_some(()).ok_or(()));
    if polled.is_err() {
        panic!("{} (waited {secs} s)", why());
    }
}

/// Polls an execution (as `auth` sees it) until `check` holds, for at most `secs`.
pub fn wait_execution(
    m: &Master,
    auth: (&str, &str),
    id: u64,
    secs: u64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let polled = poll(Duration::from_secs(secs), Duration::from_millis(100), || {
        let (s, e) = m.get(&format!("/api/0.6/execution/{id}"), auth);
        assert_eq!(s, 200, "{e}");
        if check(&e) {
            Ok(e)
        } else {
            Err(e)
        }
    });
    polled.unwrap_or_else(|e| panic!("{what}: not within {secs} s; now {e}\nmaster log:\n{}", m.log_text()))
}

/// A small valid application description with one monitor service.
pub fn app(image: &str, command: Option<&str>) -> Value {
    json!({
        "name": "test-app",
        "version": 2,
        "will_end": true,
        "requires_binary": false,
        "priority": 512,
        "services": [{
            "name": "main",
            "docker_image": image,
            "monitor": true,
            "total_count": 1,
            "essential_count": 1,
            "startup_order": 0,
            "ports": [],
            "required_resources": {"memory": 64 * 1024 * 1024},
            "command": command,
        }]
    })
}

/// Asserts an error response: status and stable code.
#[track_caller]
pub fn assert_error(resp: &(u16, Value), status: u16, code: &str) {
    assert_eq!(resp.0, status, "expected {status} {code}, got {} {}", resp.0, resp.1);
    assert_eq!(resp.1["code"], code, "expected code {code}, got {}", resp.1);
    assert!(resp.1["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {}", resp.1);
}

/// A request to `url`, with HTTP basic credentials when `auth` is given.
pub fn request_builder(method: &str, url: &str, auth: Option<(&str, &str)>) -> ureq::http::request::Builder {
    let req = ureq::http::Request::builder().method(method).uri(url);
    match auth {
        Some((u, p)) => {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req.header("Authorization", format!("Basic {token}"))
        }
        None => req,
    }
}

/// A response's headers, as (name, value) text pairs (a value that is not text is empty).
pub fn headers_of<B>(resp: &ureq::http::Response<B>) -> Vec<(String, String)> {
    resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect()
}

/// Checks that an acknowledged change outlived a crash: execution `id` (named `label` in the
/// message) is in `list`, and terminated when its termination was acknowledged. Returns it.
pub fn assert_kept<'a>(list: &'a [Value], when: &str, id: u64, label: &str, terminated: bool) -> &'a Value {
    let e =
        list.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{when}: acknowledged execution {label} lost"));
    if terminated {
        assert_eq!(e["status"], "terminated", "{when}: acknowledged termination of {id} lost");
    }
    e
}
