//! One function per client subcommand: the requests it sends (those of 0.9.7's client, plus
//! the new commands') and what it prints. Each returns the text for stdout; progress and errors
//! go to stderr.
//!
//! Whatever comes from the server may hold what a tenant wrote, so nothing of it reaches the
//! terminal raw: every string is shown with its control characters escaped ([`show`], the
//! tables and fields of [`super::output`]), JSON is printed with the few control characters
//! `serde_json` leaves raw escaped too, logs are escaped as they stream (unless `--raw`), and
//! [`print`] escapes whatever else might have slipped through.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use zoe_actors::description::app_description::parse_application;
use zoe_actors::logic::views::{
    ExecutionView, InstanceCounts, PlatformStats, QueryWhat, SchedulerStats, ServiceView, Stats, Status, UserView,
};
use zoe_actors::ZoeError;
use zoe_checkpoints::ExecutionStatus;

use super::client::{CliError, Client};
use super::output::{bytes, endpoints, fields, long_time, number, or_dash, short_time, show, table};
use super::{ClientCommand, Options};
use crate::percent::encode;

/// Pause between two looks at an execution in `start --wait`.
const POLL: Duration = Duration::from_millis(500);

/// Runs one client command and prints what it has to say.
pub fn run(options: &Options, command: ClientCommand) -> Result<(), CliError> {
    let json = options.json;
    // Made when needed: app-validate runs without a server.
    let client = || options.connection().and_then(Client::new);
    let out = match command {
        ClientCommand::Stats => stats(&client()?, json)?,
        ClientCommand::UserNew { name, password, role } => user_new(&client()?, json, &name, password, &role)?,
        ClientCommand::UserGet { name } => user_get(&client()?, json, &name)?,
        ClientCommand::UserSet { name, role, password } => user_set(&client()?, json, &name, role, password)?,
        ClientCommand::UserRm { name } => user_rm(&client()?, json, &name)?,
        ClientCommand::UserLs => user_ls(&client()?, json)?,
        ClientCommand::Login { name, days } => login(options, name, days)?,
        ClientCommand::Logout => logout(options)?,
        ClientCommand::AppValidate { jsonfile } => app_validate(&jsonfile, json)?,
        ClientCommand::Start { name, jsonfile, wait, timeout } => {
            start(&client()?, json, &name, &jsonfile, wait.then_some(timeout))?
        }
        ClientCommand::ExecLs { status, active, all: _, name, owner, since, limit, before } => {
            let statuses = if active {
                ["scheduled", "starting", "running", "cleaning up"].map(String::from).to_vec()
            } else {
                status
            };
            let mut query: Vec<(&str, String)> = Vec::new();
            if !statuses.is_empty() {
                query.push(("status", statuses.join(",")));
            }
            query.extend(name.map(|v| ("name", v)));
            query.extend(owner.map(|v| ("owner", v)));
            query.extend(since.map(|v| ("since", v)));
            query.extend(limit.map(|v| ("limit", v.to_string())));
            query.extend(before.map(|v| ("before", v.to_string())));
            exec_ls(&client()?, json, &query, limit)?
        }
        ClientCommand::ExecGet { id } => exec_get(&client()?, json, id)?,
        ClientCommand::ExecAppGet { name } => exec_app_get(&client()?, &name)?,
        ClientCommand::Terminate { id } => terminate(&client()?, json, id)?,
        ClientCommand::Logs { service_id, follow, tail, raw } => logs(&client()?, service_id, follow, tail, raw)?,
        ClientCommand::Ws(args) => super::workspace::run(&client()?, json, args)?,
    };
    print(&out)
}

/// Writes to stdout, control characters other than newlines and tabs escaped; a closed stdout
/// (`| head`) is not an error.
fn print(text: &str) -> Result<(), CliError> {
    let text = crate::escape::controls_but_lines(text);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Failed(format!("cannot write to stdout: {e}"))),
    }
}

/// JSON, pretty, with every control character in its strings escaped.
fn pretty<T: Serialize + ?Sized>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map(|s| crate::escape::json_controls(&s).into_owned() + "\n")
        .map_err(|e| CliError::Failed(format!("cannot print JSON: {e}")))
}

/// A list as pretty JSON, or as a table of `headers` with a row of each item.
fn listing<T: Serialize>(
    items: &[T],
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<String, CliError> {
    if json {
        return pretty(items);
    }
    Ok(table(headers, &items.iter().map(row).collect::<Vec<_>>()))
}

/// Instance counts in words: `2 running, 0 starting, 1 waiting`.
fn instance_counts(c: &InstanceCounts) -> String {
    format!("{} running, {} starting, {} waiting", c.running, c.starting, c.waiting)
}

/// `stats`: `POST /query` for `stats_swarm` (as 0.9.7) and `stats_scheduler`.
fn stats(c: &Client, json: bool) -> Result<String, CliError> {
    let swarm: Stats<PlatformStats> = Client::typed(c.query(QueryWhat::StatsSwarm, json!({}))?)?;
    let scheduler: Stats<SchedulerStats> = Client::typed(c.query(QueryWhat::StatsScheduler, json!({}))?)?;
    if json {
        return pretty(&json!({"stats_swarm": swarm, "stats_scheduler": scheduler}));
    }
    let s = &scheduler.stats;
    let waiting_names =
        if s.waiting_list.is_empty() { String::new() } else { format!(" ({})", s.waiting_list.join(", ")) };
    let sched = [
        ("policy", format!("{}, {}", s.policy.as_str(), if s.elastic { "elastic" } else { "rigid" })),
        ("waiting", format!("{}{waiting_names}", s.count_waiting)),
        ("starting", s.count_starting.to_string()),
        ("running", s.count_running.to_string()),
        ("cleaning up", s.count_cleaning_up.to_string()),
        ("memory", reserved(bytes(Some(s.memory_reserved)), s.memory_total.map(|m| bytes(Some(m))))),
        ("cores", reserved(number(Some(s.cores_reserved)), s.cores_total.map(|c| number(Some(c))))),
        ("essential", instance_counts(&s.instances.essential)),
        ("elastic", instance_counts(&s.instances.elastic)),
    ];
    let mut out = String::from("Scheduler\n");
    out += &fields(2, &sched);

    let p = &swarm.stats;
    let mut platform = vec![
        ("placement", or_dash(p.placement_strategy.as_ref())),
        ("containers", p.container_count.to_string()),
        ("images", or_dash(p.image_count)),
        ("memory", bytes(Some(p.memory_total))),
        ("cores", p.cores_total.to_string()),
    ];
    if p.memory_capacity.is_some() || p.cores_capacity.is_some() {
        platform.push(("capacity", format!("{} memory, {} cores", bytes(p.memory_capacity), number(p.cores_capacity))));
    }
    out += "Platform\n";
    out += &fields(2, &platform);
    for node in &p.nodes {
        out += &format!("Node {}\n", if node.name.is_empty() { "(name unknown)".into() } else { show(&node.name) });
        let mut status = node.status.clone();
        if let Some(e) = &node.error {
            status += &format!(" ({e})");
        }
        let version = if node.server_version.is_empty() { "version unknown" } else { &node.server_version };
        out += &fields(
            2,
            &[
                ("status", status),
                ("docker", format!("{version} at {}", node.docker_endpoint)),
                ("containers", node.container_count.to_string()),
                ("memory", reserved(bytes(Some(node.memory_reserved)), Some(bytes(Some(node.memory_total))))),
                ("cores", reserved(number(Some(node.cores_reserved)), Some(node.cores_total.to_string()))),
                ("last update", long_time(Some(&node.last_update))),
            ],
        );
    }
    Ok(out)
}

/// `<used> reserved of <total>`, or `<used> reserved` when the total is not known.
fn reserved(used: String, total: Option<String>) -> String {
    match total {
        None => format!("{used} reserved"),
        Some(total) => format!("{used} reserved of {total}"),
    }
}

/// A password from one line of standard input, when it is not a terminal.
fn password_from_stdin() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::Usage("no password given: pass --password, or pipe it on standard input".to_string()));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the password from standard input: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password given: standard input was empty; pass --password or pipe it".to_string(),
        ));
    }
    Ok(password.to_string())
}

/// A password from the prompt of a terminal (not echoed), else one line of standard input.
fn password_from_prompt() -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return password_from_stdin();
    }
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprint!("Password: ");
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    eprintln!();
    read.map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CliError::Usage("no password given".to_string()));
    }
    Ok(password.to_string())
}

/// `login`: `POST /token` with the password, then the token kept in the credentials file.
fn login(options: &Options, name: Option<String>, days: u32) -> Result<String, CliError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let password = match options.password.clone().or_else(|| env("ZOE_PASS")) {
        Some(p) => p,
        None => password_from_prompt()?,
    };
    let mut conn = super::client::Connection::resolve(options.url.clone(), options.user.clone(), Some(password), env)?;
    conn.ca_file = options.connection_ca_file();
    let (url, user) = (conn.url.clone(), conn.user.clone());
    let c = Client::new(conn)?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = name.unwrap_or_else(|| format!("cli-{secs}"));
    let made: crate::api::TokenCreated =
        Client::typed(c.post("/token", &json!({"name": name, "expires_days": days}))?)?;
    let path = super::credentials::save(&super::credentials::Saved {
        url: url.clone(),
        user: user.clone(),
        name: made.name.clone(),
        token: made.token,
    })?;
    Ok(format!(
        "Logged in to {} as {}: token {} until {}, kept in {}\n",
        show(&url),
        show(&user),
        show(&made.name),
        long_time(Some(&made.expires)),
        path.display()
    ))
}

/// `logout`: `DELETE /token/<name>` with the token itself, then the file deleted (also when the
/// token was refused: expired or revoked already).
fn logout(options: &Options) -> Result<String, CliError> {
    let Some(saved) = super::credentials::load()? else {
        return Ok("Not logged in\n".to_string());
    };
    let conn = super::client::Connection {
        url: saved.url.clone(),
        user: saved.user.clone(),
        password: String::new(),
        token: Some(saved.token.clone()),
        ca_file: options.connection_ca_file(),
    };
    let revoked = Client::new(conn)?.delete(&format!("/token/{}", encode(&saved.name)));
    match revoked {
        Ok(()) | Err(CliError::Refused { .. }) => {}
        Err(e) => return Err(e),
    }
    super::credentials::remove()?;
    Ok(format!("Logged out of {}: token {} revoked\n", show(&saved.url), show(&saved.name)))
}

/// `user-new`: `POST /user`.
fn user_new(c: &Client, json: bool, name: &str, password: Option<String>, role: &str) -> Result<String, CliError> {
    let password = match password {
        Some(p) => p,
        None => password_from_stdin()?,
    };
    let v: crate::api::UserCreated =
        Client::typed(c.post("/user", &json!({"name": name, "password": password, "role": role}))?)?;
    if json {
        return pretty(&v);
    }
    let u = &v.user;
    Ok(format!("User {} created (ID: {}, role: {}, uid: {})\n", show(&u.name), u.id, u.role.as_str(), u.uid))
}

fn describe_user(u: &UserView) -> String {
    let mut out = format!(
        "User: {}\nRole: {}\nID: {}\nUid: {}\nCreated: {}\n",
        show(&u.name),
        u.role.as_str(),
        u.id,
        u.uid,
        long_time(Some(&u.created_at))
    );
    if let Some(w) = &u.workspace {
        let over = if w.over_quota() { " (over quota: new executions are refused)" } else { "" };
        out.push_str(&format!("Workspace: {}{over}\n", w.describe()));
    }
    out
}

/// `user-get`: `GET /user/<name>`.
fn user_get(c: &Client, json: bool, name: &str) -> Result<String, CliError> {
    let u: UserView = Client::typed(c.get(&format!("/user/{}", encode(name)))?)?;
    if json {
        return pretty(&u);
    }
    Ok(describe_user(&u))
}

/// `user-set`: `PUT /user/<name>` with the role and/or the password.
fn user_set(
    c: &Client,
    json: bool,
    name: &str,
    role: Option<String>,
    password: Option<String>,
) -> Result<String, CliError> {
    let mut body = serde_json::Map::new();
    if let Some(r) = role {
        body.insert("role".into(), Value::String(r));
    }
    let password = match password.as_deref() {
        Some("") => Some(password_from_stdin()?),
        _ => password,
    };
    let password_changed = password.is_some();
    if let Some(p) = password {
        body.insert("password".into(), Value::String(p));
    }
    let u: UserView = Client::typed(c.put(&format!("/user/{}", encode(name)), &Value::Object(body))?)?;
    if json {
        return pretty(&u);
    }
    let what = if password_changed { " (password changed)" } else { "" };
    Ok(format!("User {} updated{what}\n{}", show(&u.name), describe_user(&u)))
}

/// `user-rm`: `DELETE /user/<name>`.
fn user_rm(c: &Client, json: bool, name: &str) -> Result<String, CliError> {
    c.delete(&format!("/user/{}", encode(name)))?;
    Ok(if json { String::new() } else { format!("User {} deleted\n", show(name)) })
}

/// `user-ls`: `POST /query` for `user`.
fn user_ls(c: &Client, json: bool) -> Result<String, CliError> {
    let users: Vec<UserView> = Client::typed(c.query(QueryWhat::User, json!({}))?)?;
    listing(&users, json, &["ID", "NAME", "ROLE", "UID", "CREATED"], |u| {
        vec![
            u.id.to_string(),
            u.name.clone(),
            u.role.as_str().to_string(),
            u.uid.to_string(),
            short_time(Some(&u.created_at)),
        ]
    })
}

/// Reads and validates an application description with the server's own code; returns the
/// document as written.
fn load_application(file: &Path) -> Result<Value, CliError> {
    let raw =
        std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    // A key given twice is refused, as the server refuses it.
    let v: Value = zoe_actors::description::strict_json::from_str(&raw).map_err(|e| match e {
        zoe_actors::description::strict_json::Error::Syntax(e) => CliError::Refused {
            code: "invalid_json".to_string(),
            message: format!("{} is not valid JSON: {e}", file.display()),
        },
        zoe_actors::description::strict_json::Error::DuplicateKey(path) => CliError::Refused {
            code: "duplicate_key".to_string(),
            message: format!(
                "{}: {}: {}",
                file.display(),
                zoe_actors::description::strict_json::join("application", &path),
                zoe_actors::description::strict_json::DUPLICATE
            ),
        },
    })?;
    parse_application(&v).map_err(|e| {
        let e = ZoeError::from(e);
        CliError::Refused { code: e.code.as_str().to_string(), message: e.message }
    })?;
    Ok(v)
}

/// `app-validate`: local validation only.
fn app_validate(file: &Path, json: bool) -> Result<String, CliError> {
    load_application(file)?;
    Ok(if json { pretty(&json!({"valid": true}))? } else { "Static validation OK\n".to_string() })
}

/// `start`: local validation, then `POST /execution`; with `wait` (`Some(timeout)`), polls the
/// execution until it runs.
fn start(c: &Client, json: bool, name: &str, file: &Path, wait: Option<Option<Duration>>) -> Result<String, CliError> {
    let application = load_application(file)?;
    let v: crate::api::ExecutionCreated =
        Client::typed(c.post("/execution", &json!({"application": application, "name": name}))?)?;
    let id = v.execution_id;
    let Some(timeout) = wait else {
        return if json {
            pretty(&v)
        } else {
            Ok(format!(
                "Application scheduled successfully with ID {id}, use the exec-get command to check its status\n"
            ))
        };
    };
    eprintln!("Execution {name} scheduled with ID {id}; waiting for it to run");
    let e = wait_running(c, id, timeout)?;
    let services = services_of(c, &e)?;
    if json {
        return pretty(&json!({"execution": e, "services": services}));
    }
    Ok(format!("Execution {} (ID: {id}) is running\n{}", show(&e.name), describe_services(&services, c.master_url())))
}

/// Polls `GET /execution/<id>` until it is running (returned) or has ended (an error), telling
/// each change of status or queue position on stderr.
fn wait_running(c: &Client, id: u64, timeout: Option<Duration>) -> Result<ExecutionView, CliError> {
    let started = Instant::now();
    let mut last: Option<(Status, Option<usize>)> = None;
    loop {
        let e: ExecutionView = Client::typed(c.get(&format!("/execution/{id}"))?)?;
        let (status, position) = (e.status, e.queue_position);
        if last != Some((status, position)) {
            let queue = position.map(|p| format!(" (queue position {p})")).unwrap_or_default();
            eprintln!("[{:6.1}s] execution {id}: {}{queue}", started.elapsed().as_secs_f64(), status.0.as_str());
            last = Some((status, position));
        }
        let status = status.0;
        if status == ExecutionStatus::Running {
            return Ok(e);
        }
        if status.is_final() {
            let why = e.error.as_ref().map(|m| format!(": {}", show(m))).unwrap_or_default();
            return Err(CliError::Failed(format!("execution {id} ended ({}) before running{why}", status.as_str())));
        }
        let status = status.as_str();
        let pause = match timeout {
            Some(t) => {
                let left = t.saturating_sub(started.elapsed());
                if left.is_zero() {
                    let queue = position.map(|p| format!(", queue position {p}")).unwrap_or_default();
                    return Err(CliError::GaveUp(format!(
                        "gave up waiting after {:.1} s: execution {id} is still {status}{queue}; it stays \
                         queued (zoe terminate {id} removes it)",
                        t.as_secs_f64()
                    )));
                }
                left.min(POLL)
            }
            None => POLL,
        };
        std::thread::sleep(pause);
    }
}

/// `GET /service/<id>` for each live service of an execution; services that are gone by then
/// are left out.
fn services_of(c: &Client, execution: &ExecutionView) -> Result<Vec<ServiceView>, CliError> {
    let mut services = Vec::new();
    for id in &execution.services {
        match c.get(&format!("/service/{id}")) {
            Ok(s) => services.push(Client::typed(s)?),
            Err(CliError::Refused { code, .. }) if code == "no_such_service" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(services)
}

/// `Service <name> (ID: <id>): <status>` and ` - <port>: <address>` per port.
fn describe_services(services: &[ServiceView], master: &str) -> String {
    let mut out = String::new();
    for s in services {
        out += &format!("Service {} (ID: {}): {}\n", show(&s.name), s.id, s.status.as_str());
        for (port, address) in endpoints(s, master) {
            out += &format!(" - {}: {}\n", show(&port), show(&address));
        }
    }
    out
}

/// `exec-ls`: `GET /execution` with the filters asked for (none: every execution, as 0.9.7).
fn exec_ls(c: &Client, json: bool, query: &[(&str, String)], limit: Option<usize>) -> Result<String, CliError> {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    let path = if query.is_empty() { "/execution".to_string() } else { format!("/execution?{}", query.join("&")) };
    let list: Vec<ExecutionView> = Client::typed(c.get(&path)?)?;
    if let (Some(n), Some(first)) = (limit, list.first()) {
        if list.len() == n {
            eprintln!("the newest {n} shown; older ones may match too: add --before {}", first.id);
        }
    }
    listing(&list, json, &["ID", "NAME", "OWNER", "STATUS", "SCHEDULED", "STARTED", "FINISHED", "QUEUE"], |e| {
        vec![
            e.id.to_string(),
            e.name.clone(),
            e.owner.clone(),
            e.status.0.as_str().to_string(),
            short_time(Some(&e.time_scheduled)),
            short_time(e.time_started.as_ref()),
            short_time(e.time_finished.as_ref()),
            or_dash(e.queue_position),
        ]
    })
}

/// `exec-get`: `GET /execution/<id>`, then `GET /service/<id>` for each of its services.
fn exec_get(c: &Client, json: bool, id: u64) -> Result<String, CliError> {
    let e: ExecutionView = Client::typed(c.get(&format!("/execution/{id}"))?)?;
    let services = services_of(c, &e)?;
    if json {
        return pretty(&json!({"execution": e, "services": services}));
    }
    let mut out = format!("Execution {} (ID: {})\n", show(&e.name), e.id);
    out += &format!("Owner: {}\nStatus: {}\n", show(&e.owner), e.status.0.as_str());
    if let Some(p) = e.queue_position {
        out += &format!("Queue position: {p}\n");
    }
    if let Some(err) = &e.error {
        out += &format!("Last error: {}\n", show(err));
    }
    out += &format!(
        "Time scheduled: {}\nTime started: {}\nTime finished: {}\nApplication name: {}\n",
        long_time(Some(&e.time_scheduled)),
        long_time(e.time_started.as_ref()),
        long_time(e.time_finished.as_ref()),
        show(&e.application.name),
    );
    out += &describe_services(&services, c.master_url());
    Ok(out)
}

/// `exec-app-get`: `POST /query` for executions named NAME; prints the newest one's
/// application description.
fn exec_app_get(c: &Client, name: &str) -> Result<String, CliError> {
    let found: Vec<ExecutionView> = Client::typed(c.query(QueryWhat::Execution, json!({"name": name}))?)?;
    let newest = found.iter().max_by_key(|e| e.id).ok_or_else(|| CliError::Refused {
        code: "no_such_execution".to_string(),
        message: format!("no execution is named {name:?}"),
    })?;
    if found.len() > 1 {
        eprintln!("{} executions are named {}; showing the newest, ID {}", found.len(), show(name), newest.id);
    }
    // As 0.9.7 printed it: keys sorted (a JSON value's object keys are).
    let sorted = serde_json::to_value(&newest.application)
        .map_err(|e| CliError::Failed(format!("cannot print the application: {e}")))?;
    pretty(&sorted)
}

/// `terminate`: `DELETE /execution/<id>`.
fn terminate(c: &Client, json: bool, id: u64) -> Result<String, CliError> {
    c.delete(&format!("/execution/{id}"))?;
    Ok(if json { String::new() } else { format!("Execution {id} terminated\n") })
}

/// `logs`: `GET /service/<id>/logs`, copied to stdout as it arrives, with its control
/// characters other than newlines and tabs escaped (a container's output is its owner's to
/// write), or as it is with `raw`.
fn logs(c: &Client, id: u64, follow: bool, tail: Option<u64>, raw: bool) -> Result<String, CliError> {
    let mut path = format!("/service/{id}/logs");
    let mut params = Vec::new();
    if follow {
        params.push("follow=true".to_string());
    }
    if let Some(n) = tail {
        params.push(format!("tail={n}"));
    }
    if !params.is_empty() {
        path = format!("{path}?{}", params.join("&"));
    }
    c.stream(&path, follow, !raw, &mut std::io::stdout().lock())?;
    Ok(String::new())
}
