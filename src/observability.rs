//! What operators watch: `/healthz` (the process answers), `/readyz` (the state actor answers),
//! and `/metrics` in the Prometheus text format: API latency by endpoint and status, executions
//! by status, queue length, reserved and total resources, checkpoint writes, Docker trouble.
//! These three need no credentials and reveal no names.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use zoe_actors::state_actor::MetricsSnapshot;

use crate::AppData;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// API latency, recorded by a middleware for every request.
#[derive(Default)]
pub struct ApiMetrics {
    by_route: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl ApiMetrics {
    /// Records one request: the route pattern (not the raw path, so ids do not explode the
    /// label set), its method and status, and how long it took.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        if let Ok(mut m) = self.by_route.lock() {
            let h = m.entry((route.to_string(), method.to_string(), status)).or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP zoe_api_request_duration_seconds Time to answer API requests.\n");
        out.push_str("# TYPE zoe_api_request_duration_seconds histogram\n");
        let Ok(m) = self.by_route.lock() else { return };
        for ((route, method, status), h) in m.iter() {
            let labels = format!("endpoint=\"{}\",method=\"{method}\",status=\"{status}\"", route.replace('"', "'"));
            for (le, c) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "zoe_api_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {c}");
            }
            let _ = writeln!(out, "zoe_api_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "zoe_api_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "zoe_api_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
    }
}

/// Registers `/healthz`, `/readyz` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)),
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// The state actor answers; says whether Docker is reachable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`ready` and `docker: disabled|reachable|unreachable`", content_type = "text/plain", body = String),
        (status = 503, description = "The state actor does not answer", content_type = "text/plain", body = String),
    ),
)]
async fn readyz(data: web::Data<AppData>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(2), data.state.send(MetricsSnapshot {})).await {
        Ok(Ok(m)) => HttpResponse::Ok().content_type("text/plain").body(format!(
            "ready\ndocker: {}\n",
            if data.docker.is_none() {
                "disabled"
            } else if m.docker_reachable {
                "reachable"
            } else {
                "unreachable"
            }
        )),
        _ => HttpResponse::ServiceUnavailable().content_type("text/plain").body("the state actor does not answer\n"),
    }
}

/// Prometheus text format: API latency by route, method and status, executions, queue,
/// reservations, Docker and checkpoint figures.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4", body = String)),
)]
async fn metrics(data: web::Data<AppData>) -> HttpResponse {
    let mut out = String::new();
    data.metrics.render(&mut out);
    if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), data.state.send(MetricsSnapshot {})).await {
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let _ = writeln!(out, "# HELP zoe_executions Executions by status.\n# TYPE zoe_executions gauge");
        for (status, n) in &m.executions_by_status {
            let _ = writeln!(out, "zoe_executions{{status=\"{status}\"}} {n}");
        }
        gauge(&mut out, "zoe_queue_length", "Executions waiting to start.", m.queue_length as f64);
        gauge(&mut out, "zoe_memory_reserved_bytes", "Memory reserved by executions.", m.memory_reserved as f64);
        gauge(&mut out, "zoe_memory_total_bytes", "Memory the scheduler hands out.", m.memory_total.unwrap_or(0) as f64);
        gauge(&mut out, "zoe_cores_reserved", "Cores reserved by executions.", m.cores_reserved);
        gauge(&mut out, "zoe_cores_total", "Cores the scheduler hands out.", m.cores_total.unwrap_or(0.0));
        gauge(&mut out, "zoe_docker_reachable", "1 when Docker answered at last contact.", f64::from(u8::from(m.docker_reachable)));
        let _ = writeln!(
            out,
            "# HELP zoe_checkpoint_writes_total Checkpoints written.\n# TYPE zoe_checkpoint_writes_total counter\nzoe_checkpoint_writes_total {}",
            m.checkpoints_written
        );
        let _ = writeln!(
            out,
            "# HELP zoe_checkpoint_write_seconds_total Time spent writing checkpoints.\n# TYPE zoe_checkpoint_write_seconds_total counter\nzoe_checkpoint_write_seconds_total {}",
            m.checkpoint_seconds
        );
        gauge(&mut out, "zoe_checkpoint_last_write_seconds", "Time the newest checkpoint took to write.", m.checkpoint_last_seconds);
        let _ = writeln!(
            out,
            "# HELP zoe_checkpoint_failures_total Checkpoint writes that failed.\n# TYPE zoe_checkpoint_failures_total counter\nzoe_checkpoint_failures_total {}",
            m.checkpoint_failures
        );
        let _ = writeln!(
            out,
            "# HELP zoe_docker_errors_total Docker outages and failed starts.\n# TYPE zoe_docker_errors_total counter\nzoe_docker_errors_total{{kind=\"unreachable\"}} {}\nzoe_docker_errors_total{{kind=\"start_failed\"}} {}",
            m.docker_outages, m.start_failures
        );
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
}
