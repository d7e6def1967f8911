//! The application description as the checkpoints keep it (format version 2): what a user
//! sends, read strictly by `zoe_actors::description::app_description`, and what the API shows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An application description, format version 2: what a user sends (read strictly by
/// `zoe_actors::description::app_description`: types must be right and unknown keys are
/// refused), what a checkpoint keeps, and what the API shows. Its OpenAPI schema is derived from
/// this type, so the document and the reader cannot disagree on a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Application {
    #[schema(max_length = 128, example = "hello")]
    pub name: String,
    /// Must be 2.
    #[schema(minimum = 2, maximum = 2, example = 2)]
    pub version: u32,
    pub will_end: bool,
    pub requires_binary: bool,
    /// 0 to 1024.
    #[schema(minimum = 0, maximum = 1024, example = 512)]
    pub priority: u32,
    /// 1 to 64 services, at least one a monitor, with unique names; at most 256 containers.
    #[schema(min_items = 1, max_items = 64)]
    pub services: Vec<ServiceDescription>,
}

/// One service of an application description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDescription {
    /// A lowercase DNS label, unique in the application.
    #[schema(example = "main", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(max_length = 255, example = "busybox:latest")]
    pub docker_image: String,
    /// When a monitor service ends, its execution ends.
    pub monitor: bool,
    #[schema(minimum = 1, maximum = 64, example = 1)]
    pub total_count: u32,
    /// 0 to `total_count`.
    #[schema(minimum = 0, maximum = 64, example = 1)]
    pub essential_count: u32,
    #[schema(minimum = 0, maximum = 1000, example = 0)]
    pub startup_order: u32,
    #[schema(max_items = 32)]
    pub ports: Vec<PortDescription>,
    pub required_resources: Resources,
    /// `[name, value]` pairs; values may use template variables.
    #[serde(default)]
    #[schema(max_items = 256, value_type = Vec<Vec<String>>)]
    pub environment: Vec<(String, String)>,
    /// A shell-style command line; may use the template variables `{execution_name}`,
    /// `{user_name}`, `{deployment_name}`, `{index}`, `{execution_id}`.
    #[schema(max_length = 4096, example = "sh -c 'echo hello from {execution_name}'")]
    pub command: Option<String>,
    /// Host paths to mount: refused in descriptions unless empty.
    #[serde(default)]
    #[schema(max_items = 0)]
    pub volumes: Vec<Volume>,
    /// Extra Docker networks to join: refused in descriptions unless empty.
    #[serde(default)]
    #[schema(max_items = 0)]
    pub networks: Vec<String>,
    /// Names of data sets the administrator configured (`dataset` setting), each mounted
    /// read-only at `/mnt/datasets/<name>`: distinct lowercase DNS labels, at most 16. Written
    /// only when there are some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16, example = json!(["imagenet"]))]
    pub datasets: Vec<String>,
}

impl ServiceDescription {
    /// Whether instance `index` of this service is essential: the application needs it to make
    /// progress (every instance of a monitor service, and the first `essential_count` of the
    /// others). The others are elastic: they only make it faster, start as room allows, and their
    /// loss does not end the execution.
    pub fn is_essential(&self, index: u32) -> bool {
        self.monitor || index < self.essential_count
    }
}

/// What a service needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes, 6 MiB to 1 TiB.
    #[schema(minimum = 6291456, maximum = 1099511627776_u64, example = 67108864)]
    pub memory: u64,
    /// CPU limit and reservation, in cores (0.01 to 256); a description without them gets the
    /// master's `default-cores` written in at submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.01, maximum = 256)]
    pub cores: Option<f64>,
}

/// A port of a service description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortDescription {
    #[schema(max_length = 128, example = "http")]
    pub name: String,
    /// A lowercase URL scheme.
    #[schema(max_length = 16, example = "http")]
    pub protocol: String,
    #[schema(minimum = 1, maximum = 65535, example = 8080)]
    pub port_number: u16,
    /// Empty or starting with '/'; empty when absent.
    #[serde(default)]
    #[schema(max_length = 1024, example = "/")]
    pub path: String,
    pub is_main_endpoint: bool,
    /// Serve the port through the master's proxy, on a host name of its own (and publish it on
    /// the host with `publish-ports`); false when absent.
    #[serde(default)]
    pub expose: bool,
    /// A header the proxy adds to every request it forwards to this (exposed) port, written
    /// `Name: value` with `{secret}` standing for the execution's secret, e.g.
    /// `Authorization: token {secret}` for Jupyter. Written only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256, example = "Authorization: token {secret}")]
    pub secret_header: Option<String>,
}

impl PortDescription {
    /// The header to add to a forwarded request, name and value, with `secret` put in.
    pub fn secret_header_with(&self, secret: &str) -> Option<(String, String)> {
        let (name, value) = self.secret_header.as_deref()?.split_once(':')?;
        Some((name.trim().to_string(), value.trim().replace("{secret}", secret)))
    }
}

impl Application {
    /// Whether an execution of this application needs a secret: a port adds it to requests, or
    /// a template uses `{proxy_secret}`.
    pub fn needs_secret(&self, uses_secret: impl Fn(&str) -> bool) -> bool {
        self.services.iter().any(|s| {
            s.ports.iter().any(|p| p.secret_header.is_some())
                || s.environment.iter().any(|(_, v)| uses_secret(v))
                || s.command.as_deref().is_some_and(&uses_secret)
        })
    }
}

/// A host path mounted into a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub host_path: String,
    pub container_path: String,
    pub readonly: bool,
}
