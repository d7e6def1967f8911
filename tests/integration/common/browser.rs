//! A real browser for tests: Debian's headless Chromium driven through chromedriver (the W3C
//! WebDriver protocol over plain HTTP).

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::{poll, temp_dir};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(60);

/// A chromedriver process in its own process group, killed with the browsers it started when
/// dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn chromedriver_path() -> PathBuf {
    for p in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromedriver is missing: install Debian's chromium and chromium-driver (tests/run.sh does)");
}

pub fn start_driver() -> Driver {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium and chromium-driver (tests/run.sh does)"
    );
    let port = free_port();
    let child = Command::new(chromedriver_path())
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromedriver: {e}"));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let ready = poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let mut r = ureq::get(format!("{}/status", driver.url)).call().map_err(|_| ())?;
        let v: Value = r.body_mut().read_json().unwrap_or(Value::Null);
        if v["value"]["ready"] == true {
            Ok(())
        } else {
            Err(())
        }
    });
    ready.unwrap_or_else(|()| panic!("chromedriver did not answer on port {port}"));
    driver
}

/// A WebDriver session (W3C protocol over plain HTTP), deleted when dropped.
pub struct Browser {
    base: String,
    agent: ureq::Agent,
    _profile: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    pub fn open(driver: &Driver, width: u32, height: u32) -> Browser {
        let profile = TempDir(temp_dir("chromium-profile"));
        let agent = super::process::agent(Duration::from_secs(120));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.0.display()),
                ]
            }
        }}});
        let v = call(&agent, "POST", &format!("{}/session", driver.url), Some(caps));
        let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        Browser { base: format!("{}/session/{id}", driver.url), agent, _profile: profile }
    }

    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = call(&self.agent, method, &format!("{}{path}", self.base), body);
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    /// Signs the browser in to the master at `origin` (`http://127.0.0.1:<port>`) with basic
    /// auth, as someone answering the browser's password prompt does: `/login?prompt=basic`
    /// challenges, the credentials in the URL answer (Chromium offers those only when
    /// challenged), and the browser sends them unasked with every later request to the origin,
    /// whose pages then need no session. (The redirect that follows keeps the URL's credentials,
    /// with which Chromium sends nothing unasked: the API page it goes to challenges again.)
    pub fn sign_in_basic(&self, origin: &str, who: (&str, &str)) {
        let (scheme, host) = origin.split_once("://").unwrap();
        self.goto(&format!("{scheme}://{}:{}@{host}/login?prompt=basic&next=/api/0.6/info", who.0, who.1));
        self.wait_for("api_version");
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}\n{}", self.source())).to_string()
    }

    pub fn click(&self, css: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})));
        self.cmd("POST", &format!("/element/{el}/value"), Some(json!({"text": text})));
    }

    pub fn send_keys(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/value"), Some(json!({"text": text})));
    }

    pub fn property(&self, css: &str, name: &str) -> Value {
        let el = self.find(css);
        self.cmd("GET", &format!("/element/{el}/property/{name}"), None)
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None).as_str().unwrap_or("").to_string()
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or("").to_string()
    }

    /// Waits until the page (which may refresh itself) contains `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let polled = poll(WAIT, Duration::from_millis(250), || {
            let source = self.source();
            if source.contains(text) {
                Ok(source)
            } else {
                Err(source)
            }
        });
        polled.unwrap_or_else(|source| panic!("the page never showed {text:?}; it shows:\n{source}"))
    }

    /// Waits until an element matches `css` (for pages that build themselves with scripts).
    pub fn wait_element(&self, css: &str) {
        let polled = poll(WAIT * 2, Duration::from_millis(250), || {
            let v = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
            v.as_array().is_some_and(|a| !a.is_empty()).then_some(()).ok_or(())
        });
        polled.unwrap_or_else(|()| panic!("no element {css} appeared; the page shows:\n{}", self.source()));
    }

    pub fn accept_alert(&self) {
        let polled = poll(Duration::from_secs(10), Duration::from_millis(100), || {
            let v = call(&self.agent, "POST", &format!("{}/alert/accept", self.base), Some(json!({})));
            if v["value"].is_null() {
                Ok(())
            } else {
                Err(v)
            }
        });
        polled.unwrap_or_else(|v| panic!("no confirmation dialog appeared: {v}"));
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Saves a screenshot of the window as `target/web-screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
    }
}

pub fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Value {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default().into_bytes())
        .unwrap();
    let mut resp = agent.run(req).unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let mut text = String::new();
    resp.body_mut().as_reader().read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("WebDriver {method} {url}: not JSON ({e}): {text}"))
}

pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("web-screenshots")
}
