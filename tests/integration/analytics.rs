//! The real applications of `apps/`, run by Zoe on the real Docker Engine with the images of
//! `apps/build-images.sh` (`tests/run.sh` builds them, cached): the Spark word count gives the
//! count the test computes itself; a notebook of `spark-jupyter`, reached only through Zoe's
//! proxy by a Jupyter client (`tests/clients/jupyter.py`: XSRF, a kernel, its WebSocket), runs a
//! job on the execution's Spark cluster; the Spark master's UI answers through the proxy; other
//! users and wrong passwords get nothing.
//!
//! Fails loudly when Docker or an image is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::docker::{docker, docker_master_with, wait_status};
use crate::common::Master;

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

fn chown(path: &Path, uid: u32) {
    let out = Command::new("chown").args(["-R", &format!("{uid}:{uid}")]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    std::fs::create_dir_all(ws.join("wordcount")).unwrap();
    std::fs::write(ws.join("wordcount/input.txt"), &input).unwrap();
    chown(&ws, uid);

    let started = Instant::now();
    let id = m.submit(ALICE, "wc", &app);
    let e = wait_status(&m, ALICE, id, &["finished", "error", "terminated"], 300);
    assert_eq!(e["status"], "finished", "{e}");
    assert_eq!(e["error"], Value::Null, "the job's exit: {e}");
    eprintln!("spark-wordcount: finished {:.1} s after submission", started.elapsed().as_secs_f64());

    let mut got = BTreeMap::new();
    let mut parts = 0;
    for entry in std::fs::read_dir(ws.join("wordcount/output")).unwrap() {
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

/// GET through the proxy with basic auth: (status, body).
fn proxied(m: &Master, path: &str, who: (&str, &str)) -> (u16, String) {
    let (s, v) = m.get(path, who);
    (s, v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
}

#[test]
fn a_notebook_reached_through_the_proxy_computes_on_its_spark_cluster() {
    let _one = serial();
    let (m, _cleanup, _ws, _) = analytics_master("notebook");
    notebook_computes_on_its_spark_cluster(&m);
}

/// `spark-jupyter` started by alice (who exists, as bob does): its notebook answers through the
/// proxy to alice alone, a Jupyter client runs a Spark job in a kernel over its WebSocket on the
/// execution's own Spark cluster, and the Spark master's UI answers through the proxy; then it is
/// terminated. One engine or a Swarm alike.
pub(crate) fn notebook_computes_on_its_spark_cluster(m: &Master) {
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
    let (notebook, ui) = (url_of("notebook"), url_of("spark-master"));
    assert_eq!(notebook, format!("/proxy/{id}/notebook/8888/"));

    // Jupyter answers at its base URL through the proxy within a minute.
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxied(m, &format!("{notebook}api/status"), ALICE).0 != 200 {
        assert!(Instant::now() < deadline, "the notebook never answered through the proxy:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("spark-jupyter: notebook answering {:.1} s after submission", started.elapsed().as_secs_f64());

    // Nobody else reaches it.
    assert_eq!(proxied(m, &format!("{notebook}api/status"), BOB).0, 404);
    assert_eq!(proxied(m, &format!("{notebook}api/status"), ("alice", "nope")).0, 401);

    // A Jupyter client runs Spark code in a kernel, over the kernel's WebSocket, through the proxy.
    let code = "from pyspark.sql import SparkSession\n\
                spark = SparkSession.builder.getOrCreate()\n\
                print('master', spark.sparkContext.master)\n\
                print('sum', spark.sparkContext.parallelize(range(100000), 4).map(lambda x: x * x).sum())\n\
                print('executors', len(spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) - 1)\n";
    let out = Command::new("python3")
        .arg(repo().join("tests/clients/jupyter.py"))
        .args([&m.url, &notebook, ALICE.0, ALICE.1, code])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("spark-jupyter: kernel answered {:.1} s after submission", started.elapsed().as_secs_f64());
    assert_eq!(answer["refused_without_xsrf"], 403, "Jupyter's own XSRF check still holds: {answer}");
    assert_eq!(answer["error"], Value::Null, "{answer}");
    let printed = answer["text"].as_str().unwrap();
    let sum: u64 = (0..100_000u64).map(|x| x * x).sum();
    assert!(printed.contains(&format!("sum {sum}\n")), "{printed}");
    assert!(printed.contains("master spark://spark-master-lab-alice-"), "on the cluster, not local: {printed}");
    assert!(!printed.contains("executors 0\n"), "the job ran on the workers' executors: {printed}");

    // The Spark master's UI, through the proxy, with its links under the prefix.
    let (s, page) = proxied(m, &ui, ALICE);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Spark Master at spark://"), "{}", &page[..page.len().min(500)]);
    assert!(page.contains(&format!("/proxy/{id}/spark-master/8080/")), "links under the prefix");
    assert_eq!(proxied(m, &ui, BOB).0, 404);

    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(m, ALICE, id, &["terminated"], 120);
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
        let base = format!("/proxy/{id}/notebook/8888/");
        let deadline = Instant::now() + Duration::from_secs(120);
        while proxied(&m, &format!("{base}api/status"), who).0 != 200 {
            assert!(Instant::now() < deadline, "notebook {id} never answered:\n{}", m.log_text());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // The busy guest starts a computation that keeps a core busy, and goes away.
    let spin = "import threading\n\
                def spin():\n    while True:\n        pass\n\
                threading.Thread(target=spin, daemon=True).start()\nprint('spinning')\n";
    let out = Command::new("python3")
        .arg(repo().join("tests/clients/jupyter.py"))
        .args([&m.url, &format!("/proxy/{b}/notebook/8888/"), busy.0, busy.1, spin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The page of a watched execution says how long it has left (once the watcher has looked
    // at it: every 5 s with a 20 s limit).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, page) = proxied(&m, &format!("/executions/{b}"), busy);
        assert_eq!(s, 200);
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxied(&m, &format!("{base}api/status"), ALICE).0 != 200 {
        assert!(Instant::now() < deadline, "the notebook never answered:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    let driver = start_driver();
    let b = Browser::open(&driver, 1280, 860);
    // Signed in on the execution's page with the credentials in the URL (basic auth), as a user
    // is after the browser asked; the page links the notebook through the proxy. The link is
    // followed without credentials in the URL (JupyterLab cannot build its requests from such a
    // URL): the browser sends the ones it was given, to the proxy and to everything it loads.
    let port = m.url.rsplit(':').next().unwrap().to_string();
    b.goto(&format!("http://alice:pa@127.0.0.1:{port}/executions/{id}"));
    b.wait_element("a.endpoint");
    let link = b.property("a.endpoint", "href");
    let link = link.as_str().unwrap_or_default();
    assert!(
        link.ends_with(&format!("127.0.0.1:{port}{base}")),
        "the page links the notebook through the proxy: {link}"
    );
    b.goto(&format!("http://127.0.0.1:{port}{base}lab"));
    b.wait_element(".jp-LauncherCard[data-category='Notebook']");
    b.click(".jp-LauncherCard[data-category='Notebook']");
    // The kernel is connected over its WebSocket, through the proxy.
    b.wait_element(".jp-Notebook .jp-Cell .cm-content");
    b.wait_for("| Idle");
    b.send_keys(".jp-Notebook .jp-Cell .cm-content", "print(123456789 * 3)");
    b.send_keys(".jp-Notebook .jp-Cell .cm-content", "\u{E008}\u{E007}");
    b.wait_for("370370367");
    b.screenshot("notebook-through-the-proxy");
}
