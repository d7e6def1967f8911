//! A service (one container of an execution) and its ports as the API shows them, and the reads
//! of services.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::{Execution, Service, ServicePort, ServiceStatus};

use super::visible_service;
use crate::description::naming;
use crate::error::ZoeError;
use crate::logic::access::{check_caller, Caller};
use crate::logic::reader::Published;

/// A service: one container of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Service)]
pub struct ServiceView {
    pub id: u64,
    /// The container name, which is also its host name.
    pub name: String,
    /// The name of the service in the description.
    pub service_name: String,
    pub docker_id: Option<String>,
    /// `{network: ip}`.
    pub ip_address: BTreeMap<String, String>,
    pub is_monitor: bool,
    pub ports: Vec<PortView>,
    pub owner: String,
    pub execution_id: u64,
    pub status: ServiceStatus,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The node it runs (or ran) on, on a Swarm.
    #[serde(default)]
    pub node: Option<String>,
    /// Whether the application needs this instance (`false`: an elastic instance, started as
    /// room allows, whose loss does not end the execution).
    #[serde(default = "yes")]
    pub essential: bool,
    /// How many times this elastic instance was started again after it died or could not start.
    #[serde(default)]
    pub retries: u32,
}

fn yes() -> bool {
    true
}

/// A port of a service: the description's port and where it was published (the port as the
/// checkpoint keeps it, its fields inline), and where the master's proxy serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PortView {
    #[serde(flatten)]
    pub port: ServicePort,
    /// For an exposed port: the path on the master that forwards to it (the owner and
    /// administrators only), `/proxy/<execution-id>/<instance>/<port>/` followed by the port's
    /// `path`.
    #[serde(default)]
    pub proxy_url: Option<String>,
}

impl PortView {
    fn of(p: &ServicePort, execution_id: u64, instance: &str) -> PortView {
        let proxy_url = p.expose.then(|| {
            format!("{}{}", naming::proxy_path(execution_id, instance, p.port_number), p.path.trim_start_matches('/'))
        });
        PortView { port: p.clone(), proxy_url }
    }
}

/// The instance name of a service of `e` (`<service>` or `<service>-<index>`).
pub fn instance_name(e: &Execution, s: &Service) -> String {
    let total = e.description_of(s).map_or(1, |d| d.total_count);
    naming::service_instance_name(&s.service_name, s.index, total)
}

/// The view of a service of an execution.
pub fn service_view(e: &Execution, s: &Service) -> ServiceView {
    ServiceView {
        id: s.id,
        name: s.name.clone(),
        service_name: s.service_name.clone(),
        docker_id: s.docker_id.clone(),
        ip_address: s.ip_address.clone(),
        is_monitor: s.is_monitor,
        ports: {
            let instance = instance_name(e, s);
            s.ports.iter().map(|p| PortView::of(p, e.id, &instance)).collect()
        },
        owner: e.owner.clone(),
        execution_id: e.id,
        status: s.status,
        exit_code: s.exit_code,
        oom_killed: s.oom_killed,
        node: s.node.clone(),
        essential: e.is_essential(s),
        retries: s.retries,
    }
}

/// `GET /service/<id>`.
pub fn get_service(p: &Published, caller: &Caller, id: u64) -> Result<ServiceView, ZoeError> {
    check_caller(&p.state, caller)?;
    visible_service(p, caller, id).map(|(e, i)| service_view(&e, &e.services[i]))
}

/// Where a service's log can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSource {
    pub service_id: u64,
    /// The container name.
    pub container: String,
    /// Whether the container may still exist (otherwise only the kept tail is left).
    pub live: bool,
}

/// `GET /service/<id>/logs`: where to read the log of a service the caller may see.
pub fn log_source(p: &Published, caller: &Caller, id: u64) -> Result<LogSource, ZoeError> {
    check_caller(&p.state, caller)?;
    let (e, i) = visible_service(p, caller, id)?;
    let s = &e.services[i];
    Ok(LogSource { service_id: s.id, container: s.name.clone(), live: !e.status.is_final() && s.docker_id.is_some() })
}
