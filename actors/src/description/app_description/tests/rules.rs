//! The rules over typed values: names, lengths, templates, commands, secret headers, host names
//! and registries; and what no input can do (panic).

use super::*;

#[test]
fn list_sizes() {
    assert_eq!(error(&with("services", json!([]))), ("services".into(), "out_of_range"));
    let service = spark()["services"][2].clone();
    let many: Vec<Value> = (0..65)
        .map(|i| {
            let mut s = service.clone();
            s["name"] = json!(format!("s{i}"));
            s
        })
        .collect();
    assert_eq!(error(&with("services", json!(many))), ("services".into(), "out_of_range"));
    let port = spark()["services"][2]["ports"][0].clone();
    assert_eq!(error(&with("services/2/ports", json!(vec![port; 33]))), ("services[2].ports".into(), "out_of_range"));
    // (Each variable named once: a name set twice is refused, see `environment_entries`.)
    let env = |n: usize| (0..n).map(|i| json!([format!("A{i}"), "b"])).collect::<Vec<_>>();
    assert!(parse_application(&with("services/2/environment", json!(env(256)))).is_ok());
    assert_eq!(
        error(&with("services/2/environment", json!(env(257)))),
        ("services[2].environment".into(), "out_of_range")
    );
}

#[test]
fn too_many_containers() {
    let service = spark()["services"][2].clone();
    let five: Vec<Value> = (0..5)
        .map(|i| {
            let mut s = service.clone();
            s["name"] = json!(format!("s{i}"));
            s["total_count"] = json!(if i == 4 { 1 } else { 64 });
            s
        })
        .collect();
    assert_eq!(error(&with("services", json!(five))), ("services".into(), "out_of_range"));
    let m = message(&with("services", json!(five)));
    assert!(m.contains("257 containers"), "{m}");
    let four: Vec<Value> = five[..4].to_vec();
    assert!(parse_application(&with("services", json!(four))).is_ok());
}

#[test]
fn service_names() {
    for bad in ["", "Spark", "spark_master", "-a", "a-", "a.b", &"a".repeat(64)] {
        assert_eq!(error(&with("services/1/name", json!(bad))), ("services[1].name".into(), "invalid_name"), "{bad}");
    }
    assert!(message(&with("services/1/name", json!("Spark")))
        .starts_with("service name \"Spark\": must be a lowercase DNS label"));
    assert_eq!(
        error(&with("services/2/name", json!("spark-master"))),
        ("services[2].name".into(), "duplicate_service_name")
    );
    assert!(message(&with("services/2/name", json!("spark-master"))).contains("services[0]"));
}

/// Text fields: the values refused as `invalid_name`; the longest value accepted, and one
/// character more refused as `too_long`.
#[test]
fn text_fields() {
    let cases: [(&str, &str, &[&str], String); 5] = [
        ("name", "name", &["", "a\nb"], "é".repeat(128)),
        ("services/2/ports/0/name", "services[2].ports[0].name", &[""], "x".repeat(128)),
        (
            "services/0/docker_image",
            "services[0].docker_image",
            &["", "alpine latest", " alpine", "alpine\n", "a\u{0}b"],
            "a".repeat(255),
        ),
        (
            "services/2/ports/0/protocol",
            "services[2].ports[0].protocol",
            &["", "HTTP", "1http", "ht tp", "http:", "é"],
            "a".repeat(16),
        ),
        (
            "services/2/ports/0/path",
            "services[2].ports[0].path",
            &["tree", "a/b", "/a b", "/\t"],
            format!("/{}", "a".repeat(1023)),
        ),
    ];
    for (at, path, bad, longest) in cases {
        for bad in bad {
            assert_eq!(error(&with(at, json!(bad))), (path.to_string(), "invalid_name"), "{at} = {bad:?}");
        }
        assert!(parse_application(&with(at, json!(longest))).is_ok(), "{at}");
        let longer: String = longest.chars().chain(longest.chars().last()).collect();
        assert_eq!(error(&with(at, json!(longer))), (path.to_string(), "too_long"), "{at}");
    }
}

#[test]
fn ports() {
    for good in ["http", "https", "tcp", "svn+ssh", "a1.b-c"] {
        assert!(parse_application(&with("services/2/ports/0/protocol", json!(good))).is_ok());
    }
    assert!(parse_application(&with("services/2/ports/0/path", json!(""))).is_ok());
}

#[test]
fn no_monitor() {
    let doc = with("services/2/monitor", json!(false));
    assert_eq!(error(&doc), ("services".into(), "no_monitor"));
}

#[test]
fn versions() {
    for v in [json!(1), json!(3), json!(0), json!(-2), json!(1e300), json!(u64::MAX)] {
        assert_eq!(error(&with("version", v.clone())), ("version".into(), "unsupported_version"), "{v}");
    }
    assert!(message(&with("version", json!(1))).ends_with("got 1"));
    assert_eq!(error(&with("version", json!("2"))), ("version".into(), "wrong_type"));
}

#[test]
fn version_1_description_is_rejected_by_version() {
    // A 0.9.7 format 1 description: no total_count, essential_count or startup_order.
    let doc = json!({
        "name": "aml-lab", "version": 1, "will_end": false, "requires_binary": false,
        "priority": 512,
        "services": [{"name": "spark-master", "docker_image": "x", "monitor": true,
                      "ports": [], "required_resources": {"memory": 536870912}}]
    });
    assert_eq!(error(&doc), ("version".into(), "unsupported_version"));
}

#[test]
fn template_errors_have_paths() {
    assert_eq!(
        error(&with("services/1/environment/0/1", json!("{name_prefix}-master"))),
        ("services[1].environment[0][1]".into(), "unknown_template_variable")
    );
    let m = message(&with("services/1/environment/1/1", json!("{user_id}")));
    assert!(m.contains("{user_id}") && m.contains("{execution_name}"), "{m}");
    for bad in ["{", "}", "{}", "x{index"] {
        assert_eq!(
            error(&with("services/2/command", json!(bad))),
            ("services[2].command".into(), "unknown_template_variable"),
            "{bad}"
        );
    }
    assert_eq!(
        error(&with("services/2/command", json!("run {nope}"))),
        ("services[2].command".into(), "unknown_template_variable")
    );
}

#[test]
fn environment_entries() {
    for bad in [json!("A=b"), json!(["A"]), json!(["A", "b", "c"]), json!([]), json!({"A": "b"})] {
        assert_eq!(
            error(&with("services/1/environment/1", bad.clone())),
            ("services[1].environment[1]".into(), "wrong_type"),
            "{bad}"
        );
    }
    for bad in ["", "1A", "A-B", "A B", "É"] {
        assert_eq!(
            error(&with("services/1/environment/1/0", json!(bad))),
            ("services[1].environment[1][0]".into(), "invalid_name"),
            "{bad}"
        );
    }
    assert!(parse_application(&with("services/1/environment/1/0", json!("_a1"))).is_ok());
    assert_eq!(
        error(&with("services/1/environment/1/1", json!(2))),
        ("services[1].environment[1][1]".into(), "wrong_type")
    );
    assert_eq!(
        error(&with("services/1/environment/1/1", json!("x".repeat(4097)))),
        ("services[1].environment[1][1]".into(), "too_long")
    );
    assert!(parse_application(&with("services/1/environment/1/1", json!("x".repeat(4096)))).is_ok());
    assert_eq!(error(&with("services/2/command", json!("x".repeat(4097)))), ("services[2].command".into(), "too_long"));
}

#[test]
fn control_characters_are_refused_in_commands_and_environment_values() {
    // A tenant's command that would drive the terminal of an administrator reading it back:
    // set the window title, move the cursor up, erase the line, return to its start.
    let spoof = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good";
    let doc = with("services/2/command", json!(spoof));
    assert_eq!(error(&doc), ("services[2].command".into(), "control_character"));
    assert!(message(&doc).ends_with("character 1 is U+001B"), "{}", message(&doc));
    for (bad, at) in
        [("a\rb", "character 2 is U+000D"), ("\u{7f}", "U+007F"), ("x\u{9b}2J", "U+009B"), ("\0", "U+0000")]
    {
        let doc = with("services/1/environment/0/1", json!(bad));
        assert_eq!(error(&doc), ("services[1].environment[0][1]".into(), "control_character"), "{bad:?}");
        assert!(message(&doc).ends_with(at), "{}", message(&doc));
    }
    // Tabs and newlines are text: a script in a command, a multi-line value.
    assert!(parse_application(&with("services/2/command", json!("sh -c 'echo a\n\techo b'"))).is_ok());
    assert!(parse_application(&with("services/1/environment/0/1", json!("line 1\nline 2\tend"))).is_ok());
    // Messages that quote what was sent show its control characters escaped.
    let doc = with("services/0/docker_image", json!("\u{1b}[2Jimg"));
    assert!(message(&doc).contains("\"\\u{1b}[2Jimg\""), "{}", message(&doc));
}

#[test]
fn an_environment_variable_set_twice_is_refused() {
    let doc = with("services/1/environment", json!([["A", "1"], ["B", "2"], ["A", "3"]]));
    assert_eq!(error(&doc), ("services[1].environment[2][0]".into(), "duplicate_key"));
    assert!(message(&doc).contains("already set by services[1].environment[0]"), "{}", message(&doc));
    // The same name in two services is fine.
    let mut doc = with("services/2/environment", json!([["A", "1"]]));
    *at(&mut doc, "services/1/environment") = json!([["A", "2"]]);
    assert!(parse_application(&doc).is_ok(), "{:?}", parse_application(&doc));
}

#[test]
fn volumes_and_networks() {
    let doc = with("services/0/volumes", json!([["/etc", "/mnt/etc", true]]));
    assert_eq!(error(&doc), ("services[0].volumes".into(), "volumes_not_allowed"));
    assert!(message(&doc).contains("/mnt/workspace"));
    assert_eq!(
        error(&with("services/0/networks", json!(["host"]))),
        ("services[0].networks".into(), "networks_not_allowed")
    );
}

#[test]
fn first_error_in_document_order() {
    let mut doc = spark();
    doc["priority"] = json!(-1);
    doc["services"][1]["total_count"] = json!(0);
    doc["services"][0]["ports"][0]["port_number"] = json!(0);
    assert_eq!(error(&doc), ("priority".into(), "out_of_range"));
    doc["priority"] = json!(1);
    assert_eq!(error(&doc), ("services[0].ports[0].port_number".into(), "out_of_range"));
    doc["services"][0]["ports"][0]["port_number"] = json!(1);
    assert_eq!(error(&doc), ("services[1].total_count".into(), "out_of_range"));
}

#[test]
fn host_names() {
    let app = expected_spark();
    assert_eq!(check_host_names(&app, "lab", "alice", "prod"), Ok(()));
    // "spark-worker-2-" is 15 characters, "-alice-prod" 11, so 37 are left for the execution.
    let fits = "e".repeat(37);
    assert_eq!(check_host_names(&app, &fits, "alice", "prod"), Ok(()));
    let too_long = "e".repeat(38);
    let e = check_host_names(&app, &too_long, "alice", "prod").err();
    let Some(e) = e else { panic!("accepted a 64-character host name") };
    assert_eq!((e.path.as_str(), e.code), ("services[1].name", "too_long"));
    let composed = format!("spark-worker-2-{too_long}-alice-prod");
    assert!(e.message.contains(&format!("\"{composed}\"")), "{}", e.message);
    assert!(e.message.contains("64 characters") && e.message.contains("63"), "{}", e.message);
}

#[test]
fn every_code_is_produced() {
    let mut doc = spark();
    doc["services"][2]["environment"] = json!([["A", "{x}"]]);
    let mut produced = vec![
        error(&json!([])).1,
        error(&without("name")).1,
        error(&with("nme", json!("x"))).1,
        error(&with("will_end", json!("no"))).1,
        error(&with("priority", json!(2000))).1,
        error(&with("services/0/name", json!("A"))).1,
        error(&with("services/1/name", json!("jupyter"))).1,
        error(&with("services/2/monitor", json!(false))).1,
        error(&with("version", json!(1))).1,
        error(&doc).1,
        error(&with("name", json!("x".repeat(200)))).1,
        error(&with("services/0/volumes", json!([["/a", "/b", false]]))).1,
        error(&with("services/0/networks", json!(["x"]))).1,
        error(&with("services/0/command", json!("sh -c 'unclosed"))).1,
        error(&with("services/2/ports/1/secret_header", json!("Authorization token"))).1,
        error(&with("services/0/command", json!("echo \u{1b}[2J"))).1,
        error(&with("services/1/environment", json!([["A", "1"], ["A", "2"]]))).1,
        error(&with("services/1/datasets", json!(["a", "a"]))).1,
    ];
    let remote = parse_application(&with("services/0/docker_image", json!("evil.example/x"))).unwrap();
    produced.push(check_registries(&remote, &[]).unwrap_err().code);
    let named = parse_application(&with("services/0/datasets", json!(["corpus"]))).unwrap();
    produced.push(check_datasets(&named, |_| false).unwrap_err().code);
    produced.sort_unstable();
    let mut codes = CODES.to_vec();
    codes.sort_unstable();
    assert_eq!(produced, codes);
}

#[test]
fn a_secret_header_is_a_header_line_with_the_secret_on_an_exposed_port() {
    let ok =
        parse_application(&with("services/2/ports/1/secret_header", json!("Authorization: token {secret}"))).unwrap();
    let port = &ok.services[2].ports[1];
    assert_eq!(port.secret_header.as_deref(), Some("Authorization: token {secret}"));
    assert_eq!(port.secret_header_with("s3"), Some(("Authorization".into(), "token s3".into())));
    assert!(ok.needs_secret(|t| template::uses(t, "proxy_secret")));
    let plain = parse_application(&spark()).unwrap();
    assert!(!plain.needs_secret(|t| template::uses(t, "proxy_secret")));
    let by_template = parse_application(&with("services/2/environment", json!([["TOKEN", "{proxy_secret}"]]))).unwrap();
    assert!(by_template.needs_secret(|t| template::uses(t, "proxy_secret")), "{{proxy_secret}} alone");
    for (bad, says) in [
        ("Authorization token {secret}", "Name: value"),
        ("Authorization: token", "{secret}"),
        ("Bad Name: {secret}", "header name"),
        ("Host: {secret}", "decided by the proxy"),
        ("Cookie: a={secret}", "decided by the proxy"),
        ("Proxy-Authorization: {secret}", "decided by the proxy"),
        ("Sec-WebSocket-Key: {secret}", "decided by the proxy"),
        ("X-Token: {secret}\r\nHost: evil", "header value"),
    ] {
        let (path, code) = error(&with("services/2/ports/1/secret_header", json!(bad)));
        assert_eq!((path.as_str(), code), ("services[2].ports[1].secret_header", "invalid_secret_header"), "{bad}");
        let e = parse_application(&with("services/2/ports/1/secret_header", json!(bad))).unwrap_err();
        assert!(e.message.contains(says), "{bad}: {}", e.message);
    }
    // Port 0 of service 2 is not exposed: the proxy never reaches it.
    let e = parse_application(&with("services/2/ports/0/secret_header", json!("X-Token: {secret}"))).unwrap_err();
    assert_eq!(e.code, "invalid_secret_header");
    assert!(e.message.contains("exposed"), "{}", e.message);
}

#[test]
fn garbage_never_panics() {
    let garbage = [
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(-1e300),
        json!(1e300),
        json!(i64::MIN),
        json!(u64::MAX),
        serde_json::from_str::<Value>("123456789012345678901234567890").unwrap_or_default(),
        json!(""),
        json!("{"),
        json!("x".repeat(10_000)),
        json!([]),
        json!([[[[[]]]]]),
        json!({}),
        json!({"name": {"name": [null]}}),
    ];
    // Every value of the Spark example, replaced by every kind of garbage.
    fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        let child = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}/{k}")
            }
        };
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(child(k));
                    paths(v, &child(k), out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    out.push(child(&i.to_string()));
                    paths(v, &child(&i.to_string()), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(&spark(), "", &mut all);
    assert!(all.len() > 60, "{}", all.len());
    for p in &all {
        for g in &garbage {
            let result = parse_application(&with(p, g.clone()));
            if let Err(e) = result {
                assert!(CODES.contains(&e.code));
                assert!(!e.path.is_empty());
            }
        }
    }
    for g in &garbage {
        assert!(parse_application(g).is_err());
    }
}

#[test]
fn huge_unknown_key_gives_short_path_and_message() {
    let key = "k".repeat(100_000);
    let e = parse_application(&with(&key, json!(1))).err();
    let Some(e) = e else { panic!("accepted") };
    assert_eq!(e.code, "unknown_field");
    assert!(e.path.len() < 100 && e.message.len() < 400);
}

#[test]
fn images_naming_a_registry_need_the_allow_list() {
    for (image, registry) in [
        ("busybox", None),
        ("busybox:1.36", None),
        ("library/busybox", None),
        ("zoe-spark:4.0", None),
        ("127.0.0.1:24851/probe/img", Some("127.0.0.1:24851")),
        ("registry.example.org/team/app:1", Some("registry.example.org")),
        ("localhost/x", Some("localhost")),
        ("[::1]:5000/x", Some("[::1]:5000")),
    ] {
        assert_eq!(registry_of(image), registry, "{image}");
    }
    let mut v = spark();
    v["services"][1]["docker_image"] = json!("127.0.0.1:24851/probe/img");
    let app = parse_application(&v).unwrap();
    let e = check_registries(&app, &[]).unwrap_err();
    assert_eq!((e.code, e.path.as_str()), ("registry_not_allowed", "services[1].docker_image"));
    assert!(e.message.contains("127.0.0.1:24851") && e.message.contains("(none)"), "{e}");
    assert!(check_registries(&app, &["registry.example.org".into()]).is_err());
    check_registries(&app, &["127.0.0.1:24851".into()]).unwrap();
    check_registries(&parse_application(&spark()).unwrap(), &[]).unwrap();
}
