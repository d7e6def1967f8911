//! The real applications of `apps/`, run by Zoe on the real Docker Engine with the images of
//! `apps/build-images.sh` (`tests/run.sh` builds them, cached): the Spark word count, its input
//! put with `zoe ws put` and its output got with `zoe ws get` as the README shows, gives the
//! count the test computes itself; a notebook of `spark-jupyter`, reached only through Zoe's
//! proxy on its own host by a Jupyter client (`tests/clients/jupyter.py`: the sign-in, a kernel,
//! its WebSocket), runs a job on the execution's Spark cluster, and refuses a direct connection
//! without the execution's secret; the Spark master's UI answers on its own host; other users and
//! wrong passwords get nothing.
//!
//! Fails loudly when Docker or an image is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::apps::{enter, sign_in, AppClient};
use crate::common::docker::{docker, docker_master_with, docker_out, wait_status};
use crate::common::{Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "pa");
const BOB: (&str, &str) = ("bob", "pb");

/// One Spark application at a time: each takes 3 to 4 GiB and both cores for a while.
fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An application of `apps/`, checked to use images that exist.
fn app(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("apps").join(format!("{name}.json"))).unwrap();
    let app: Value = serde_json::from_str(&text).unwrap();
    for s in app["services"].as_array().unwrap() {
        let image = s["docker_image"].as_str().unwrap();
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", image]);
        assert!(out.status.success(), "image {image} is missing: run apps/build-images.sh (tests/run.sh does)");
    }
    app
}

/// A master for the analytics applications, and alice's workspace on the host.
fn analytics_master(tag: &str) -> (Master, crate::common::docker::Cleanup, PathBuf, u32) {
    // Four services of half a core each (their default, reserved) fill the two cores here.
    let (m, cleanup, dep) = docker_master_with(tag, &["--max-proxy-connections", "16", "--default-cores", "0.5"]);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let uid = m.get("/api/0.6/user/alice", ALICE).1["uid"].as_u64().unwrap() as u32;
    let ws = m.state_dir.join("ws").join(dep).join("alice");
    (m, cleanup, ws, uid)
}

/// Runs `zoe ws ARGS` as `who` on `m`, in the folder `cwd`, as the README's example does.
fn zoe_ws(m: &Master, who: (&str, &str), cwd: &Path, args: &[&str]) {
    let out = m.client(who, &["ws"]).args(args).current_dir(cwd).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "zoe ws {args:?}: {said}");
}

/// A deterministic text of about `words` words: a skewed vocabulary with non-ASCII words, runs of
/// spaces and tabs, blank lines and CRLF line ends.
fn text(words: usize) -> String {
    let vocabulary: Vec<String> = (0..2000)
        .map(|i| format!("w{i}"))
        .chain(["Zoe", "zoe", "Spark", "café", "naïve", "日本語", "x-y", "(z)", "end."].map(String::from))
        .collect();
    let mut seed: u64 = 42;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let (mut out, mut n) = (String::new(), 0);
    while n < words {
        let k = next(15) as usize;
        for _ in 0..k {
            // Half the words from the first 50: a few frequent words, many rare ones.
            let i = if next(2) == 0 { next(50) } else { next(vocabulary.len() as u64) } as usize;
            out += &vocabulary[i];
            out += [" ", " ", "  ", "\t", " \t "][next(5) as usize];
        }
        out += ["\n", "\n", "\r\n"][next(3) as usize];
        n += k;
    }
    out
}

/// Words separated by ASCII whitespace, as the job defines them, counted.
fn count(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in text.split([' ', '\t', '\n', '\r', '\x0b', '\x0c']).filter(|w| !w.is_empty()) {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn spark_wordcount_counts_the_words_of_its_input() {
    let _one = serial();
    let app = app("spark-wordcount");
    let (m, _cleanup, ws, uid) = analytics_master("wordcount");
    let input = text(200_000);
    // In and out with the client, as the README says, without a shell on the master's host.
    let here = crate::common::temp_dir("wordcount-local");
    std::fs::write(here.join("some.txt"), &input).unwrap();
    zoe_ws(&m, ALICE, &here, &["put", "some.txt", "wordcount/input.txt"]);

    let started = Instant::now();
    let id = m.submit(ALICE, "wc", &app);
    let e = wait_status(&m, ALICE, id, &["finished", "error", "terminated"], 300);
    assert_eq!(e["status"], "finished", "{e}");
    assert_eq!(e["error"], Value::Null, "the job's exit: {e}");
    eprintln!("spark-wordcount: finished {:.1} s after submission", started.elapsed().as_secs_f64());

    zoe_ws(&m, ALICE, &here, &["get", "wordcount/output", "counts"]);
    let mut got = BTreeMap::new();
    let mut parts = 0;
    for entry in std::fs::read_dir(here.join("counts")).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with("part-") {
            continue;
        }
        parts += 1;
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let (w, n) = line.rsplit_once('\t').unwrap_or_else(|| panic!("not word<TAB>count: {line:?}"));
            assert!(got.insert(w.to_string(), n.parse::<u64>().unwrap()).is_none(), "{w:?} twice");
        }
    }
    assert!(parts >= 1, "no part-* files");
    let want = count(&input);
    assert_eq!(got.len(), want.len(), "distinct words");
    assert_eq!(got, want);
    // Everything the job wrote belongs to alice's uid.
    let out = Command::new("find").arg(&ws).args(["!", "-uid", &uid.to_string()]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "files of another owner in the workspace");
}

/// Signs `who` in to the notebook behind `link` and waits until Jupyter answers there.
fn notebook(m: &Master, who: (&str, &str), link: &str) -> AppClient {
    let client = sign_in(m, who, link);
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.get("/api/status").status != 200 {
        assert!(Instant::now() < deadline, "the notebook never answered through the proxy:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    client
}

/// Runs `code` in a kernel of the notebook behind `link` with the Jupyter client, as `who`.
fn run_code(m: &Master, link: &str, who: (&str, &str), code: &str) -> Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/clients/jupyter.py"))
        .args([&m.url, link, who.0, who.1, code])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn a_notebook_reached_through_the_proxy_computes_on_its_spark_cluster() {
    let _one = serial();
    let (m, _cleanup, _ws, _) = analytics_master("notebook");
    notebook_computes_on_its_spark_cluster(&m, true);
}

/// `spark-jupyter` started by alice (who exists, as bob does): its notebook answers through the
/// proxy to alice and administrators alone, a Jupyter client runs a Spark job in a kernel over
/// its WebSocket on the execution's own Spark cluster, and the Spark master's UI answers through
/// the proxy; then it is terminated. One engine or a Swarm alike; `on_this_engine`: the
/// containers run on the engine the tests use, which shows that a connection to the notebook's
/// port past the proxy is refused by Jupyter itself.
pub(crate) fn notebook_computes_on_its_spark_cluster(m: &Master, on_this_engine: bool) {
    let app = app("spark-jupyter");
    let started = Instant::now();
    let id = m.submit(ALICE, "lab", &app);
    let e = wait_status(m, ALICE, id, &["running", "error"], 180);
    assert_eq!(e["status"], "running", "{e}");
    let services: Vec<Value> =
        e["services"].as_array().unwrap().iter().map(|s| m.get(&format!("/api/0.6/service/{s}"), ALICE).1).collect();
    let url_of = |name: &str| {
        let s = services.iter().find(|s| s["service_name"] == name).unwrap();
        s["ports"][0]["proxy_url"].as_str().unwrap().to_string()
    };
    let (link, ui) = (url_of("notebook"), url_of("spark-master"));
    assert_eq!(link, format!("/proxy/{id}/notebook/8888/"));

    // Jupyter answers on its own host, through the proxy, within a minute or two.
    let nb = notebook(m, ALICE, &link);
    eprintln!("spark-jupyter: notebook answering {:.1} s after submission", started.elapsed().as_secs_f64());
    assert_eq!(notebook(m, ADMIN, &link).get("/api/status").status, 200, "an administrator too");

    // Nobody else reaches it, and nothing reaches it past the proxy: Jupyter itself refuses a
    // connection to its port without the execution's secret, which only the proxy adds.
    assert_eq!(enter(m, Some(BOB), &link, "").status, 404);
    assert_eq!(enter(m, Some(("alice", "nope")), &link, "").status, 401);
    if on_this_engine {
        direct_connections_need_the_secret(&services);
    }

    // A Jupyter client runs Spark code in a kernel, over the kernel's WebSocket, through the proxy.
    let code = "from pyspark.sql import SparkSession\n\
                spark = SparkSession.builder.getOrCreate()\n\
                print('master', spark.sparkContext.master)\n\
                print('sum', spark.sparkContext.parallelize(range(100000), 4).map(lambda x: x * x).sum())\n\
                print('executors', len(spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) - 1)\n";
    let answer = run_code(m, &link, ALICE, code);
    eprintln!("spark-jupyter: kernel answered {:.1} s after submission", started.elapsed().as_secs_f64());
    assert_eq!(answer["refused_without_sign_in"], 401, "{answer}");
    assert_eq!(answer["refused_cross_origin"], 403, "the proxy's guard: {answer}");
    assert_eq!(answer["error"], Value::Null, "{answer}");
    let printed = answer["text"].as_str().unwrap();
    let sum: u64 = (0..100_000u64).map(|x| x * x).sum();
    assert!(printed.contains(&format!("sum {sum}\n")), "{printed}");
    assert!(printed.contains("master spark://spark-master-lab-alice-"), "on the cluster, not local: {printed}");
    assert!(!printed.contains("executors 0\n"), "the job ran on the workers' executors: {printed}");
    assert_eq!(nb.get("/api/status").status, 200);

    // The Spark master's UI, on its own host, at its root.
    for who in [ALICE, ADMIN] {
        let spark = sign_in(m, who, &ui);
        let r = spark.get(&spark.next);
        let page = r.text();
        assert_eq!(r.status, 200, "{page}");
        assert!(page.contains("Spark Master at spark://"), "{}", &page[..page.len().min(500)]);
        assert!(page.contains("href=\"/static/"), "links at the root of its host");
    }
    assert_eq!(enter(m, Some(BOB), &ui, "").status, 404);

    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(m, ALICE, id, &["terminated"], 120);
}

/// The notebook's port, reached past the proxy (at its container's address on this engine):
/// Asks the Jupyter server of container `name` directly, at its address on its network, for
/// its status with `token` (or none): the status code, 0 when it does not answer.
fn jupyter_status(name: &str) -> impl Fn(Option<&str>) -> u16 {
    let ip = docker_out(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name]);
    let url = format!("http://{}:8888/api/status", ip.trim());
    move |token| {
        let mut req = ureq::get(&url).config().http_status_as_error(false).build();
        if let Some(t) = token {
            req = req.header("Authorization", format!("token {t}"));
        }
        req.call().map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

/// Jupyter refuses a request without the execution's secret, or with a wrong one.
fn direct_connections_need_the_secret(services: &[Value]) {
    let name = services.iter().find(|s| s["service_name"] == "notebook").unwrap()["name"].as_str().unwrap().to_string();
    let status = jupyter_status(&name);
    assert_eq!(status(None), 403, "a direct connection without the secret");
    assert_eq!(status(Some("guessed")), 403, "a wrong secret");
    let secret = docker_out(&["exec", &name, "printenv", "ZOE_PROXY_SECRET"]);
    assert_eq!(status(Some(secret.trim())), 200, "the secret is what opens it");
}

#[test]
fn an_idle_guest_notebook_is_culled_and_a_busy_one_is_not() {
    let _one = serial();
    let app = app("jupyter");
    let (m, _cleanup, _) = docker_master_with(
        "idle",
        &["--guest-idle-seconds", "20", "--idle-cpu-percent", "10", "--default-cores", "0.5"],
    );
    let (idle, busy) = (("gidle", "pi"), ("gbusy", "pb"));
    for (name, password) in [idle, busy] {
        m.create_user(name, "guest", password);
    }
    let (i, b) = (m.submit(idle, "nb", &app), m.submit(busy, "nb", &app));
    for (who, id) in [(idle, i), (busy, b)] {
        assert_eq!(wait_status(&m, who, id, &["running", "error"], 120)["status"], "running");
        notebook(&m, who, &format!("/proxy/{id}/notebook/8888/"));
    }
    // The busy guest starts a computation that keeps a core busy, and goes away.
    let spin = "import threading\n\
                def spin():\n    while True:\n        pass\n\
                threading.Thread(target=spin, daemon=True).start()\nprint('spinning')\n";
    let answer = run_code(&m, &format!("/proxy/{b}/notebook/8888/"), busy, spin);
    assert_eq!(answer["error"], Value::Null, "{answer}");
    // The page of a watched execution says how long it has left (once the watcher has looked
    // at it: every 5 s with a 20 s limit).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, page) = m.get(&format!("/executions/{b}"), busy);
        assert_eq!(s, 200);
        let page = page.as_str().unwrap_or_default().to_string();
        if page.contains("id=\"idle-left\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no idle limit on the page: {page}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Nobody uses the other one: it is terminated, with the reason.
    let e = wait_status(&m, idle, i, &["terminated", "finished", "error"], 180);
    assert_eq!(e["status"], "terminated", "{e}");
    let reason = e["error"].as_str().unwrap_or_default();
    assert!(reason.contains("without use") && reason.contains("idle limit of role guest"), "{e}");
    // The computation is still running well past the limit.
    std::thread::sleep(Duration::from_secs(30));
    let (_, e) = m.get(&format!("/api/0.6/execution/{b}"), busy);
    assert_eq!(e["status"], "running", "a busy computation with no browser attached is not idle: {e}");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{b}"), busy).0, 204);
    wait_status(&m, busy, b, &["terminated"], 120);
}

#[test]
fn a_browser_opens_a_notebook_through_the_proxy_and_runs_a_cell() {
    use crate::common::browser::{start_driver, Browser};
    let _one = serial();
    let app = app("jupyter");
    let (m, _cleanup, _, _) = analytics_master("browser");
    let id = m.submit(ALICE, "nb", &app);
    assert_eq!(wait_status(&m, ALICE, id, &["running", "error"], 120)["status"], "running");
    let base = format!("/proxy/{id}/notebook/8888/");
    notebook(&m, ALICE, &base);
    let driver = start_driver();
    let b = Browser::open(&driver, 1280, 860);
    // Signed in on the execution's page with the credentials in the URL (basic auth), as a user
    // is after the browser asked; the page links the notebook through Zoe, which signs the
    // browser in to the notebook's own host and sends it there.
    let port = m.url.rsplit(':').next().unwrap().to_string();
    b.sign_in_basic(&format!("http://127.0.0.1:{port}"), ("alice", "pa"));
    b.goto(&format!("http://127.0.0.1:{port}/executions/{id}"));
    b.wait_element("a.endpoint");
    let link = b.property("a.endpoint", "href");
    let link = link.as_str().unwrap_or_default();
    assert!(
        link.ends_with(&format!("127.0.0.1:{port}{base}")),
        "the page links the notebook through the proxy: {link}"
    );
    b.goto(&format!("http://127.0.0.1:{port}{base}lab"));
    b.wait_element(".jp-LauncherCard[data-category='Notebook']");
    assert_eq!(b.url(), format!("http://8888-notebook-{id}.localhost:{port}/lab"), "on its own origin");
    b.click(".jp-LauncherCard[data-category='Notebook']");
    // The kernel is connected over its WebSocket, through the proxy.
    b.wait_element(".jp-Notebook .jp-Cell .cm-content");
    b.wait_for("| Idle");
    b.send_keys(".jp-Notebook .jp-Cell .cm-content", "print(123456789 * 3)");
    b.send_keys(".jp-Notebook .jp-Cell .cm-content", "\u{E008}\u{E007}");
    b.wait_for("370370367");
    b.screenshot("notebook-through-the-proxy");
}

/// Removes a container by name when dropped, even on failure.
struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

/// The notebook image run by hand, with its own command: it refuses a request without a token
/// (Jupyter's own random one when there is no `ZOE_PROXY_SECRET`, the secret when there is).
#[test]
fn the_notebook_image_alone_refuses_requests_without_a_token() {
    let _one = serial();
    let image = app("jupyter")["services"][0]["docker_image"].as_str().unwrap().to_string();
    for secret in [None, Some("s3cr3t-of-the-test")] {
        let name = format!("zoe-test-jupyter-default-{}", std::process::id());
        let _gone = Gone(name.clone());
        let mut args = vec!["run", "-d", "--name", &name, "--user", "200123:200123", "-e", "HOME=/tmp"];
        let env = secret.map(|s| format!("ZOE_PROXY_SECRET={s}"));
        if let Some(e) = &env {
            args.extend(["-e", e.as_str()]);
        }
        args.push(&image);
        let out = docker(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let status = jupyter_status(&name);
        let deadline = Instant::now() + Duration::from_secs(120);
        while status(None) == 0 {
            assert!(Instant::now() < deadline, "the notebook never listened: {}", docker_out(&["logs", &name]));
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(status(None), 403, "a request without a token ({secret:?})");
        assert_eq!(status(Some("guessed")), 403, "a wrong token ({secret:?})");
        let token = match secret {
            Some(s) => s.to_string(),
            // Jupyter's own token, in its log.
            None => {
                let out = docker(&["logs", &name]);
                let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                let at = log.find("?token=").unwrap_or_else(|| panic!("no token in the log: {log}"));
                log[at + 7..].chars().take_while(char::is_ascii_alphanumeric).collect()
            }
        };
        assert!(token.len() >= 16, "{token}");
        assert_eq!(status(Some(&token)), 200, "the token opens it ({secret:?})");
    }
}
