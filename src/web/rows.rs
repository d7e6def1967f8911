//! The API's JSON views of executions, services and users, read back into typed rows that the
//! templates show: the pages show exactly what the API answers, in words for people.

use serde::Deserialize;
use serde_json::Value;

use super::page::{show_duration, show_time};

/// An execution, as `GET /execution/<id>` shows it.
#[derive(Debug, Deserialize)]
pub struct ExecutionRow {
    pub id: u64,
    pub name: String,
    pub owner: String,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    pub time_scheduled: String,
    #[serde(default)]
    pub time_started: Option<String>,
    #[serde(default)]
    pub time_finished: Option<String>,
    #[serde(default)]
    pub queue_position: Option<usize>,
    pub application: ApplicationName,
}

#[derive(Debug, Deserialize)]
pub struct ApplicationName {
    pub name: String,
}

/// Reads API views into rows; a view that does not fit is skipped (and logged), never a panic.
pub fn rows<T: serde::de::DeserializeOwned>(v: Value) -> Vec<T> {
    let list = match v {
        Value::Array(list) => list,
        other => vec![other],
    };
    list.into_iter()
        .filter_map(|v| {
            serde_json::from_value(v)
                .map_err(|e| tracing::error!("the web interface cannot read an API view: {e}"))
                .ok()
        })
        .collect()
}

impl ExecutionRow {
    pub fn is_active(&self) -> bool {
        !matches!(self.status.as_str(), "finished" | "terminated" | "error")
    }

    /// Whether the page should refresh itself: the status is about to change on its own.
    pub fn is_moving(&self) -> bool {
        matches!(self.status.as_str(), "scheduled" | "starting" | "cleaning up")
    }

    /// The CSS class of the status badge.
    pub fn status_class(&self) -> String {
        status_class(&self.status)
    }

    pub fn scheduled(&self) -> String {
        show_time(&self.time_scheduled)
    }

    pub fn started(&self) -> String {
        self.time_started.as_deref().map(show_time).unwrap_or_default()
    }

    pub fn finished(&self) -> String {
        self.time_finished.as_deref().map(show_time).unwrap_or_default()
    }

    /// How long it ran (or has been running).
    pub fn run_time(&self) -> String {
        match &self.time_started {
            Some(s) => show_duration(s, self.time_finished.as_deref()),
            None => String::new(),
        }
    }

    /// The error, if there is one worth showing.
    pub fn error_text(&self) -> String {
        self.error.clone().unwrap_or_default().trim().to_string()
    }

    /// The CSS class of the error text: only failures are shown as errors.
    pub fn error_class(&self) -> &'static str {
        if self.status == "error" {
            "error-text"
        } else {
            "note-text"
        }
    }

    /// The status in a sentence.
    pub fn status_text(&self) -> String {
        match self.status.as_str() {
            "scheduled" => match self.queue_position {
                Some(1) => "Waiting in the queue: it is next and starts when there is room for it.".into(),
                Some(n) => format!("Waiting in the queue, at position {n}: it starts when there is room for it."),
                None => "Waiting in the queue.".into(),
            },
            "starting" => "Its containers are being created.".into(),
            "running" => "Running: all its containers have started.".into(),
            "cleaning up" => "Its containers are being stopped and removed.".into(),
            "finished" => "It ended on its own: its monitor service exited.".into(),
            "terminated" => "It was terminated by its owner or an administrator.".into(),
            "error" => "It failed.".into(),
            other => format!("Status: {other}."),
        }
    }
}

/// One container of an execution, as `GET /service/<id>` shows it.
#[derive(Debug, Deserialize)]
pub struct ServiceRow {
    pub id: u64,
    /// The container (and host) name.
    pub name: String,
    pub service_name: String,
    pub is_monitor: bool,
    #[serde(default)]
    pub docker_id: Option<String>,
    pub status: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub ports: Vec<PortRow>,
}

#[derive(Debug, Deserialize)]
pub struct PortRow {
    pub name: String,
    pub protocol: String,
    pub port_number: u16,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub is_main_endpoint: bool,
    #[serde(default)]
    pub expose: bool,
    #[serde(default)]
    pub host_endpoint: Option<String>,
}

impl PortRow {
    /// The link to a published port, once it is published.
    pub fn url(&self) -> String {
        match &self.host_endpoint {
            Some(h) if self.expose => {
                let scheme = if self.protocol == "https" { "https" } else { "http" };
                format!("{scheme}://{h}{}", self.path)
            }
            _ => String::new(),
        }
    }
}

impl ServiceRow {
    pub fn status_class(&self) -> String {
        status_class(&self.status)
    }

    /// How it ended, in words (empty while it runs).
    pub fn outcome(&self) -> String {
        if self.oom_killed {
            return "killed: it used more than its memory limit".into();
        }
        match self.exit_code {
            Some(0) => "exited normally (code 0)".into(),
            Some(c) if c > 128 && c < 160 => format!("exited with code {c} (signal {})", c - 128),
            Some(c) => format!("exited with code {c}"),
            None => String::new(),
        }
    }
}

fn status_class(status: &str) -> String {
    format!("st-{}", status.replace(' ', "-"))
}

/// A user, as `GET /user/<name>` shows it.
#[derive(Debug, Deserialize)]
pub struct UserRow {
    pub id: u64,
    pub name: String,
    pub role: String,
    /// The uid the user's containers run as.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub created_at: String,
}

impl UserRow {
    pub fn created(&self) -> String {
        show_time(&self.created_at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_read_the_api_views_and_skip_what_does_not_fit() {
        let v = json!([
            {"id": 3, "name": "x", "owner": "alice", "status": "cleaning up", "error": null,
             "time_scheduled": "2025-11-25T09:00:00Z", "time_started": null, "time_finished": null,
             "application": {"name": "app"}, "services": [], "queue_position": null},
            {"id": "bad"}
        ]);
        let r: Vec<ExecutionRow> = rows(v);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status_class(), "st-cleaning-up");
        assert!(r[0].is_active() && r[0].is_moving());
    }

    #[test]
    fn services_say_how_they_ended_and_where_they_listen() {
        let s: ServiceRow = serde_json::from_value(json!({
            "id": 1, "name": "web-x-alice-dev", "service_name": "web", "is_monitor": false,
            "status": "exited", "exit_code": 137, "oom_killed": false,
            "ports": [{"name": "site", "protocol": "http", "port_number": 80, "path": "/a",
                       "is_main_endpoint": true, "expose": true, "host_endpoint": "127.0.0.1:3000"}]
        }))
        .unwrap();
        assert_eq!(s.outcome(), "exited with code 137 (signal 9)");
        assert_eq!(s.ports[0].url(), "http://127.0.0.1:3000/a");
    }
}
