//! Test helpers: an exhaustive, redacted text form of the whole [`State`] for insta snapshots,
//! and a fixed clock. Every field is destructured without `..`, so adding a field to the model
//! does not compile until someone decides how it appears here.

use std::fmt::Write;

use time::OffsetDateTime;
use zoe_checkpoints::{
    Application, Change, Execution, PortDescription, Resources, Service, ServiceDescription, ServicePort, State, User,
};

/// A fresh, empty folder for one test: `<temp>/zoe-<tag>-<pid>`, emptied first.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zoe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A state of deployment `dev` as a master first makes it: `zoeadmin` (id 0, uid 200000), the
/// next id 1 and the next uid 200001.
pub fn admin_state() -> State {
    let mut s = State::new("dev");
    s.next_id = 1;
    s.next_uid = 200_001;
    s.users.insert(
        0,
        std::sync::Arc::new(User {
            id: 0,
            name: "zoeadmin".into(),
            role: zoe_checkpoints::Role::Admin,
            uid: 200_000,
            password_hash: "$argon2id$".into(),
            created_at: at(0),
            tokens: Vec::new(),
        }),
    );
    s
}

/// `zoeadmin` as a caller.
pub fn admin() -> crate::logic::access::Caller {
    crate::logic::access::Caller { id: 0, name: "zoeadmin".into(), role: zoe_checkpoints::Role::Admin }
}

/// A fixed instant plus `secs` seconds.
pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000 + secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn t(x: &OffsetDateTime) -> String {
    format!("t+{}", (x.unix_timestamp() - 1_795_000_000))
}

fn ot(x: &Option<OffsetDateTime>) -> String {
    x.as_ref().map(t).unwrap_or_else(|| "-".into())
}

/// The whole state as text: stable, readable, with hashes and container ids redacted and times
/// relative to [`at`]`(0)`.
pub fn describe(state: &State) -> String {
    let State { format_version, deployment_name, next_id, next_uid, archived_segments, changes, users, executions } =
        state;
    let mut o = String::new();
    let _ =
        writeln!(o, "format {format_version}, deployment {deployment_name}, next_id {next_id}, next_uid {next_uid}");
    if *archived_segments > 0 {
        let _ = writeln!(o, "archived segments 1 to {archived_segments}");
    }
    for Change { by, action, ids } in changes {
        let _ = writeln!(o, "change by {by}: {} {ids:?}", action.as_str());
    }
    for u in users.values() {
        let User { id, name, role, uid, password_hash, created_at, tokens } = u.as_ref();
        let hash = if password_hash.starts_with("$argon2") { "[argon2]" } else { "[not argon2!]" };
        let _ = writeln!(o, "user {id} {name} {} uid {uid} {hash} created {}", role.as_str(), t(created_at));
        for zoe_checkpoints::Token { name, hash, created_at, expires_at, last_used } in tokens {
            let hash = if zoe_checkpoints::is_token_hash(hash) { "[hash]" } else { "[not a hash!]" };
            let used = last_used.as_ref().map(t).unwrap_or_else(|| "never".into());
            let _ =
                writeln!(o, "  token {name} {hash} created {} expires {} used {used}", t(created_at), t(expires_at));
        }
    }
    for e in executions.values() {
        let Execution {
            id,
            name,
            owner,
            owner_id,
            status,
            error,
            ending,
            time_scheduled,
            time_started,
            time_finished,
            application,
            services,
            proxy_secret,
        } = e.as_ref();
        let _ = writeln!(
            o,
            "execution {id} {name} of {owner}({owner_id}) {} ending={} error={error:?} scheduled {} started {} finished {}",
            status.as_str(),
            ending.map(|s| s.as_str()).unwrap_or("-"),
            t(time_scheduled),
            ot(time_started),
            ot(time_finished)
        );
        if proxy_secret.is_some() {
            let _ = writeln!(o, "  secret [set]");
        }
        let Application { name, version, will_end, requires_binary, priority, services: descs } = application;
        let _ = writeln!(
            o,
            "  app {name:?} v{version} will_end={will_end} requires_binary={requires_binary} priority={priority}"
        );
        for d in descs {
            let ServiceDescription {
                name,
                docker_image,
                monitor,
                total_count,
                essential_count,
                startup_order,
                ports,
                required_resources,
                environment,
                command,
                volumes,
                networks,
                datasets,
            } = d;
            let Resources { memory, cores } = required_resources;
            // Shown only when named, as checkpoints write them.
            let datasets = if datasets.is_empty() { String::new() } else { format!(" datasets={datasets:?}") };
            let _ = writeln!(
                o,
                "  - {name} image={docker_image} monitor={monitor} count={total_count}/{essential_count} order={startup_order} mem={memory} cores={cores:?} env={environment:?} cmd={command:?} volumes={} networks={networks:?}{datasets}",
                volumes.len()
            );
            for p in ports {
                let PortDescription { name, protocol, port_number, path, is_main_endpoint, expose, secret_header } = p;
                let secret = secret_header.as_ref().map(|h| format!(" secret_header={h:?}")).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "    port {name:?} {protocol}:{port_number}{path} main={is_main_endpoint} expose={expose}{secret}"
                );
            }
        }
        for s in services {
            let Service {
                id,
                name,
                service_name,
                index,
                is_monitor,
                status,
                docker_id,
                exit_code,
                oom_killed,
                ip_address,
                ports,
                node,
                retries,
            } = s;
            let _ = writeln!(
                o,
                "  service {id} {name} ({service_name}#{index}) monitor={is_monitor} {} docker={} exit={exit_code:?} oom={oom_killed} ip={ip_address:?}{}{}",
                status.as_str(),
                if docker_id.is_some() { "[id]" } else { "-" },
                node.as_ref().map(|n| format!(" node={n}")).unwrap_or_default(),
                if *retries > 0 { format!(" retries={retries}") } else { String::new() }
            );
            for p in ports {
                let ServicePort { name, protocol, port_number, path, is_main_endpoint, expose, host_endpoint } = p;
                let _ = writeln!(
                    o,
                    "    port {name:?} {protocol}:{port_number}{path} main={is_main_endpoint} expose={expose} at={host_endpoint:?}"
                );
            }
        }
    }
    o
}

/// The containers a back end reports for the services of `e` that `which` picks, as if each had
/// started (docker id `d<service id>`).
pub fn containers_of(e: &Execution, which: impl Fn(&Service) -> bool) -> Vec<crate::protocol::StartedContainer> {
    e.services
        .iter()
        .filter(|s| which(s))
        .map(|s| crate::protocol::StartedContainer {
            service_id: s.id,
            docker_id: format!("d{}", s.id),
            ip_address: Default::default(),
            host_endpoints: Default::default(),
            node: None,
        })
        .collect()
}

/// insta settings that put every snapshot in the workspace's top-level `snapshots/`.
pub fn insta_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s
}

/// The executions a round of the scheduler ([`crate::logic::scheduler::round`]) starts.
pub fn starts(
    state: &zoe_checkpoints::State,
    config: &crate::logic::scheduler::SchedulerConfig,
    nodes: Option<&[crate::logic::placement::Node]>,
    now: zoe_checkpoints::Timestamp,
) -> Vec<u64> {
    crate::logic::scheduler::round(state, config, nodes, now).start.into_iter().map(|s| s.id).collect()
}

/// A platform of one ready engine: the platform's and its version's names, the node's id and
/// name, its memory and cores.
pub fn one_engine(
    (name, version): (&str, &str),
    (id, node): (&str, &str),
    memory: u64,
    cpus: u32,
) -> crate::protocol::PlatformInfo {
    crate::protocol::PlatformInfo {
        name: name.into(),
        server_version: version.into(),
        memory_total: memory,
        cpus,
        containers: 0,
        containers_running: 0,
        images: 0,
        nodes: vec![crate::protocol::NodeInfo {
            id: id.into(),
            name: node.into(),
            address: "local".into(),
            ready: true,
            status: "ready".into(),
            role: "engine".into(),
            cpus,
            memory,
            labels: Default::default(),
            containers: 0,
        }],
    }
}
