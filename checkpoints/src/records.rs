//! New records of a state, with the fields a new one always starts with: a user (its id and uid
//! given by the state) and a service (not yet created on a back end). In a file of their own to
//! keep `model.rs` to the types.

use std::sync::Arc;

use crate::model::{Role, Service, ServiceStatus, State, Timestamp, User};

impl State {
    /// Registers a new user with the next id and the next free uid, without tokens. The caller
    /// has checked the name (free, a DNS label) and that a uid is left.
    pub fn add_user(&mut self, name: &str, role: Role, password_hash: String, created_at: Timestamp) -> Arc<User> {
        let id = self.gen_id();
        let uid = self.gen_uid();
        let user =
            Arc::new(User { id, name: name.to_string(), role, uid, password_hash, created_at, tokens: Vec::new() });
        self.users.insert(id, user.clone());
        user
    }
}

impl Service {
    /// Instance `index` of the description's service `service_name`, in `status`, as it is before
    /// a back end has created it: no container, exit code, addresses, ports, node, retries or CPU
    /// counted.
    pub fn new(id: u64, name: String, service_name: &str, index: u32, is_monitor: bool, status: ServiceStatus) -> Self {
        Service {
            id,
            name,
            service_name: service_name.to_string(),
            index,
            is_monitor,
            status,
            docker_id: None,
            exit_code: None,
            oom_killed: false,
            ip_address: Default::default(),
            ports: Vec::new(),
            node: None,
            retries: 0,
            cpu_ns: 0,
        }
    }
}
