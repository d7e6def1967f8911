//! 4. Starting containers: Zoe against the Docker API directly.

use super::*;

pub fn app_of(containers: u32) -> serde_json::Value {
    json!({
        "name": "startup", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": true, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "ports": [],
             "required_resources": {"memory": 33554432}, "command": "sleep 600"},
            {"name": "worker", "docker_image": "zoe-test-busybox:latest", "monitor": false, "total_count": containers - 1,
             "essential_count": 1, "startup_order": 1, "ports": [],
             "required_resources": {"memory": 33554432}, "command": "sleep 600"}
        ]
    })
}

pub fn wait_for(agent: &ureq::Agent, url: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, e) = http(agent, "GET", url, None);
        if e["status"] == status {
            return;
        }
        assert!(e["status"] != "error", "{e}");
        assert!(Instant::now() < deadline, "never {status}: {e}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Creates, starts and inspects `n` containers like Zoe does, straight through the Docker API.
pub async fn direct_start(docker: &bollard::Docker, run: usize, n: u32, workspace: &str) -> Vec<String> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions, StartContainerOptions};
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("direct-{run}-{i}-bench");
        let body = ContainerCreateBody {
            hostname: Some(name.clone()),
            image: Some("zoe-test-busybox:latest".into()),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            env: Some(vec!["HOME=/mnt/workspace".into()]),
            user: Some("200001:200001".into()),
            labels: Some(
                [
                    "deployment_name",
                    "owner",
                    "execution.name",
                    "execution.id",
                    "service.name",
                    "service.id",
                    "type",
                    "monitor",
                ]
                .iter()
                .map(|k| (format!("zoe.bench.{k}"), "x".to_string()))
                .collect(),
            ),
            host_config: Some(HostConfig {
                memory: Some(33554432),
                memory_swap: Some(33554432),
                readonly_rootfs: Some(true),
                tmpfs: Some([("/tmp".to_string(), "rw,exec,nosuid,nodev,size=33554432,mode=1777".to_string())].into()),
                nano_cpus: Some(100_000_000),
                pids_limit: Some(1024),
                network_mode: Some("zoe-bench-direct".into()),
                init: Some(true),
                privileged: Some(false),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                binds: Some(vec![format!("{workspace}:/mnt/workspace:rw")]),
                log_config: Some(bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(
                        [("max-size".to_string(), "10485760".to_string()), ("max-file".to_string(), "2".to_string())]
                            .into(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: Some(name), ..Default::default() };
        let id = docker.create_container(Some(opts), body).await.unwrap().id;
        docker.start_container(&id, None::<StartContainerOptions>).await.unwrap();
        docker.inspect_container(&id, None::<InspectContainerOptions>).await.unwrap();
        ids.push(id);
    }
    ids
}

pub fn startup(runs: usize) {
    use bollard::query_parameters::RemoveContainerOptions;
    let dir = prepare_dir("start", 0);
    let (master, addr) = startup_master(&dir, &["--workspace-base-path", dir.join("ws").to_str().unwrap_or("ws")]);
    let agent = agent(Duration::from_secs(60));
    let workspace =
        std::path::absolute(dir.join("ws").join("bench").join("alice")).unwrap_or_default().display().to_string();
    let system = actix::System::new();
    let docker = bollard::Docker::connect_with_local_defaults().expect("Docker");
    system.block_on(async {
        let req = bollard::models::NetworkCreateRequest { name: "zoe-bench-direct".into(), ..Default::default() };
        let _ = docker.create_network(req).await;
    });
    println!();
    compare(
        runs,
        "create+start+inspect, Docker API directly",
        Duration::from_millis(1500),
        zoe_starts(&agent, &addr, "s"),
        |n, run| system.block_on(direct_start(&docker, run, n, &workspace)),
        |ids| {
            system.block_on(async {
                for id in ids {
                    let _ = docker
                        .remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                        .await;
                }
            })
        },
    );
    system.block_on(async {
        let _ = docker.remove_network("zoe-bench-direct").await;
    });
    stop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Zoe's path for [`compare`]: [`zoe_start`] of `n` containers ([`app_of`]) on the master at
/// `addr`, as `<prefix><n>-<run>`.
pub fn zoe_starts<'a>(agent: &'a ureq::Agent, addr: &'a str, prefix: &'a str) -> impl FnMut(u32, usize) -> f64 + 'a {
    move |n, run| zoe_start(agent, addr, &format!("{prefix}{n}-{run}"), app_of(n))
}

/// Seconds from `POST /execution` of `app` as `name` to `running` on the master at `addr`; the
/// execution is then terminated and waited for.
pub fn zoe_start(agent: &ureq::Agent, addr: &str, name: &str, app: serde_json::Value) -> f64 {
    let t = Instant::now();
    let body = json!({"name": name, "application": app}).to_string();
    let (s, v) = http(agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
    assert_eq!(s, 201, "{v}");
    let url = format!("http://{addr}/api/0.6/execution/{}", v["execution_id"]);
    wait_for(agent, &url, "running");
    let z = t.elapsed().as_secs_f64();
    http(agent, "DELETE", &url, None);
    wait_for(agent, &url, "terminated");
    z
}

/// The comparison table, headed `direct` for the direct path: for 3 and 10 containers, after a
/// warm-up run (network creation, caches), `runs` runs of Zoe's path and the direct one in turns,
/// `settle` after each; their medians.
pub fn compare<T>(
    runs: usize,
    direct_title: &str,
    settle: Duration,
    mut zoe: impl FnMut(u32, usize) -> f64,
    mut direct: impl FnMut(u32, usize) -> T,
    mut remove: impl FnMut(T),
) {
    println!("| containers | POST to running, Zoe (median of {runs}) | {direct_title} | Zoe's overhead |");
    println!("|---|---|---|---|");
    for n in [3u32, 10] {
        let (mut zs, mut ds) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let timed_direct = || {
                let t = Instant::now();
                let made = direct(n, run);
                let d = t.elapsed().as_secs_f64();
                remove(made);
                d
            };
            let (z, d) = in_turns(run, settle, || zoe(n, run), timed_direct);
            if run > 0 {
                zs.push(z);
                ds.push(d);
            }
        }
        let (z, d) = (median(zs), median(ds));
        println!("| {n} | {:.0} ms | {:.0} ms | {:+.1}% |", z * 1e3, d * 1e3, 100.0 * (z - d) / d);
    }
}

/// One run of Zoe's path and the direct one, alternating which goes first (`run` even: Zoe),
/// letting Docker settle for `settle` after each, so that neither pays for the other's
/// leftovers: the seconds of (Zoe, direct).
pub fn in_turns(run: usize, settle: Duration, zoe: impl FnOnce() -> f64, direct: impl FnOnce() -> f64) -> (f64, f64) {
    let settle = || std::thread::sleep(settle);
    if run.is_multiple_of(2) {
        let z = zoe();
        settle();
        let d = direct();
        settle();
        (z, d)
    } else {
        let d = direct();
        settle();
        let z = zoe();
        settle();
        (z, d)
    }
}
