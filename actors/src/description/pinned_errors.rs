//! Every refusal of a bad application description, pinned as it is answered (path, code and
//! message), for a broad set of mistakes at every level of the document: the wrong JSON type,
//! unknown and missing fields, bad names, values out of range, huge values, bad templates and
//! commands, and repeated keys. A change to any answer shows up as a changed snapshot.

use serde_json::{json, Value};

use super::app_description::{check_datasets, check_host_names, check_registries, parse_application};
use super::fixtures::{self, at, ARRAY_PATHS, PORT_FIELDS, RESOURCE_FIELDS, SERVICE_FIELDS, TOP_FIELDS};
use super::strict_json;

/// The Spark example with a secret header on the notebook's port: a valid description that has
/// every field somewhere. (Its port names and command, shown in the answers, are those pinned.)
fn spark() -> Value {
    let mut doc = fixtures::spark();
    let notebook = &mut doc["services"][2];
    notebook["ports"][0]["name"] = json!("Spark UI");
    notebook["ports"][1]["name"] = json!("Notebook");
    notebook["ports"][1]["secret_header"] = json!("Authorization: token {secret}");
    notebook["command"] = json!("start-notebook.sh --NotebookApp.base_url=/{execution_id}");
    doc
}

fn with(path: &str, value: Value) -> Value {
    fixtures::set(spark(), path, value)
}

fn without(path: &str) -> Value {
    fixtures::remove(spark(), path)
}

/// One line: what was done, and the answer.
fn answer(case: &str, doc: &Value) -> String {
    match parse_application(doc) {
        Ok(_) => format!("{case}\n    => accepted"),
        Err(e) => format!("{case}\n    => {} | {} | {}", e.path, e.code, e.message),
    }
}

const BOOLS: &[&str] = &[
    "will_end",
    "requires_binary",
    "services/0/monitor",
    "services/2/ports/1/is_main_endpoint",
    "services/2/ports/1/expose",
];
const INTS: &[&str] = &[
    "version",
    "priority",
    "services/0/total_count",
    "services/1/essential_count",
    "services/0/startup_order",
    "services/2/ports/1/port_number",
    "services/0/required_resources/memory",
];
const STRINGS: &[&str] = &[
    "name",
    "services/0/name",
    "services/0/docker_image",
    "services/2/command",
    "services/2/ports/1/name",
    "services/2/ports/1/protocol",
    "services/2/ports/1/path",
    "services/2/ports/1/secret_header",
    "services/1/environment/0/0",
    "services/1/environment/0/1",
];
const OBJECTS: &[&str] = &["services/1", "services/2/ports/1", "services/0/required_resources"];
/// Every field of the description, at its place in the example.
fn fields() -> Vec<String> {
    let top = TOP_FIELDS.iter().map(|f| f.to_string());
    let service = SERVICE_FIELDS.iter().map(|f| format!("services/1/{f}"));
    let resources = RESOURCE_FIELDS.iter().map(|f| format!("services/1/required_resources/{f}"));
    let port = PORT_FIELDS.iter().map(|f| format!("services/2/ports/1/{f}"));
    top.chain(service).chain(resources).chain(port).collect()
}

fn kinds() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(2.0),
        json!("x"),
        json!("2"),
        json!([]),
        json!(["a", "b"]),
        json!({}),
        json!({"a": 1}),
    ]
}

#[test]
fn wrong_types_and_shapes() {
    let mut out = Vec::new();
    for doc in [json!(null), json!([]), json!("x"), json!(1), json!(1.5), json!(true), json!({})] {
        out.push(answer(&format!("the document = {doc}"), &doc));
    }
    for p in BOOLS.iter().chain(INTS).chain(STRINGS).chain(ARRAY_PATHS).chain(OBJECTS) {
        for v in kinds() {
            out.push(answer(&format!("{p} = {v}"), &with(p, v)));
        }
    }
    for v in
        [json!("A=b"), json!(["A"]), json!(["A", "b", "c"]), json!([]), json!({"A": "b"}), json!([1, "b"]), json!(null)]
    {
        out.push(answer(&format!("services/1/environment/1 = {v}"), &with("services/1/environment/1", v)));
    }
    crate::testing::insta_settings().bind(|| insta::assert_snapshot!(out.join("\n")));
}

#[test]
fn missing_and_unknown_fields() {
    let mut out = Vec::new();
    for p in fields() {
        out.push(answer(&format!("without {p}"), &without(&p)));
    }
    for (parent, key) in [
        ("", "nme"),
        ("", "extra"),
        ("", "zzzzzzzz"),
        ("", "Name"),
        ("", "services "),
        ("", "a\u{1}b"),
        ("services/0", "version"),
        ("services/0", "image"),
        ("services/0", "monitr"),
        ("services/0", "totalcount"),
        ("services/0", "Environment"),
        ("services/0/required_resources", "gpus"),
        ("services/0/required_resources", "core"),
        ("services/2/ports/0", "exposed"),
        ("services/2/ports/0", "port"),
        ("services/2/ports/0", "x\"y"),
    ] {
        let path = if parent.is_empty() { key.to_string() } else { format!("{parent}/{key}") };
        let mut doc = spark();
        let obj = if parent.is_empty() { &mut doc } else { at(&mut doc, parent) };
        if let Some(map) = obj.as_object_mut() {
            map.insert(key.to_string(), json!(1));
        }
        out.push(answer(&format!("with {path:?}"), &doc));
    }
    let huge = "k".repeat(100_000);
    let mut doc = spark();
    if let Some(map) = doc.as_object_mut() {
        map.insert(huge, json!(1));
    }
    out.push(answer("with a key of 100000 characters", &doc));
    crate::testing::insta_settings().bind(|| insta::assert_snapshot!(out.join("\n")));
}

#[test]
fn values_out_of_range_and_bad_names() {
    let beyond_u64: Value = serde_json::from_str("18446744073709551616").unwrap_or_default();
    let mut cases: Vec<(&str, Vec<Value>)> = vec![
        ("version", vec![json!(1), json!(3), json!(0), json!(-2), json!(1e300), json!(u64::MAX), json!(2.5)]),
        ("priority", vec![json!(-1), json!(1025), json!(1e300), json!(1024), json!(i64::MIN)]),
        ("services/0/total_count", vec![json!(0), json!(65), json!(-3), json!(4294967296_u64), json!(2.0)]),
        ("services/1/essential_count", vec![json!(-1), json!(4), json!(3), json!(1e20)]),
        ("services/0/startup_order", vec![json!(-1), json!(1001), json!(u64::MAX)]),
        ("services/2/ports/1/port_number", vec![json!(0), json!(65536), json!(-8888), beyond_u64.clone()]),
        (
            "services/0/required_resources/memory",
            vec![json!(6291455), json!(1099511627777_u64), json!(0), json!(-1), json!(i64::MIN), json!(u64::MAX)],
        ),
        ("services/0/required_resources/memory", vec![beyond_u64, json!(1e300), json!(1024), json!(6291456)]),
        (
            "services/1/required_resources/cores",
            vec![json!(0), json!(-1), json!(0.0), json!(256.5), json!(1e300), json!(1e-300), json!(0.0099), json!(256)],
        ),
        ("name", vec![json!(""), json!("a\nb"), json!("\u{7}"), json!("é".repeat(129)), json!("x".repeat(200))]),
        ("services/1/name", vec![json!(""), json!("Spark"), json!("spark_master"), json!("-a"), json!("a-")]),
        ("services/1/name", vec![json!("a.b"), json!("a".repeat(64)), json!("jupyter"), json!("spark-master")]),
        (
            "services/0/docker_image",
            vec![json!(""), json!("alpine latest"), json!(" alpine"), json!("a\u{0}b"), json!("a".repeat(256))],
        ),
        ("services/0/docker_image", vec![json!("\u{1b}[2Jimg"), json!(format!("{}\n", "x".repeat(100)))]),
        ("services/2/ports/0/name", vec![json!(""), json!("x".repeat(129)), json!("a\tb")]),
        ("services/2/ports/0/protocol", vec![json!(""), json!("HTTP"), json!("1http"), json!("ht tp"), json!("é")]),
        ("services/2/ports/0/protocol", vec![json!("http:"), json!("a".repeat(17))]),
        ("services/2/ports/0/path", vec![json!("tree"), json!("a/b"), json!("/a b"), json!("/\t")]),
        ("services/2/ports/0/path", vec![json!(format!("/{}", "a".repeat(1024)))]),
        ("services/1/environment/1/0", vec![json!(""), json!("1A"), json!("A-B"), json!("A B"), json!("É")]),
        ("services/1/environment/1/0", vec![json!("SPARK_MASTER_IP"), json!("x".repeat(300))]),
        ("services/1/environment/1/1", vec![json!("{user_id}"), json!("{"), json!("x".repeat(4097)), json!("a\rb")]),
        ("services/1/environment/1/1", vec![json!("\u{7f}"), json!("x\u{9b}2J"), json!("\0")]),
        ("services/2/command", vec![json!("{"), json!("}"), json!("{}"), json!("x{index"), json!("run {nope}")]),
        ("services/2/command", vec![json!("sh -c 'unclosed"), json!("echo \u{1b}[2J"), json!("x".repeat(4097))]),
        ("services/2/command", vec![json!("\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good")]),
        (
            "services/2/ports/1/secret_header",
            vec![
                json!("Authorization token {secret}"),
                json!("Authorization: token"),
                json!("Bad Name: {secret}"),
                json!("Host: {secret}"),
                json!("Cookie: a={secret}"),
            ],
        ),
        (
            "services/2/ports/1/secret_header",
            vec![
                json!("Proxy-Authorization: {secret}"),
                json!("Sec-WebSocket-Key: {secret}"),
                json!("X-Token: {secret}\r\nHost: evil"),
                json!(format!("X-{}: {{secret}}", "a".repeat(70))),
                json!(format!("X: {{secret}}{}", "a".repeat(300))),
            ],
        ),
        ("services/2/ports/0/secret_header", vec![json!("X-Token: {secret}")]),
        ("services/0/volumes", vec![json!([["/etc", "/mnt/etc", true]]), json!([1]), json!(["x"]), json!([{}])]),
        ("services/0/networks", vec![json!(["host"]), json!([1]), json!([null])]),
        (
            "services/0/datasets",
            vec![json!(["corpus", "corpus"]), json!(["Corpus"]), json!(["../etc"]), json!(["/srv/data"]), json!([""])],
        ),
        ("services/0/datasets", vec![json!(vec!["a"; 17]), json!([1]), json!([["a"]]), json!(["a", "b"])]),
        ("services/2/monitor", vec![json!(false)]),
    ];
    let service = spark()["services"][2].clone();
    let named = |n: usize, count: u32| {
        (0..n)
            .map(|i| {
                let mut s = service.clone();
                s["name"] = json!(format!("s{i}"));
                s["total_count"] = json!(count);
                s
            })
            .collect::<Vec<_>>()
    };
    let port = spark()["services"][2]["ports"][0].clone();
    let env = |n: usize| (0..n).map(|i| json!([format!("A{i}"), "b"])).collect::<Vec<_>>();
    cases.push(("services", vec![json!([]), json!(named(65, 1)), json!(named(5, 64)), json!(named(4, 64))]));
    cases.push(("services/2/ports", vec![json!(vec![port; 33])]));
    cases.push(("services/2/environment", vec![json!(env(257)), json!([["A", "1"], ["B", "2"], ["A", "3"]])]));
    let mut out = Vec::new();
    for (p, values) in cases {
        for v in values {
            let shown = v.to_string();
            let shown = if shown.chars().count() > 120 {
                format!("{}... ({} bytes)", shown.chars().take(100).collect::<String>(), shown.len())
            } else {
                shown
            };
            out.push(answer(&format!("{p} = {shown}"), &with(p, v)));
        }
    }
    crate::testing::insta_settings().bind(|| insta::assert_snapshot!(out.join("\n")));
}

/// Documents with more than one mistake: which one is answered.
#[test]
fn the_first_of_several_mistakes() {
    let mut out = Vec::new();
    let mut doc = spark();
    doc["priority"] = json!(-1);
    doc["services"][1]["total_count"] = json!(0);
    doc["services"][0]["ports"][0]["port_number"] = json!(0);
    out.push(answer("priority -1, services[1].total_count 0, services[0].ports[0].port_number 0", &doc));
    doc["priority"] = json!(1);
    out.push(answer("services[1].total_count 0, services[0].ports[0].port_number 0", &doc));
    let mut doc = without("services/0/docker_image");
    doc["services"][0]["image"] = json!("x");
    out.push(answer("services[0] without docker_image, with image", &doc));
    crate::testing::insta_settings().bind(|| insta::assert_snapshot!(out.join("\n")));
}

#[test]
fn host_names_registries_and_repeated_keys() {
    let mut out = Vec::new();
    let app = parse_application(&spark()).unwrap_or_else(|e| panic!("{e}"));
    for execution in ["lab".to_string(), "e".repeat(37), "e".repeat(38), "e".repeat(100)] {
        let answer = match check_host_names(&app, &execution, "alice", "prod") {
            Ok(()) => "accepted".to_string(),
            Err(e) => format!("{} | {} | {}", e.path, e.code, e.message),
        };
        out.push(format!("host names of execution {execution:?}\n    => {answer}"));
    }
    for image in ["busybox", "127.0.0.1:24851/probe/img", "registry.example.org/team/app:1", "localhost/x"] {
        let app = parse_application(&with("services/1/docker_image", json!(image))).unwrap_or_else(|e| panic!("{e}"));
        for allowed in [vec![], vec!["registry.example.org".to_string(), "LOCALHOST".to_string()]] {
            let answer = match check_registries(&app, &allowed) {
                Ok(()) => "accepted".to_string(),
                Err(e) => format!("{} | {} | {}", e.path, e.code, e.message),
            };
            out.push(format!("image {image} with registries {allowed:?}\n    => {answer}"));
        }
    }
    let named = with("services/2/datasets", json!(["imagenet", "corpus"]));
    let app = parse_application(&named).unwrap_or_else(|e| panic!("{e}"));
    for known in [&["imagenet", "corpus"][..], &["imagenet"], &[]] {
        let answer = match check_datasets(&app, |n| known.contains(&n)) {
            Ok(()) => "accepted".to_string(),
            Err(e) => format!("{} | {} | {}", e.path, e.code, e.message),
        };
        out.push(format!("data sets [imagenet, corpus] with {known:?} configured\n    => {answer}"));
    }
    for text in [
        r#"{"name": "a", "name": "b"}"#,
        r#"{"services": [{"name": "a"}, {"ports": [{"x": 1, "x": 2}]}]}"#,
        r#"{"application": {"services": [{"environment": [], "environment": []}]}}"#,
        r#"{"a b": {"c": 1, "c": 1}}"#,
        r#"[{"x": 1}, {"y": 1, "y": 2}]"#,
        r#"{"name": "x""#,
    ] {
        let answer = match strict_json::from_str(text) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        out.push(format!("strict JSON {text}\n    => {answer}"));
    }
    crate::testing::insta_settings().bind(|| insta::assert_snapshot!(out.join("\n")));
}
