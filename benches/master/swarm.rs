//! 7. Starting on the test Swarm: Zoe against the manager's API directly.

use super::*;

/// The test cluster's settings (`cluster.sh env`), the cluster brought up first, with the test
/// image and the relay's (`zoe-relay:bench`, built from this binary) on every node.
pub fn cluster_env() -> std::collections::HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    let relay = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/relay-image.sh");
    let built = std::process::Command::new("bash")
        .args([relay, env!("CARGO_BIN_EXE_zoe"), "zoe-relay:bench"])
        .output()
        .unwrap();
    assert!(built.status.success(), "relay-image.sh: {}", String::from_utf8_lossy(&built.stderr));
    for args in [&["up"][..], &["load", "zoe-test-busybox:latest", "zoe-relay:bench"][..]] {
        let out = std::process::Command::new("timeout").args(["900", "bash", script]).args(args).output().unwrap();
        assert!(out.status.success(), "cluster.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = std::process::Command::new("bash").args([script, "env"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The specification Zoe gives a Swarm service, built here by hand (as a user of the API would).
pub fn direct_service(name: &str, network: &str, workspace: &str) -> bollard::models::ServiceSpec {
    use bollard::models::*;
    let labels: std::collections::HashMap<String, String> =
        ["deployment_name", "owner", "execution.name", "execution.id", "service.name", "service.id", "type", "monitor"]
            .iter()
            .map(|k| (format!("zoe.bench.{k}"), "x".to_string()))
            .collect();
    ServiceSpec {
        name: Some(name.to_string()),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some("zoe-test-busybox:latest".into()),
                labels: Some(labels),
                args: Some(vec!["sleep".into(), "600".into()]),
                hostname: Some(name.to_string()),
                env: Some(vec!["HOME=/mnt/workspace".into()]),
                user: Some("200001:200001".into()),
                mounts: Some(vec![
                    Mount {
                        target: Some("/tmp".into()),
                        typ: Some(MountType::TMPFS),
                        tmpfs_options: Some(MountTmpfsOptions {
                            size_bytes: Some(33554432),
                            mode: Some(0o1777),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Mount {
                        target: Some("/mnt/workspace".into()),
                        source: Some(workspace.to_string()),
                        typ: Some(MountType::BIND),
                        ..Default::default()
                    },
                ]),
                read_only: Some(true),
                init: Some(true),
                capability_drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit { nano_cpus: Some(100_000_000), memory_bytes: Some(33554432), pids: Some(1024) }),
                reservations: Some(ResourceObject {
                    nano_cpus: Some(100_000_000),
                    memory_bytes: Some(33554432),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig { target: Some(network.to_string()), ..Default::default() }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec { mode: Some(EndpointSpecModeEnum::DNSRR), ports: None }),
        ..Default::default()
    }
}

/// Creates the services, then waits until each one's task runs (polling every 50 ms).
pub async fn direct_group(docker: &bollard::Docker, names: &[String], network: &str, workspace: &str) {
    use bollard::query_parameters::ListTasksOptions;
    for name in names {
        docker.create_service(direct_service(name, network, workspace), None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let filters = std::collections::HashMap::from([("service".to_string(), names.to_vec())]);
        let tasks = docker.list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await.unwrap();
        let running = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING))
            .count();
        if running >= names.len() {
            return;
        }
        assert!(Instant::now() < deadline, "the direct services never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn swarm_startup(runs: usize) {
    let env = cluster_env();
    let get = |k: &str| env.get(k).cloned().expect("a setting missing from cluster.sh env");
    let workspaces = get("ZOE_CLUSTER_WORKSPACES");
    let dir = prepare_dir("swarm", 0);
    let (master, addr) = startup_master(
        &dir,
        &[
            "--backend",
            "swarm",
            "--docker-host",
            &get("ZOE_CLUSTER_MANAGER_TLS"),
            "--docker-tls-ca",
            &get("ZOE_CLUSTER_TLS_CA"),
            "--docker-tls-cert",
            &get("ZOE_CLUSTER_TLS_CERT"),
            "--docker-tls-key",
            &get("ZOE_CLUSTER_TLS_KEY"),
            "--workspace-base-path",
            &workspaces,
            "--relay-image",
            "zoe-relay:bench",
        ],
    );
    let agent = agent(Duration::from_secs(60));
    let workspace = format!("{workspaces}/bench/alice");
    let _ = std::fs::create_dir_all(&workspace);
    let system = actix::System::new();
    let path = |k: &str| PathBuf::from(get(k));
    let docker = bollard::Docker::connect_with_ssl(
        &get("ZOE_CLUSTER_MANAGER_TLS"),
        &path("ZOE_CLUSTER_TLS_KEY"),
        &path("ZOE_CLUSTER_TLS_CERT"),
        &path("ZOE_CLUSTER_TLS_CA"),
        120,
        &bollard::ClientVersion { major_version: 1, minor_version: 41 },
    )
    .expect("the manager");
    let network = "zoe-bench-direct";
    system.block_on(async {
        let req = bollard::models::NetworkCreateRequest {
            name: network.into(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            ..Default::default()
        };
        let _ = docker.create_network(req).await;
    });
    println!("\n3-node Swarm (Docker-in-Docker on this machine), manager over TLS:\n");
    // Alternate which goes first, and let the nodes remove the containers in between.
    compare(
        runs,
        "the same services through the manager's API",
        Duration::from_millis(3000),
        zoe_starts(&agent, &addr, "w"),
        |n, run| {
            // The same two startup groups as the application: the monitor, then the workers.
            let names: Vec<String> = (0..n).map(|i| format!("direct-{run}-{i}-bench")).collect();
            system.block_on(async {
                direct_group(&docker, &names[..1], network, &workspace).await;
                direct_group(&docker, &names[1..], network, &workspace).await;
            });
            names
        },
        |names| {
            system.block_on(async {
                for name in &names {
                    let _ = docker.delete_service(name).await;
                }
            })
        },
    );
    println!("\n(goal: Zoe within 10% of the direct path)\n");
    system.block_on(async {
        let _ = docker.remove_network(network).await;
    });
    stop(master);
    let _ = std::fs::remove_dir_all(&dir);
}
