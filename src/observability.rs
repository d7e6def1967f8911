//! What operators watch: `/healthz` (the process answers), `/readyz` (the state actor answers),
//! and `/metrics` in the Prometheus text format: API latency by endpoint and status, executions
//! by status, queue length, reserved and total resources, checkpoint writes, Docker trouble.
//! These three need no credentials and reveal no names. A caller who signs in to `/metrics`
//! (basic auth or an API token) also gets the usage series, which name users and executions:
//! an administrator everyone's, a user their own ([`zoe_actors::logic::views::usage_figures`]);
//! wrong credentials are refused, never taken for nobody's. And the master's log itself: text or
//! JSON lines on stderr, with the control characters of what they quote escaped.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use zoe_actors::state_actor::Ping;
use zoe_checkpoints::ExecutionStatus;

use crate::error::ApiError;
use crate::AppData;

/// The master's log: one line per event, as text or JSON, on `writer`, filtered by `filter`
/// (`ZOE_LOG`). Events quote what tenants wrote (errors of their executions' starts, names): in
/// text every control character of a message or field is escaped, so no event can move a
/// terminal's cursor, retitle it or begin a line of its own (`\r`, `\n`); in JSON, which
/// escapes most of them, the few it leaves raw (DEL and U+0080 to U+009F) are escaped too.
pub fn log_subscriber<W>(
    json: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::field::MakeExt;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        return Box::new(builder.with_writer(JsonSafe(writer)).json().finish());
    }
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = crate::escape::controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ");
    Box::new(builder.with_writer(writer).fmt_fields(fields).finish())
}

/// A log writer for JSON lines that escapes what `serde_json` leaves raw
/// ([`crate::escape::json_controls`]). Each event comes in one write.
struct JsonSafe<W>(W);

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for JsonSafe<W> {
    type Writer = JsonSafe<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonSafe(self.0.make_writer())
    }
}

impl<W: std::io::Write> std::io::Write for JsonSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(crate::escape::json_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The HTTP methods, as a label: anything else is `OTHER`, so made-up methods cannot grow the
/// label set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
enum MethodLabel {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    OTHER,
}

impl MethodLabel {
    fn of(method: &actix_web::http::Method) -> MethodLabel {
        match method.as_str() {
            "GET" => MethodLabel::GET,
            "HEAD" => MethodLabel::HEAD,
            "POST" => MethodLabel::POST,
            "PUT" => MethodLabel::PUT,
            "PATCH" => MethodLabel::PATCH,
            "DELETE" => MethodLabel::DELETE,
            "OPTIONS" => MethodLabel::OPTIONS,
            _ => MethodLabel::OTHER,
        }
    }
}

/// The labels of an API request: its route pattern (one of the routes the master registers, not
/// the raw path, so ids do not explode the set), its method and its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    endpoint: &'static str,
    method: MethodLabel,
    status: u16,
}

/// Route patterns seen, each kept once for the life of the process. They come from the routes
/// the master registers (a fixed set); past a generous bound anything new is `other`.
fn route_label(pattern: Option<String>) -> &'static str {
    const MAX_ROUTES: usize = 256;
    static SEEN: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let Some(pattern) = pattern else { return "unmatched" };
    let seen = SEEN.get_or_init(RwLock::default);
    if let Some(known) = seen.read().ok().and_then(|s| s.get(pattern.as_str()).copied()) {
        return known;
    }
    let Ok(mut seen) = seen.write() else { return "other" };
    if let Some(known) = seen.get(pattern.as_str()) {
        return known;
    }
    if seen.len() >= MAX_ROUTES {
        return "other";
    }
    let leaked: &'static str = Box::leak(pattern.into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// API latency, recorded by a middleware for every request; and the highest CPU total written
/// of each user.
pub struct ApiMetrics {
    registry: Registry,
    latency: Family<ApiLabels, Histogram>,
    /// `zoe_user_cpu_seconds_total` as last written, by name (one entry per user seen).
    user_cpu: std::sync::Mutex<std::collections::HashMap<String, f64>>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        let latency = Family::<ApiLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS.iter().copied()));
        let mut registry = Registry::default();
        registry.register("zoe_api_request_duration_seconds", "Time to answer API requests", latency.clone());
        ApiMetrics { registry, latency, user_cpu: Default::default() }
    }
}

impl ApiMetrics {
    /// Records one request: its route pattern, method and status, and how long it took.
    pub fn observe(&self, route: Option<String>, method: &actix_web::http::Method, status: u16, took: Duration) {
        let labels = ApiLabels { endpoint: route_label(route), method: MethodLabel::of(method), status };
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Users' CPU totals that never go back while the master runs: a total is summed in another
    /// order when an execution moves to the archive (and over its days there), which can differ
    /// in the last bits; a counter a hair lower would read to Prometheus as a reset (a spike in
    /// `rate()`), so the highest value written stands.
    fn monotonic_users(&self, users: Vec<(String, f64)>) -> Vec<(String, f64)> {
        let Ok(mut seen) = self.user_cpu.lock() else { return users };
        users
            .into_iter()
            .map(|(name, v)| {
                let high = seen.entry(name.clone()).or_insert(v);
                *high = high.max(v);
                (name, *high)
            })
            .collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum DockerErrorKind {
    unreachable,
    start_failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: DockerErrorKind,
}

/// A label value written as the exposition format wants it: `\\`, `\"` and `\n` escaped
/// (prometheus-client writes values as they are). Names are DNS labels Zoe validated, so this
/// changes nothing today; it keeps a line of `/metrics` from ever being forged by a name.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelText(String);

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The labels of a running execution's usage: its owner's name and its id, both as Zoe
/// validated them (a DNS label and a number).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    owner: LabelText,
    execution: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerLabel {
    owner: LabelText,
}

/// The usage series `figures` hold, in `r`.
fn register_usage(r: &mut Registry, figures: &zoe_actors::logic::views::UsageFigures) {
    type F64Counter = Counter<f64, std::sync::atomic::AtomicU64>;
    type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;
    let cpu = Family::<ExecutionLabels, F64Counter>::default();
    let memory = Family::<ExecutionLabels, Gauge>::default();
    let cores = Family::<ExecutionLabels, F64Gauge>::default();
    let reserved = Family::<ExecutionLabels, Gauge>::default();
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for e in &figures.executions {
        let labels = ExecutionLabels { owner: LabelText(e.owner.clone()), execution: LabelText(e.id.to_string()) };
        cpu.get_or_create(&labels).inc_by(e.cpu_seconds);
        memory.get_or_create(&labels).set(int(e.memory_bytes));
        cores.get_or_create(&labels).set(e.cores_reserved);
        reserved.get_or_create(&labels).set(int(e.memory_reserved));
    }
    let users = Family::<OwnerLabel, F64Counter>::default();
    for (owner, seconds) in &figures.users {
        users.get_or_create(&OwnerLabel { owner: LabelText(owner.clone()) }).inc_by(*seconds);
    }
    r.register("zoe_execution_cpu_seconds", "CPU time a running execution's containers used", cpu);
    r.register("zoe_execution_memory_bytes", "Memory a running execution's containers use", memory);
    r.register("zoe_execution_cores_reserved", "Cores a running execution reserves", cores);
    r.register("zoe_execution_memory_reserved_bytes", "Memory a running execution reserves", reserved);
    r.register("zoe_user_cpu_seconds", "CPU time a user's executions used, ended ones included", users);
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

/// The state actor answers and checkpoints can be written; says whether Docker is reachable and
/// how the state disk is.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`ready`, `docker: disabled|reachable|unreachable` and `state disk: ok|low`", content_type = "text/plain", body = String),
        (status = 503, description = "The state actor does not answer, or checkpoints cannot be written (`state disk: failing`)", content_type = "text/plain", body = String),
    ),
)]
async fn readyz(data: web::Data<AppData>) -> HttpResponse {
    let storage = &data.reader.storage;
    let disk = if storage.failing() {
        "failing: checkpoints cannot be written, changes are refused".to_string()
    } else if storage.low() {
        format!("low: {} bytes free, under state-min-free; changes are refused", storage.free())
    } else {
        "ok".to_string()
    };
    let answers = matches!(tokio::time::timeout(Duration::from_secs(2), data.state.send(Ping {})).await, Ok(Ok(())));
    if !answers {
        return HttpResponse::ServiceUnavailable().content_type("text/plain").body("the state actor does not answer\n");
    }
    let docker = if data.backend.is_none() {
        "disabled"
    } else if data.reader.now().platform.reachable {
        "reachable"
    } else {
        "unreachable"
    };
    let (mut response, ready) = if storage.failing() {
        (HttpResponse::ServiceUnavailable(), "not ready")
    } else {
        (HttpResponse::Ok(), "ready")
    };
    response.content_type("text/plain").body(format!("{ready}\ndocker: {docker}\nstate disk: {disk}\n"))
}

/// Prometheus text format: API latency by route, method and status, executions, queue,
/// reservations, Docker and checkpoint figures; with credentials, the usage of running
/// executions and users the caller may see.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text format 1.0.0", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "Wrong credentials (none are needed)", body = crate::error::ErrorBody),
    ),
)]
async fn metrics(data: web::Data<AppData>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let caller = match req.headers().contains_key(header::AUTHORIZATION) {
        true => Some(data.auth.authenticate(&data, &req).await?),
        false => None,
    };
    let mut out = String::new();
    let _ = encode_registry(&mut out, &data.metrics.registry);
    {
        let m = zoe_actors::logic::views::metrics(&data.reader.now(), &data.reader.scheduler);
        let mut r = Registry::default();
        let gauge = |r: &mut Registry, name: &str, help: &str, value: f64| {
            let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            g.set(value);
            r.register(name, help, g);
        };
        let int_gauge = |r: &mut Registry, name: &str, help: &str, value: u64| {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            r.register(name, help, g);
        };
        let counter = |r: &mut Registry, name: &str, help: &str, value: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            r.register(name, help, c);
        };
        let by_status = Family::<StatusLabel, Gauge>::default();
        for status in ExecutionStatus::ALL {
            let n = m.executions_by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            by_status.get_or_create(&StatusLabel { status: status.as_str() }).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        r.register("zoe_executions", "Executions by status", by_status);
        int_gauge(&mut r, "zoe_queue_length", "Executions waiting to start", m.queue_length as u64);
        int_gauge(&mut r, "zoe_memory_reserved_bytes", "Memory reserved by executions", m.memory_reserved);
        int_gauge(&mut r, "zoe_memory_total_bytes", "Memory the scheduler hands out", m.memory_total.unwrap_or(0));
        gauge(&mut r, "zoe_cores_reserved", "Cores reserved by executions", m.cores_reserved);
        gauge(&mut r, "zoe_cores_total", "Cores the scheduler hands out", m.cores_total.unwrap_or(0.0));
        int_gauge(
            &mut r,
            "zoe_docker_reachable",
            "1 when Docker answered at last contact",
            u64::from(m.docker_reachable),
        );
        counter(&mut r, "zoe_checkpoint_writes", "Checkpoints written", m.counters.checkpoints_written);
        let seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        seconds.inc_by(m.counters.checkpoint_seconds);
        r.register("zoe_checkpoint_write_seconds", "Time spent writing checkpoints", seconds);
        gauge(
            &mut r,
            "zoe_checkpoint_last_write_seconds",
            "Time the newest checkpoint took to write",
            m.counters.checkpoint_last_seconds,
        );
        counter(&mut r, "zoe_checkpoint_failures", "Checkpoint writes that failed", m.counters.checkpoint_failures);
        let storage = &data.reader.storage;
        int_gauge(
            &mut r,
            "zoe_checkpoint_failing",
            "1 while checkpoints cannot be written (changes are refused)",
            u64::from(storage.failing()),
        );
        if storage.free() != u64::MAX {
            int_gauge(&mut r, "zoe_state_disk_free_bytes", "Free bytes on the state disk", storage.free());
        }
        let docker_errors = Family::<KindLabel, Counter>::default();
        docker_errors
            .get_or_create(&KindLabel { kind: DockerErrorKind::unreachable })
            .inc_by(m.counters.docker_outages);
        docker_errors
            .get_or_create(&KindLabel { kind: DockerErrorKind::start_failed })
            .inc_by(m.counters.start_failures);
        r.register("zoe_docker_errors", "Docker outages and failed starts", docker_errors);
        let published = data.reader.now();
        let mut usage = zoe_actors::logic::views::usage_figures(
            &published,
            &data.reader.scheduler,
            caller.as_ref(),
            time::OffsetDateTime::now_utc(),
        );
        usage.users = data.metrics.monotonic_users(usage.users);
        register_usage(&mut r, &usage);
        let _ = encode_registry(&mut out, &r);
    }
    let _ = encode_eof(&mut out);
    Ok(HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(out))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use zoe_actors::logic::views::{ExecutionUsageFigures, UsageFigures};

    #[test]
    fn users_cpu_totals_never_go_back() {
        let m = super::ApiMetrics::default();
        let total = 0.1 + 0.2 + 0.3;
        assert_eq!(m.monotonic_users(vec![("alice".into(), total)]), vec![("alice".into(), total)]);
        // The same total summed in another order, a hair lower.
        let again = 0.3 + 0.2 + 0.1;
        assert!(again < total);
        assert_eq!(m.monotonic_users(vec![("alice".into(), again)]), vec![("alice".into(), total)]);
        assert_eq!(m.monotonic_users(vec![("alice".into(), 2.0), ("bob".into(), 1.0)]).len(), 2);
        assert_eq!(m.monotonic_users(vec![("alice".into(), 1.5)]), vec![("alice".into(), 2.0)]);
    }

    #[test]
    fn usage_series_escape_their_label_values() {
        let e = |owner: &str, id| ExecutionUsageFigures {
            owner: owner.into(),
            id,
            cpu_seconds: 1.5,
            memory_bytes: 1024,
            cores_reserved: 0.5,
            memory_reserved: 4096,
        };
        let figures = UsageFigures {
            executions: vec![e("alice", 7), e("x\"} 1\nzoe_forged 9\n\\", 8)],
            users: vec![("alice".into(), 3.0)],
        };
        let mut r = super::Registry::default();
        super::register_usage(&mut r, &figures);
        let mut out = String::new();
        super::encode_registry(&mut out, &r).unwrap();
        assert!(out.contains("zoe_execution_cpu_seconds_total{owner=\"alice\",execution=\"7\"} 1.5\n"), "{out}");
        assert!(out.contains("zoe_execution_memory_bytes{owner=\"alice\",execution=\"7\"} 1024\n"), "{out}");
        assert!(out.contains("zoe_execution_cores_reserved{owner=\"alice\",execution=\"7\"} 0.5\n"), "{out}");
        assert!(out.contains("zoe_user_cpu_seconds_total{owner=\"alice\"} 3.0\n"), "{out}");
        assert!(out.contains(r#"owner="x\"} 1\nzoe_forged 9\n\\",execution="8""#), "{out}");
        assert!(!out.lines().any(|l| l.starts_with("zoe_forged")), "{out}");
    }

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log line quoting a tenant's command.
    fn logged(json: bool) -> String {
        let out = Capture::default();
        let writer = out.clone();
        let sub = super::log_subscriber(json, tracing_subscriber::EnvFilter::new("info"), move || writer.clone());
        let spoof = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good\nINFO forged line \u{9b}2J";
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(command = spoof, "execution 3 failed to start: {spoof}");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn log_lines_escape_what_they_quote() {
        for json in [false, true] {
            let line = logged(json);
            assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
            assert!(line.ends_with('\n'));
            let raw = line.trim_end_matches('\n');
            let ansi_colour = |i: usize| {
                !json && raw[i..].starts_with("\u{1b}[") && raw[i + 2..].starts_with(|c: char| c.is_ascii_digit())
            };
            // Nothing but the formatter's own colours (in text on a terminal) is a control character.
            for (i, c) in raw.char_indices() {
                assert!(!c.is_control() || (c == '\u{1b}' && ansi_colour(i)), "{c:?} at {i} in {raw:?}");
            }
            assert!(!raw.contains('\r') && !raw.contains("\u{9b}"), "{raw:?}");
            assert!(raw.contains("PWNED") && raw.contains("forged line"), "{raw:?}");
        }
        assert!(logged(false).contains("failed to start: \\u{1b}]0;PWNED\\u{7}"), "{}", logged(false));
        let json: serde_json::Value = serde_json::from_str(&logged(true)).unwrap();
        assert!(json["fields"]["message"].as_str().unwrap().contains("\u{1b}]0;PWNED\u{7}"), "{json}");
    }
}
