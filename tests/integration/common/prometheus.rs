//! A real Prometheus (Debian's `prometheus` package; tests/run.sh installs it) of its own: its
//! configuration and its storage in a temporary folder, on a free port, scraping one master
//! every second; killed and removed on drop. Queries go through its HTTP API, as Grafana's do.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::browser::free_port;
use super::temp_dir;

/// How Prometheus proves who it is to `/metrics`.
pub enum ScrapeAuth<'a> {
    /// HTTP basic, the password in a file (`basic_auth.password_file`).
    Basic(&'a str, &'a str),
    /// An API token, in a file (`authorization.credentials_file`).
    Bearer(&'a str),
}

/// A running Prometheus scraping one master.
pub struct Prometheus {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    agent: ureq::Agent,
}

impl Prometheus {
    /// Writes its configuration (scraping `master_url`'s `/metrics` every second as `auth`) and
    /// starts it; returns once it is ready.
    pub fn start(tag: &str, master_url: &str, auth: ScrapeAuth) -> Prometheus {
        let dir = temp_dir(&format!("prometheus-{tag}"));
        let target = master_url.trim_start_matches("http://").trim_end_matches('/');
        let auth = match auth {
            ScrapeAuth::Basic(user, password) => {
                std::fs::write(dir.join("password"), password).unwrap();
                format!(
                    "    basic_auth:\n      username: {user}\n      password_file: {}\n",
                    dir.join("password").display()
                )
            }
            ScrapeAuth::Bearer(token) => {
                std::fs::write(dir.join("token"), token).unwrap();
                format!(
                    "    authorization:\n      type: Bearer\n      credentials_file: {}\n",
                    dir.join("token").display()
                )
            }
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: zoe\n    metrics_path: /metrics\n{auth}    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--log.level=warn", "--storage.tsdb.retention.time=1d"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus: {e} (install the prometheus package)"));
        let agent = super::process::agent(Duration::from_secs(10));
        let mut p = Prometheus { child: Some(child), dir, port, agent };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready =
                p.agent.get(&format!("http://127.0.0.1:{port}/-/ready")).call().is_ok_and(|r| r.status() == 200);
            if ready {
                return p;
            }
            if let Some(Ok(Some(status))) = p.child.as_mut().map(|c| c.try_wait()) {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Evaluates PromQL now (`/api/v1/query`): the `data` of a success, or the error it gave.
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        self.query_at(promql, None)
    }

    /// Evaluates PromQL at a time (Unix seconds), or now.
    pub fn query_at(&self, promql: &str, at: Option<f64>) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let at = at.map(|t| format!("{t:.3}"));
        let mut form = vec![("query", promql)];
        if let Some(t) = &at {
            form.push(("time", t.as_str()));
        }
        let mut resp = self.agent.post(&url).send_form(form).map_err(|e| format!("{url}: {e}"))?;
        let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(format!("{promql}: {} {}", v["errorType"], v["error"]))
        }
    }

    /// The instant vector `promql` evaluates to now, as (labels, value) pairs.
    pub fn vector(&self, promql: &str) -> Vec<(Value, f64)> {
        self.vector_of(self.query(promql), promql)
    }

    /// The instant vector `promql` evaluates to at `at` (Unix seconds).
    pub fn vector_at(&self, promql: &str, at: f64) -> Vec<(Value, f64)> {
        self.vector_of(self.query_at(promql, Some(at)), promql)
    }

    fn vector_of(&self, answer: Result<Value, String>, promql: &str) -> Vec<(Value, f64)> {
        let data = answer.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["metric"].clone(), r["value"][1].as_str().unwrap().parse::<f64>().unwrap()))
            .collect()
    }

    /// The health of its scrape of the master (`up`, the last error) from `/api/v1/targets`.
    pub fn target(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/targets", self.port);
        let mut resp = self.agent.get(&url).call().unwrap();
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        v["data"]["activeTargets"][0].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
