//! Hostile input: arbitrary JSON, and valid descriptions with parts replaced by arbitrary JSON,
//! never panic, and every rejection carries one of the documented codes.

use std::collections::BTreeSet;

use super::{parse_application, CODES};
use crate::description::fixtures::{PORT_FIELDS, RESOURCE_FIELDS, SERVICE_FIELDS, TOP_FIELDS};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The description's field names, and one that is none of them.
fn keys() -> Vec<&'static str> {
    let fields = TOP_FIELDS.iter().chain(SERVICE_FIELDS).chain(RESOURCE_FIELDS).chain(PORT_FIELDS);
    let keys: BTreeSet<&str> = fields.chain(&["other"]).copied().collect();
    keys.into_iter().collect()
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec!["{x}", "{{", "}", "{index}", "a b 'c", "main", "-", "", "\u{0}"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(keys()).prop_map(str::to_string), inner, 0..8,)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn valid() -> Value {
    json!({
        "name": "spark", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [{
            "name": "main", "docker_image": "img", "monitor": true, "total_count": 2,
            "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 67108864, "cores": 1},
            "ports": [{"name": "ui", "protocol": "http", "port_number": 8080, "is_main_endpoint": true}],
            "environment": [["A", "{index}"]], "command": "run {execution_name}"
        }]
    })
}

/// Every place in a JSON value, as a list of steps.
fn places(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            let mut p = here.clone();
            p.push(k.clone());
            places(c, p, out)
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
            let mut p = here.clone();
            p.push(i.to_string());
            places(c, p, out)
        }),
        _ => {}
    }
}

fn replace(v: &mut Value, path: &[String], with: Value) {
    match path.split_first() {
        None => *v = with,
        Some((k, rest)) => {
            let child = match v {
                Value::Object(m) => m.get_mut(k),
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            };
            if let Some(c) = child {
                replace(c, rest, with);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        if let Err(e) = parse_application(&v) {
            prop_assert!(CODES.contains(&e.code), "undocumented code {}", e.code);
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn a_valid_description_with_any_part_replaced_never_panics(pick in any::<prop::sample::Index>(), with in any_json()) {
        let mut v = valid();
        let mut all = Vec::new();
        places(&v, Vec::new(), &mut all);
        let path = all[pick.index(all.len())].clone();
        replace(&mut v, &path, with);
        match parse_application(&v) {
            Ok(app) => {
                // What is accepted is what the master can run: it validates again.
                let again = serde_json::to_value(&app).unwrap();
                prop_assert_eq!(parse_application(&again), Ok(app));
            }
            Err(e) => prop_assert!(CODES.contains(&e.code), "undocumented code {}", e.code),
        }
    }
}
