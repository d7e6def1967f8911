//! The reading and the rules of a description, field by field: every code, path and message.

use serde_json::{json, Value};
use zoe_checkpoints::model::limits::{MAX_MEMORY, MIN_MEMORY};
use zoe_checkpoints::model::{Application, PortDescription, Resources, ServiceDescription};

use super::{check_datasets, check_host_names, check_registries, parse_application, registry_of, CODES};
use crate::description::fixtures::{at, spark, with, without, ARRAY_PATHS, PORT_FIELDS, SERVICE_FIELDS, TOP_FIELDS};
use crate::description::template;

mod rules;

fn port(name: &str, number: u16, main: bool, path: &str, expose: bool) -> PortDescription {
    PortDescription {
        name: name.to_string(),
        protocol: "http".to_string(),
        port_number: number,
        path: path.to_string(),
        is_main_endpoint: main,
        expose,
        secret_header: None,
    }
}

fn expected_spark() -> Application {
    Application {
        name: "Spark + Jupyter".to_string(),
        version: 2,
        will_end: false,
        requires_binary: false,
        priority: 512,
        services: vec![
            ServiceDescription {
                name: "spark-master".to_string(),
                docker_image: "zoerepo/spark-master:2.1".to_string(),
                monitor: false,
                total_count: 1,
                essential_count: 1,
                startup_order: 0,
                ports: vec![port("Spark master web interface", 8080, false, "", false)],
                required_resources: Resources { memory: 536_870_912, cores: None },
                environment: vec![],
                command: None,
                volumes: vec![],
                networks: vec![],
                datasets: vec![],
            },
            ServiceDescription {
                name: "spark-worker".to_string(),
                docker_image: "zoerepo/spark-worker:2.1".to_string(),
                monitor: false,
                total_count: 3,
                essential_count: 1,
                startup_order: 1,
                ports: vec![],
                required_resources: Resources { memory: 4_294_967_296, cores: Some(2.0) },
                environment: vec![
                    (
                        "SPARK_MASTER_IP".to_string(),
                        "spark-master-{execution_name}-{user_name}-{deployment_name}".to_string(),
                    ),
                    ("SPARK_WORKER_CORES".to_string(), "2".to_string()),
                ],
                command: None,
                volumes: vec![],
                networks: vec![],
                datasets: vec![],
            },
            ServiceDescription {
                name: "jupyter".to_string(),
                docker_image: "zoerepo/spark-jupyter-notebook:2.1".to_string(),
                monitor: true,
                total_count: 1,
                essential_count: 1,
                startup_order: 2,
                ports: vec![
                    port("Spark application web interface", 4040, false, "", false),
                    port("Jupyter Notebook interface", 8888, true, "/tree", true),
                ],
                required_resources: Resources { memory: 4_294_967_296, cores: Some(0.5) },
                environment: vec![("NB_USER".to_string(), "{user_name}".to_string())],
                command: Some("start-notebook.sh --NotebookApp.base_url=/{execution_id}/{{x}}".to_string()),
                volumes: vec![],
                networks: vec![],
                datasets: vec![],
            },
        ],
    }
}

/// Parses, expecting an error, and returns its path and code.
fn error(doc: &Value) -> (String, &'static str) {
    match parse_application(doc) {
        Ok(app) => panic!("expected an error, parsed {app:?}"),
        Err(e) => {
            assert!(CODES.contains(&e.code), "{}", e.code);
            (e.path, e.code)
        }
    }
}

fn message(doc: &Value) -> String {
    parse_application(doc).err().map(|e| e.message).unwrap_or_default()
}

#[test]
fn spark_example_parses() {
    assert_eq!(parse_application(&spark()), Ok(expected_spark()));
}

#[test]
fn minimal_description_gets_defaults() {
    let doc = json!({
        "name": "x", "version": 2.0, "will_end": true, "requires_binary": true, "priority": 0,
        "services": [{
            "name": "a", "docker_image": "alpine", "monitor": true, "total_count": 1,
            "essential_count": 0, "startup_order": 0,
            "ports": [{"name": "p", "protocol": "tcp", "port_number": 1, "is_main_endpoint": false}],
            "required_resources": {"memory": MIN_MEMORY, "cores": null}
        }]
    });
    let app = parse_application(&doc);
    let Ok(app) = app else { panic!("{app:?}") };
    assert!(app.will_end && app.requires_binary);
    let s = &app.services[0];
    assert_eq!(s.environment, vec![]);
    assert_eq!(s.command, None);
    assert_eq!(s.required_resources.cores, None);
    assert_eq!(s.ports[0].path, "");
    assert!(!s.ports[0].expose);
}

#[test]
fn display_is_path_and_message() {
    let e = parse_application(&with("services/0/total_count", json!(0)));
    assert_eq!(
        e.err().map(|e| e.to_string()),
        Some("services[0].total_count: must be between 1 and 64, got 0".to_string())
    );
}

#[test]
fn not_an_object() {
    for doc in [json!(null), json!([]), json!("x"), json!(1), json!(true)] {
        assert_eq!(error(&doc), ("application".into(), "not_an_object"));
    }
    assert_eq!(error(&with("services/1", json!([]))), ("services[1]".into(), "not_an_object"));
    assert_eq!(error(&with("services/2/ports/1", json!("8888"))), ("services[2].ports[1]".into(), "not_an_object"));
    assert_eq!(
        error(&with("services/0/required_resources", json!(512))),
        ("services[0].required_resources".into(), "not_an_object")
    );
}

#[test]
fn missing_fields() {
    for key in TOP_FIELDS {
        assert_eq!(error(&without(key)), (key.to_string(), "missing_field"));
    }
    for key in &SERVICE_FIELDS[..8] {
        assert_eq!(error(&without(&format!("services/1/{key}"))), (format!("services[1].{key}"), "missing_field"));
    }
    for key in &PORT_FIELDS[..4] {
        assert_eq!(
            error(&without(&format!("services/2/ports/1/{key}"))),
            (format!("services[2].ports[1].{key}"), "missing_field")
        );
    }
    assert_eq!(
        error(&without("services/0/required_resources/memory")),
        ("services[0].required_resources.memory".into(), "missing_field")
    );
    assert_eq!(message(&without("services/0/docker_image")), "missing required field \"docker_image\"");
}

#[test]
fn optional_fields_may_be_absent() {
    for path in [
        "services/0/environment",
        "services/0/command",
        "services/0/volumes",
        "services/0/networks",
        "services/0/datasets",
        "services/1/required_resources/cores",
        "services/2/ports/1/path",
        "services/2/ports/1/expose",
    ] {
        assert!(parse_application(&without(path)).is_ok(), "{path}");
    }
}

#[test]
fn unknown_fields_are_rejected_with_a_hint() {
    let mut doc = spark();
    if let Some(s) = doc["services"][2].as_object_mut() {
        let monitor = s.remove("monitor").unwrap_or(Value::Null);
        s.insert("monitr".into(), monitor);
    }
    let e = parse_application(&doc).err();
    let Some(e) = e else { panic!("accepted a typo") };
    assert_eq!((e.path.as_str(), e.code), ("services[2].monitr", "unknown_field"));
    assert!(e.message.starts_with("unknown field \"monitr\" (did you mean \"monitor\"?)"));
    assert!(e.message.contains("allowed fields: name, docker_image, monitor"));

    assert_eq!(error(&with("extra", json!(1))), ("extra".into(), "unknown_field"));
    assert_eq!(
        error(&with("services/0/required_resources/gpus", json!(1))),
        ("services[0].required_resources.gpus".into(), "unknown_field")
    );
    assert_eq!(
        error(&with("services/2/ports/0/exposed", json!(true))),
        ("services[2].ports[0].exposed".into(), "unknown_field")
    );
    // No hint when nothing is close.
    let m = message(&with("zzzzzzzz", json!(1)));
    assert!(!m.contains("did you mean"), "{m}");
    // 0.9.7 services had a `version` key in format 1; it is not part of format 2.
    assert_eq!(error(&with("services/0/version", json!(2))), ("services[0].version".into(), "unknown_field"));
}

#[test]
fn unknown_field_is_reported_before_missing_ones() {
    let mut doc = spark();
    if let Some(s) = doc["services"][0].as_object_mut() {
        s.remove("docker_image");
        s.insert("image".into(), json!("x"));
    }
    assert_eq!(error(&doc), ("services[0].image".into(), "unknown_field"));
}

#[test]
fn wrong_types_everywhere() {
    let bools = [
        "will_end",
        "requires_binary",
        "services/0/monitor",
        "services/2/ports/1/is_main_endpoint",
        "services/2/ports/1/expose",
    ];
    let ints = [
        "version",
        "priority",
        "services/0/total_count",
        "services/0/essential_count",
        "services/0/startup_order",
        "services/2/ports/1/port_number",
        "services/0/required_resources/memory",
    ];
    let strings = [
        "name",
        "services/0/name",
        "services/0/docker_image",
        "services/0/command",
        "services/2/ports/1/name",
        "services/2/ports/1/protocol",
        "services/2/ports/1/path",
        "services/1/environment/0/0",
        "services/1/environment/0/1",
    ];
    let to_path = |p: &str| {
        let mut out = String::new();
        for part in p.split('/') {
            match part.parse::<usize>() {
                Ok(i) => out.push_str(&format!("[{i}]")),
                Err(_) if out.is_empty() => out.push_str(part),
                Err(_) => out.push_str(&format!(".{part}")),
            }
        }
        out
    };
    let check = |paths: &[&str], bad: &[Value], expected: &str| {
        for p in paths {
            for v in bad {
                let doc = with(p, v.clone());
                assert_eq!(error(&doc), (to_path(p), "wrong_type"), "{p} = {v}");
                let m = message(&doc);
                assert!(m.starts_with(expected), "{p} = {v}: {m}");
            }
        }
    };
    check(&bools, &[json!("false"), json!("true"), json!(0), json!(1), json!(null), json!([])], "must be a boolean");
    check(&ints, &[json!("2"), json!(2.5), json!(true), json!(null), json!([2]), json!({})], "must be an integer");
    // `command` may be null; every other string may not.
    check(&strings, &[json!(1), json!(false), json!([]), json!({"a": 1})], "must be a string");
    check(&strings[..3], &[json!(null)], "must be a string");
    check(ARRAY_PATHS, &[json!("x"), json!(1), json!({}), json!(null)], "must be an array");
    assert_eq!(message(&with("services/0/total_count", json!("1"))), "must be an integer, got a string");
    assert_eq!(message(&with("priority", json!(1.5))), "must be an integer, got a number with a fraction (1.5)");
    assert_eq!(
        error(&with("services/1/required_resources/cores", json!("2"))),
        ("services[1].required_resources.cores".into(), "wrong_type")
    );
}

#[test]
fn integral_floats_are_integers() {
    let app = parse_application(&with("services/0/total_count", json!(2.0)));
    assert_eq!(app.map(|a| a.services[0].total_count), Ok(2));
}

#[test]
fn out_of_range() {
    let huge = json!(1e300);
    let beyond_u64: Value = serde_json::from_str("18446744073709551616").unwrap_or_default();
    let cases: Vec<(&str, Vec<Value>)> = vec![
        ("priority", vec![json!(-1), json!(1025), huge.clone()]),
        ("services/0/total_count", vec![json!(0), json!(65), json!(-3)]),
        ("services/1/essential_count", vec![json!(-1), json!(4)]),
        ("services/0/startup_order", vec![json!(-1), json!(1001)]),
        ("services/2/ports/1/port_number", vec![json!(0), json!(65536), json!(-8888), beyond_u64.clone()]),
        (
            "services/0/required_resources/memory",
            vec![
                json!(MIN_MEMORY - 1),
                json!(MAX_MEMORY + 1),
                json!(0),
                json!(-1),
                json!(i64::MIN),
                json!(u64::MAX),
                beyond_u64,
                huge,
            ],
        ),
        (
            "services/1/required_resources/cores",
            vec![json!(0), json!(-1), json!(0.0), json!(256.5), json!(1e300), json!(1e-300), json!(0.0099)],
        ),
    ];
    for (p, values) in cases {
        for v in values {
            let (path, code) = error(&with(p, v.clone()));
            assert_eq!(code, "out_of_range", "{p} = {v}");
            assert_eq!(path.replace(['[', ']', '.'], "/").replace("//", "/"), p, "{v}");
        }
    }
    assert!(parse_application(&with("services/1/essential_count", json!(3))).is_ok());
    assert!(parse_application(&with("services/1/required_resources/cores", json!(256))).is_ok());
    assert!(parse_application(&with("services/1/required_resources/cores", json!(0.01))).is_ok());
    assert_eq!(
        message(&with("services/1/required_resources/cores", json!(1e-300))),
        "must be at least 0.01 (Docker's smallest CPU limit) and at most 256, got 1e-300"
    );
    assert!(parse_application(&with("services/0/required_resources/memory", json!(MAX_MEMORY))).is_ok());
    assert_eq!(message(&with("services/1/essential_count", json!(4))), "must be between 0 and total_count (3), got 4");
    assert!(message(&with("services/0/required_resources/memory", json!(1024))).contains("6 MiB"));
}
