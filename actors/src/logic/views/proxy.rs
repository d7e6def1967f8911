//! Where the proxy forwards a request for an execution's web application.

use zoe_checkpoints::{ExecutionStatus, ServiceStatus};

use super::{instance_name, visible_execution};
use crate::description::naming;
use crate::error::{Code, ZoeError};
use crate::logic::access::{check_caller, Caller};
use crate::logic::reader::Published;

/// Where the proxy forwards a request for port `port` of instance `instance` of execution
/// `execution_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The owner's user id (connections are counted per owner).
    pub owner_id: u64,
    /// The service's id.
    pub service_id: u64,
    /// `host:port` to connect to: the container's address on one engine, the service's host
    /// name on a Swarm (where it is reached through the relay of `network`).
    pub address: String,
    /// The owner's network.
    pub network: String,
    /// A header to add to every forwarded request (name, value): the port's `secret_header`
    /// with the execution's secret.
    pub secret_header: Option<(String, String)>,
}

/// The target of a proxied request, if the caller may see the execution (else
/// `no_such_execution`, as for the execution itself), the instance has that exposed port
/// (`no_such_service`) and it runs (`Unavailable`, with what to wait for). The address is the
/// container's on the user's network (one engine), or its host name there (a Swarm, whose
/// overlay networks the master reaches through their relays).
pub fn proxy_target(
    p: &Published,
    caller: &Caller,
    execution_id: u64,
    instance: &str,
    port: u16,
) -> Result<ProxyTarget, ZoeError> {
    check_caller(&p.state, caller)?;
    // Only active executions have something to reach; an ended one is looked up only to answer
    // with the right error.
    let e = match p.state.executions.get(&execution_id) {
        Some(e) if caller.can_see(e.owner_id) => e.clone(),
        _ => visible_execution(p, caller, execution_id)?.load(p)?,
    };
    let no_port = || {
        ZoeError::new(
            Code::NoSuchService,
            format!("execution {execution_id} has no instance {instance:?} with an exposed port {port}"),
        )
    };
    let s = e.services.iter().find(|s| instance_name(&e, s) == instance).ok_or_else(no_port)?;
    if !s.ports.iter().any(|sp| sp.port_number == port && sp.expose) {
        return Err(no_port());
    }
    let not_ready = |what: &str| {
        ZoeError::new(
            Code::Unavailable,
            format!("{instance} of execution {execution_id} is {what}; try again when it runs"),
        )
    };
    if e.status != ExecutionStatus::Running || s.status != ServiceStatus::Running {
        let what = if e.status.is_final() { "no longer running" } else { "not running" };
        return Err(not_ready(what));
    }
    // On one engine the container's address; on a Swarm its host name (resolved by the relay).
    let ip = s.ip_address.values().find(|ip| !ip.is_empty()).ok_or_else(|| not_ready("without an address yet"))?;
    let address = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let network = naming::user_network_name(&e.owner, &p.state.deployment_name);
    let secret_header = match (&e.proxy_secret, e.description_of(s)) {
        (Some(secret), Some(d)) => {
            d.ports.iter().find(|p| p.port_number == port).and_then(|p| p.secret_header_with(secret))
        }
        _ => None,
    };
    Ok(ProxyTarget { owner_id: e.owner_id, service_id: s.id, address, network, secret_header })
}

/// The exposed ports of execution `execution_id` that `caller` may reach now, each as its
/// instance and port (in the order of the services and their ports): those of its running
/// services while it runs, none otherwise (or if the caller may not see it).
pub fn proxy_ports(p: &Published, caller: &Caller, execution_id: u64) -> Vec<(String, u16)> {
    let Some(e) = p.state.executions.get(&execution_id) else { return Vec::new() };
    if check_caller(&p.state, caller).is_err() || !caller.can_see(e.owner_id) || e.status != ExecutionStatus::Running {
        return Vec::new();
    }
    e.services
        .iter()
        .filter(|s| s.status == ServiceStatus::Running)
        .flat_map(|s| {
            let instance = instance_name(e, s);
            s.ports.iter().filter(|sp| sp.expose).map(move |sp| (instance.clone(), sp.port_number))
        })
        .collect()
}
