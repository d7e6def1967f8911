//! The API's typed views of executions, services and users, with what the templates need to
//! show them in words for people. A row holds its view (and derefs to it): the pages show
//! exactly what the API answers.

use std::ops::Deref;

use zoe_actors::backend::workspace::WorkspaceUse;
use zoe_actors::logic::views::{ExecutionView, PortView, ServiceView, UserView};
use zoe_checkpoints::{ExecutionStatus, ServiceStatus, Timestamp};

/// A view as a page shows it: a newtype over the view, that reads as the view.
macro_rules! row {
    ($(#[$doc:meta])* $row:ident($view:ty)) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $row(pub $view);

        impl Deref for $row {
            type Target = $view;
            fn deref(&self) -> &$view {
                &self.0
            }
        }
    };
}

/// A time for people: `2025-11-25 09:07:03` (UTC).
pub fn show_time(t: &Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// The time between two instants (to now when `to` is `None`), as `1 h 02 min`.
pub fn show_duration(from: &Timestamp, to: Option<&Timestamp>) -> String {
    let to = to.copied().unwrap_or_else(time::OffsetDateTime::now_utc);
    duration_words((to - *from).whole_seconds().max(0) as u64)
}

/// A number of seconds in words: `42 s`, `3 min 05 s`, `2 h 10 min`, `1 d 3 h`.
pub fn duration_words(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        s if s < 86400 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

row!(
    /// An execution, as `GET /execution/<id>` shows it.
    ExecutionRow(ExecutionView)
);

impl ExecutionRow {
    fn status(&self) -> ExecutionStatus {
        self.0.status.0
    }

    /// The status as the API writes it.
    pub fn status_word(&self) -> &'static str {
        self.status().as_str()
    }

    pub fn is_active(&self) -> bool {
        self.status().is_active()
    }

    /// Whether it ended in `error`.
    pub fn failed(&self) -> bool {
        self.status() == ExecutionStatus::Error
    }

    /// Whether the page should refresh itself: the status is about to change on its own.
    pub fn is_moving(&self) -> bool {
        matches!(self.status(), ExecutionStatus::Scheduled | ExecutionStatus::Starting | ExecutionStatus::CleaningUp)
    }

    /// The CSS class of the status badge.
    pub fn status_class(&self) -> String {
        status_class(self.status_word())
    }

    pub fn scheduled(&self) -> String {
        show_time(&self.time_scheduled)
    }

    pub fn started(&self) -> String {
        self.time_started.as_ref().map(show_time).unwrap_or_default()
    }

    pub fn finished(&self) -> String {
        self.time_finished.as_ref().map(show_time).unwrap_or_default()
    }

    /// How long it ran (or has been running).
    pub fn run_time(&self) -> String {
        self.time_started.as_ref().map(|s| show_duration(s, self.time_finished.as_ref())).unwrap_or_default()
    }

    /// The error, if there is one worth showing.
    pub fn error_text(&self) -> String {
        self.error.clone().unwrap_or_default().trim().to_string()
    }

    /// The CSS class of the error text: only failures are shown as errors.
    pub fn error_class(&self) -> &'static str {
        if self.failed() {
            "error-text"
        } else {
            "note-text"
        }
    }

    /// Its essential and elastic instances in words, e.g. `1 running` and `2 running, 1
    /// waiting for room` (empty when it has none of that kind).
    pub fn instances_text(&self, essential: bool) -> String {
        let c = if essential { self.instances.essential } else { self.instances.elastic };
        let mut parts = Vec::new();
        if c.running > 0 {
            parts.push(format!("{} running", c.running));
        }
        if c.starting > 0 {
            parts.push(format!("{} starting", c.starting));
        }
        if c.waiting > 0 {
            let why = if self.status() == ExecutionStatus::Scheduled { "in the queue" } else { "waiting for room" };
            parts.push(format!("{} {why}", c.waiting));
        }
        parts.join(", ")
    }

    /// The status in a sentence.
    pub fn status_text(&self) -> String {
        match self.status() {
            ExecutionStatus::Scheduled => match self.queue_position {
                Some(1) => "Waiting in the queue: it is next and starts when there is room for it.".into(),
                Some(n) => format!("Waiting in the queue, at position {n}: it starts when there is room for it."),
                None => "Waiting in the queue.".into(),
            },
            ExecutionStatus::Starting => "Its containers are being created.".into(),
            ExecutionStatus::Running if self.instances.elastic.waiting + self.instances.elastic.starting > 0 => {
                "Running on what fits: elastic instances start as room frees.".into()
            }
            ExecutionStatus::Running => "Running: all its containers have started.".into(),
            ExecutionStatus::CleaningUp => "Its containers are being stopped and removed.".into(),
            ExecutionStatus::Finished => "It ended on its own: its monitor service exited.".into(),
            ExecutionStatus::Terminated => "It was terminated by its owner or an administrator.".into(),
            ExecutionStatus::Error => "It failed.".into(),
        }
    }
}

row!(
    /// One container of an execution, as `GET /service/<id>` shows it.
    ServiceRow(ServiceView)
);

/// A port of a service, and whether its service runs.
#[derive(Debug)]
pub struct PortRow<'a>(pub &'a PortView, pub bool);

impl Deref for PortRow<'_> {
    type Target = PortView;
    fn deref(&self) -> &PortView {
        self.0
    }
}

impl PortRow<'_> {
    /// The link to an exposed port through the master's proxy, while its service runs.
    pub fn url(&self) -> String {
        match &self.proxy_url {
            Some(u) if self.1 => u.clone(),
            _ => String::new(),
        }
    }

    /// Where it was published on a host, if it was (for clients that reach the host).
    pub fn published(&self) -> String {
        match &self.port.host_endpoint {
            Some(h) if self.1 => h.clone(),
            _ => String::new(),
        }
    }
}

impl ServiceRow {
    /// The status as the API writes it.
    pub fn status_word(&self) -> &'static str {
        self.status.as_str()
    }

    pub fn status_class(&self) -> String {
        status_class(self.status_word())
    }

    pub fn port_rows(&self) -> Vec<PortRow<'_>> {
        let running = self.status == ServiceStatus::Running;
        self.ports.iter().map(|p| PortRow(p, running)).collect()
    }

    /// How it ended, in words (empty while it runs), and how often it was started again.
    pub fn outcome(&self) -> String {
        let ended = if self.oom_killed {
            "killed: it used more than its memory limit".into()
        } else if self.status == ServiceStatus::Waiting {
            "waiting for room: it starts when there is some".into()
        } else {
            match self.exit_code {
                Some(0) => "exited normally (code 0)".into(),
                Some(c) if c > 128 && c < 160 => format!("exited with code {c} (signal {})", c - 128),
                Some(c) => format!("exited with code {c}"),
                None => String::new(),
            }
        };
        match self.retries {
            0 => ended,
            n if ended.is_empty() => format!("started again {n} time(s)"),
            n => format!("{ended}; started again {n} time(s)"),
        }
    }
}

fn status_class(status: &str) -> String {
    format!("st-{}", status.replace(' ', "-"))
}

row!(
    /// A user, as `GET /user/<name>` shows it.
    UserRow(UserView)
);

impl UserRow {
    pub fn created(&self) -> String {
        show_time(&self.created_at)
    }

    pub fn role_word(&self) -> &'static str {
        self.role.as_str()
    }

    /// The workspace's use of its quota, in words (empty when not measured).
    pub fn workspace_text(&self) -> String {
        self.workspace.as_ref().map(WorkspaceUse::describe).unwrap_or_default()
    }

    /// Whether the workspace holds more than its quota.
    pub fn over_quota(&self) -> bool {
        self.workspace.is_some_and(|w| w.over_quota())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use zoe_actors::logic::views::Status;
    use zoe_checkpoints::{ServicePort, ServiceStatus};

    fn at(secs: i64) -> Timestamp {
        time::OffsetDateTime::from_unix_timestamp(1_795_000_000 + secs).unwrap()
    }

    #[test]
    fn times_and_durations_read_for_people() {
        assert_eq!(show_time(&at(0)), "2026-11-18 11:06:40");
        assert_eq!(show_duration(&at(0), Some(&at(59))), "59 s");
        assert_eq!(show_duration(&at(0), Some(&at(3723))), "1 h 02 min");
    }

    #[test]
    fn services_say_how_they_ended_and_where_they_listen() {
        let s = ServiceRow(ServiceView {
            id: 1,
            name: "web-x-alice-dev".into(),
            service_name: "web".into(),
            docker_id: None,
            ip_address: BTreeMap::new(),
            is_monitor: false,
            ports: vec![PortView {
                port: ServicePort {
                    name: "site".into(),
                    protocol: "http".into(),
                    port_number: 80,
                    path: "/a".into(),
                    is_main_endpoint: true,
                    expose: true,
                    host_endpoint: Some("127.0.0.1:3000".into()),
                },
                proxy_url: Some("/proxy/3/web/80/a".into()),
            }],
            owner: "alice".into(),
            execution_id: 3,
            status: ServiceStatus::Exited,
            exit_code: Some(137),
            oom_killed: false,
            node: None,
            essential: false,
            retries: 1,
        });
        assert_eq!(s.outcome(), "exited with code 137 (signal 9); started again 1 time(s)");
        assert_eq!(s.port_rows()[0].url(), "", "no link once it has ended");
        let mut running = s;
        running.0.status = ServiceStatus::Running;
        running.0.exit_code = None;
        assert_eq!(running.port_rows()[0].url(), "/proxy/3/web/80/a");
        assert_eq!(running.port_rows()[0].published(), "127.0.0.1:3000");
    }

    #[test]
    fn executions_say_where_they_stand() {
        let app = zoe_actors::description::app_description::parse_application(&serde_json::json!({
            "name": "a", "version": 2, "will_end": true, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1,
                          "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": {"memory": 8388608}}]
        }))
        .unwrap();
        let mut e = ExecutionRow(ExecutionView {
            id: 3,
            name: "x".into(),
            owner: "alice".into(),
            status: Status(ExecutionStatus::CleaningUp),
            error: None,
            time_scheduled: at(0),
            time_started: Some(at(10)),
            time_finished: Some(at(70)),
            application: app,
            services: vec![],
            queue_position: None,
            instances: Default::default(),
            usage: Default::default(),
        });
        assert_eq!(e.status_class(), "st-cleaning-up");
        assert!(e.is_active() && e.is_moving() && !e.failed());
        assert_eq!(e.run_time(), "1 min 00 s");
        e.0.status = Status(ExecutionStatus::Scheduled);
        e.0.queue_position = Some(1);
        assert!(e.status_text().contains("it is next"), "{}", e.status_text());
        e.0.instances.essential.waiting = 1;
        e.0.instances.elastic.waiting = 3;
        assert_eq!(
            (e.instances_text(true), e.instances_text(false)),
            ("1 in the queue".into(), "3 in the queue".into())
        );
        e.0.status = Status(ExecutionStatus::Running);
        e.0.instances.essential = zoe_actors::logic::views::InstanceCounts { running: 1, starting: 0, waiting: 0 };
        e.0.instances.elastic = zoe_actors::logic::views::InstanceCounts { running: 1, starting: 1, waiting: 1 };
        assert_eq!(e.instances_text(false), "1 running, 1 starting, 1 waiting for room");
        assert!(e.status_text().contains("as room frees"), "{}", e.status_text());
    }
}
