//! What to ask of the container back end, decided from the state alone (pure): which executions
//! to start now, and the exact containers of a start (names, labels, expanded environment and
//! command, limits, ports, workspace).

use std::collections::BTreeMap;
use std::path::PathBuf;

use zoe_checkpoints::{Execution, Service, ServiceStatus, State};

use crate::description::naming;
use crate::description::template::{self, Vars};
use crate::protocol::{
    ContainerSpec, DatasetMount, ExposedPort, RemoveExecution, StartExecution, Transport, Workspace,
};

/// Where the workspace is mounted in every container.
pub const WORKSPACE_MOUNT: &str = "/mnt/workspace";

/// Under which the data sets a service names are mounted, read-only: `/mnt/datasets/<name>`.
pub const DATASETS_MOUNT: &str = "/mnt/datasets";

/// The Docker labels of a container, with the keys of Zoe 0.9.7.
pub fn labels(
    deployment: &str,
    e: &Execution,
    service_id: u64,
    instance: &str,
    monitor: bool,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("zoe.deployment_name".to_string(), deployment.to_string()),
        ("zoe.owner".to_string(), e.owner.clone()),
        ("zoe.execution.name".to_string(), e.name.clone()),
        ("zoe.execution.id".to_string(), e.id.to_string()),
        ("zoe.service.name".to_string(), instance.to_string()),
        ("zoe.service.id".to_string(), service_id.to_string()),
        ("zoe.type".to_string(), "app_service".to_string()),
        ("zoe.monitor".to_string(), monitor.to_string()),
    ])
}

/// What start plans need beyond the state: where workspaces live and the limits Zoe sets.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanSettings {
    /// Users' workspaces are `<base>/<deployment>/<user>`.
    pub workspace_base: PathBuf,
    /// The CPU limit of a service whose description gives no cores. Submissions (and active
    /// executions loaded from older checkpoints) have the scheduler's default written into
    /// their descriptions, so this is only a fallback.
    pub default_cores: f64,
    /// Whether exposed ports are published on the host (they are always reachable through the
    /// master's proxy).
    pub publish_ports: bool,
    /// Each role's workspace quota.
    pub workspace_quotas: crate::protocol::Quotas,
    /// The data sets the administrator configured: name to folder on the host (on every node
    /// of a Swarm). Descriptions name them; no other host path is ever mounted.
    pub datasets: BTreeMap<String, PathBuf>,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            workspace_base: PathBuf::from("zoe-workspaces"),
            default_cores: 1.0,
            publish_ports: true,
            workspace_quotas: crate::protocol::Quotas::default(),
            datasets: BTreeMap::new(),
        }
    }
}

/// The containers of an execution in `starting` (its service records already created; those
/// `waiting` for room are not started). Every container runs as its owner's uid, with `HOME` in
/// the owner's workspace.
pub fn start_plan(state: &State, id: u64, settings: &PlanSettings) -> Result<StartExecution, String> {
    plan(state, id, settings, |s| s.status == ServiceStatus::Pending, false)
}

/// The containers of elastic instances (these service records) added to a running execution.
pub fn grow_plan(
    state: &State,
    id: u64,
    service_ids: &[u64],
    settings: &PlanSettings,
) -> Result<StartExecution, String> {
    plan(state, id, settings, |s| service_ids.contains(&s.id), true)
}

fn plan(
    state: &State,
    id: u64,
    settings: &PlanSettings,
    which: impl Fn(&Service) -> bool,
    grow: bool,
) -> Result<StartExecution, String> {
    let e = state.executions.get(&id).ok_or_else(|| format!("no execution {id}"))?;
    let deployment = &state.deployment_name;
    let owner = state
        .users
        .get(&e.owner_id)
        .ok_or_else(|| format!("the owner of execution {id} ({}) no longer exists", e.owner))?;
    let workspace = Workspace {
        host: settings.workspace_base.join(deployment).join(&e.owner),
        container: WORKSPACE_MOUNT.to_string(),
        uid: owner.uid,
        quota: settings.workspace_quotas.of(owner.role),
    };
    let mut containers = Vec::new();
    for s in e.services.iter().filter(|s| which(s)) {
        let d = e.description_of(s).ok_or_else(|| format!("service {} has no description", s.name))?;
        let instance = naming::service_instance_name(&d.name, s.index, d.total_count);
        let proxy_base = naming::proxy_base(e.id, &instance);
        let vars = Vars {
            execution_name: &e.name,
            user_name: &e.owner,
            deployment_name: deployment,
            index: s.index,
            execution_id: e.id,
            proxy_path: &proxy_base,
            proxy_secret: e.proxy_secret.as_deref().unwrap_or_default(),
        };
        let mut env = d
            .environment
            .iter()
            .map(|(k, v)| template::expand(v, &vars).map(|v| format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()?;
        if !d.environment.iter().any(|(k, _)| k == "HOME") {
            env.insert(0, format!("HOME={WORKSPACE_MOUNT}"));
        }
        // Each exposed port is served at the root of a host name of its own (see
        // `naming::app_host_label`): its base path is `/`, for applications that are told one.
        for p in d.ports.iter().filter(|p| p.expose) {
            env.push(format!("ZOE_PROXY_PATH_{}=/", p.port_number));
        }
        if let Some(secret) = &e.proxy_secret {
            env.push(format!("ZOE_PROXY_SECRET={secret}"));
        }
        let cmd = match &d.command {
            None => None,
            Some(c) => {
                let expanded = template::expand(c, &vars)?;
                Some(shell_words::split(&expanded).map_err(|err| format!("command of {}: {err}", d.name))?)
            }
        };
        let datasets = d
            .datasets
            .iter()
            .map(|name| match settings.datasets.get(name) {
                Some(host) => Ok(DatasetMount { host: host.clone(), container: format!("{DATASETS_MOUNT}/{name}") }),
                None => Err(format!("the data set \"{name}\" of service {} is no longer configured", d.name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        containers.push(ContainerSpec {
            service_id: s.id,
            name: s.name.clone(),
            image: d.docker_image.clone(),
            env,
            cmd,
            labels: labels(deployment, e, s.id, &instance, d.monitor),
            uid: owner.uid,
            memory: d.required_resources.memory,
            nano_cpus: (d.required_resources.cores.unwrap_or(settings.default_cores) * 1e9) as i64,
            exposed_ports: d
                .ports
                .iter()
                .filter(|p| p.expose && settings.publish_ports)
                .map(|p| ExposedPort { port: p.port_number, transport: Transport::of_protocol(&p.protocol) })
                .collect(),
            workspace: Some(workspace.clone()),
            datasets,
            startup_order: d.startup_order,
        });
    }
    Ok(StartExecution {
        execution_id: id,
        network: naming::user_network_name(&e.owner, deployment),
        owner: e.owner.clone(),
        containers,
        grow,
    })
}

/// The removal of every container of an execution.
pub fn remove_plan(e: &Execution) -> RemoveExecution {
    RemoveExecution { execution_id: e.id, containers: e.services.iter().map(|s| (s.id, s.name.clone())).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::access::Caller;
    use crate::logic::scheduler::SchedulerConfig;
    use crate::logic::transitions::{begin_start, create_user, submit_execution};
    use crate::testing::at;
    use crate::testing::starts;
    use serde_json::json;

    use zoe_checkpoints::Role;

    #[test]
    fn a_start_plan_names_labels_expands_and_limits_every_container() {
        let mut s = crate::testing::admin_state();
        let admin = crate::testing::admin();
        let alice = create_user(&mut s, &admin, "alice", Role::User, "$argon2id$".into(), at(0)).unwrap();
        let alice = Caller { id: alice.id, name: "alice".into(), role: Role::User };
        let app = crate::description::app_description::parse_application(&json!({
            "name": "spark", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [
                {"name": "worker", "docker_image": "w:1", "monitor": false, "total_count": 2, "essential_count": 1,
                 "startup_order": 1, "ports": [], "required_resources": {"memory": 10485760, "cores": 1.5},
                 "datasets": ["imagenet", "corpus"],
                 "environment": [["MASTER", "master-{execution_name}-{user_name}-{deployment_name}"], ["N", "{index}/{execution_id}"]]},
                {"name": "master", "docker_image": "m:1", "monitor": true, "total_count": 1, "essential_count": 1,
                 "startup_order": 0, "required_resources": {"memory": 20971520},
                 "ports": [{"name": "ui", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true,
                            "secret_header": "Authorization: token {secret}"},
                           {"name": "rpc", "protocol": "tcp", "port_number": 7077, "is_main_endpoint": false},
                           {"name": "dns", "protocol": "udp", "port_number": 5353, "is_main_endpoint": false, "expose": true}],
                 "command": "run --name '{execution_name} x' --literal {{braces}} --token={proxy_secret}"}
            ]
        }))
        .unwrap();
        let cfg = SchedulerConfig { default_cores: 0.5, ..SchedulerConfig::default() };
        let id = submit_execution(&mut s, &alice, "wc1", app, &cfg, None, at(1)).unwrap();
        crate::logic::transitions::give_secret(&mut s, id, "s3cr3t".into());
        assert_eq!(starts(&s, &cfg, None, at(1)), vec![id]);
        begin_start(&mut s, id, at(2)).unwrap();
        assert!(starts(&s, &cfg, None, at(2)).is_empty());
        let mut quotas = crate::protocol::Quotas { default: 1 << 30, ..Default::default() };
        quotas.by_role.insert(Role::User, 2 << 30);
        let settings = PlanSettings {
            workspace_base: PathBuf::from("/ws"),
            default_cores: 0.25,
            publish_ports: true,
            workspace_quotas: quotas,
            datasets: BTreeMap::from([
                ("corpus".to_string(), PathBuf::from("/srv/corpus")),
                ("imagenet".to_string(), PathBuf::from("/srv/imagenet")),
                ("unused".to_string(), PathBuf::from("/srv/unused")),
            ]),
        };
        let plan = start_plan(&s, id, &settings).unwrap();
        assert_eq!(plan.network, "alice-dev");
        let names: Vec<_> = plan.containers.iter().map(|c| (c.name.as_str(), c.startup_order)).collect();
        assert_eq!(names, [("master-wc1-alice-dev", 0), ("worker-0-wc1-alice-dev", 1), ("worker-1-wc1-alice-dev", 1)]);
        let m = &plan.containers[0];
        assert_eq!(m.cmd.as_deref().unwrap(), ["run", "--name", "wc1 x", "--literal", "{braces}", "--token=s3cr3t"]);
        assert_eq!(
            m.exposed_ports,
            [
                ExposedPort { port: 8080, transport: Transport::Tcp },
                ExposedPort { port: 5353, transport: Transport::Udp }
            ]
        );
        assert_eq!(m.memory, 20971520);
        assert_eq!(
            m.nano_cpus, 500_000_000,
            "no cores in the description: the scheduler's default, written into it at submission"
        );
        assert_eq!(m.uid, s.users[&alice.id].uid);
        assert!(m.uid >= 200_000);
        assert_eq!(m.env[0], "HOME=/mnt/workspace");
        assert_eq!(
            m.env[1..],
            ["ZOE_PROXY_PATH_8080=/", "ZOE_PROXY_PATH_5353=/", "ZOE_PROXY_SECRET=s3cr3t"],
            "each exposed port is at the root of its own host; the execution's secret"
        );
        assert_eq!(m.labels["zoe.monitor"], "true");
        assert_eq!(m.labels["zoe.service.name"], "master");
        assert_eq!(
            m.workspace,
            Some(Workspace {
                host: PathBuf::from("/ws/dev/alice"),
                container: "/mnt/workspace".into(),
                uid: m.uid,
                quota: 2 << 30
            }),
            "alice's role's quota"
        );
        let w1 = &plan.containers[2];
        assert_eq!(
            w1.env,
            ["HOME=/mnt/workspace", "MASTER=master-wc1-alice-dev", &format!("N=1/{id}"), "ZOE_PROXY_SECRET=s3cr3t"]
        );
        assert_eq!(w1.nano_cpus, 1_500_000_000);
        assert_eq!(
            w1.datasets,
            [
                DatasetMount { host: PathBuf::from("/srv/imagenet"), container: "/mnt/datasets/imagenet".into() },
                DatasetMount { host: PathBuf::from("/srv/corpus"), container: "/mnt/datasets/corpus".into() },
            ],
            "the data sets the service names, in its order, and no other"
        );
        assert!(m.datasets.is_empty());
        // A data set configured at the submission but not since: the start fails, naming it.
        let mut gone = settings.clone();
        gone.datasets.remove("corpus");
        let err = start_plan(&s, id, &gone).unwrap_err();
        assert!(err.contains("\"corpus\"") && err.contains("no longer configured"), "{err}");
        let unpublished = PlanSettings { publish_ports: false, ..settings };
        let plan = start_plan(&s, id, &unpublished).unwrap();
        assert!(plan.containers[0].exposed_ports.is_empty(), "reached through the proxy only");
        assert_eq!(plan.containers[0].env, m.env);
        assert_eq!(w1.labels["zoe.service.name"], "worker-1");
        assert_eq!(w1.labels["zoe.execution.id"], id.to_string());
        assert_eq!(w1.labels["zoe.service.id"], w1.service_id.to_string());
        assert_eq!(
            w1.labels.keys().collect::<Vec<_>>(),
            [
                "zoe.deployment_name",
                "zoe.execution.id",
                "zoe.execution.name",
                "zoe.monitor",
                "zoe.owner",
                "zoe.service.id",
                "zoe.service.name",
                "zoe.type"
            ]
        );
        assert_eq!(w1.cmd, None);
    }
}
