//! What the description's tests share: the fields of each level of a description, the Spark
//! example, and edits of a document at a path.

use serde_json::{json, Value};

/// The fields of each level, in the order of the documentation.
pub(crate) const TOP_FIELDS: &[&str] = &["name", "version", "will_end", "requires_binary", "priority", "services"];
pub(crate) const SERVICE_FIELDS: &[&str] = &[
    "name",
    "docker_image",
    "monitor",
    "total_count",
    "essential_count",
    "startup_order",
    "ports",
    "required_resources",
    "environment",
    "command",
    "volumes",
    "networks",
    "datasets",
];
pub(crate) const RESOURCE_FIELDS: &[&str] = &["memory", "cores"];
pub(crate) const PORT_FIELDS: &[&str] =
    &["name", "protocol", "port_number", "is_main_endpoint", "path", "expose", "secret_header"];

/// The paths of the Spark example that hold an array (`/`-separated, indices as numbers).
pub(crate) const ARRAY_PATHS: &[&str] = &[
    "services",
    "services/0/ports",
    "services/0/environment",
    "services/0/volumes",
    "services/0/networks",
    "services/0/datasets",
];

/// The Spark example: a master, three workers and a Jupyter notebook as the monitor.
pub(crate) fn spark() -> Value {
    json!({
        "name": "Spark + Jupyter",
        "version": 2,
        "will_end": false,
        "requires_binary": false,
        "priority": 512,
        "services": [
            {
                "name": "spark-master",
                "docker_image": "zoerepo/spark-master:2.1",
                "monitor": false,
                "total_count": 1,
                "essential_count": 1,
                "startup_order": 0,
                "ports": [{
                    "name": "Spark master web interface",
                    "protocol": "http",
                    "port_number": 8080,
                    "is_main_endpoint": false
                }],
                "required_resources": {"memory": 536870912},
                "environment": [],
                "command": null,
                "volumes": [],
                "networks": []
            },
            {
                "name": "spark-worker",
                "docker_image": "zoerepo/spark-worker:2.1",
                "monitor": false,
                "total_count": 3,
                "essential_count": 1,
                "startup_order": 1,
                "ports": [],
                "required_resources": {"memory": 4294967296_u64, "cores": 2},
                "environment": [
                    ["SPARK_MASTER_IP", "spark-master-{execution_name}-{user_name}-{deployment_name}"],
                    ["SPARK_WORKER_CORES", "2"]
                ]
            },
            {
                "name": "jupyter",
                "docker_image": "zoerepo/spark-jupyter-notebook:2.1",
                "monitor": true,
                "total_count": 1,
                "essential_count": 1,
                "startup_order": 2,
                "ports": [
                    {
                        "name": "Spark application web interface",
                        "protocol": "http",
                        "port_number": 4040,
                        "is_main_endpoint": false
                    },
                    {
                        "name": "Jupyter Notebook interface",
                        "protocol": "http",
                        "port_number": 8888,
                        "path": "/tree",
                        "is_main_endpoint": true,
                        "expose": true
                    }
                ],
                "required_resources": {"memory": 4294967296_u64, "cores": 0.5},
                "environment": [["NB_USER", "{user_name}"]],
                "command": "start-notebook.sh --NotebookApp.base_url=/{execution_id}/{{x}}"
            }
        ]
    })
}

/// The value at a path of `/`-separated keys and indices (created if absent).
pub(crate) fn at<'v>(v: &'v mut Value, path: &str) -> &'v mut Value {
    let mut v = v;
    for part in path.split('/') {
        v = match part.parse::<usize>() {
            Ok(i) => &mut v[i],
            Err(_) => &mut v[part],
        };
    }
    v
}

/// `doc` with the value at `path` set to `value`.
pub(crate) fn set(mut doc: Value, path: &str, value: Value) -> Value {
    *at(&mut doc, path) = value;
    doc
}

/// `doc` with the key at `path` removed.
pub(crate) fn remove(mut doc: Value, path: &str) -> Value {
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    let obj = if parent.is_empty() { &mut doc } else { at(&mut doc, parent) };
    if let Some(map) = obj.as_object_mut() {
        map.remove(key);
    }
    doc
}

/// The Spark example with the value at `path` set to `value`.
pub(crate) fn with(path: &str, value: Value) -> Value {
    set(spark(), path, value)
}

/// The Spark example with the key at `path` removed.
pub(crate) fn without(path: &str) -> Value {
    remove(spark(), path)
}
