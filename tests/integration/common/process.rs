//! A `zoe master` process, started and waited for until it listens: the one way the integration
//! tests and the benchmarks (`benches/master/main.rs` includes this file) start a master.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The per-user limits that protect a real deployment from one user, lifted: for the tests and
/// benchmarks that measure throughput.
pub const NO_USER_LIMITS: [&str; 8] = [
    "--submit-rate",
    "1000000",
    "--submit-burst",
    "1000000",
    "--user-max-active",
    "1000000",
    "--user-max-queued",
    "1000000",
];

/// A running master: its process, its URL and what it logged so far. Killed when dropped.
pub struct MasterProcess {
    pub child: Child,
    /// `http://<address>` or `https://<address>`.
    pub url: String,
    /// Its standard error, line by line.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl MasterProcess {
    /// Runs `command` (a `zoe master` with `--listen-port 0`, its standard error taken here) and
    /// waits until it says where it listens; otherwise kills it and returns what it printed.
    pub fn spawn(mut command: Command) -> Result<MasterProcess, String> {
        let mut child = command.stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run zoe: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for scheme in ["http", "https"] {
                    if let Some(rest) = line.split(&format!("listening on {scheme}://")).nth(1) {
                        let addr = rest.split('/').next().unwrap_or("").to_string();
                        let _ = tx.send(format!("{scheme}://{addr}"));
                    }
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(MasterProcess { child, url, log }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                let printed = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                Err(format!("exit {status:?}; output:\n{printed}"))
            }
        }
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Kills it with SIGKILL, no goodbye, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for a master: statuses are answers, not errors; nothing waits longer than
/// `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
