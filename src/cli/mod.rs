//! The `zoe` command-line client: the subcommands of Zoe 0.9.7's `zoe.py` with the same names
//! and arguments (`stats`, `user-new`, `user-get`, `user-rm`, `user-ls`, `app-validate`,
//! `start`, `exec-ls`, `exec-get`, `exec-app-get`, `terminate`), plus `user-set`, `logs`,
//! `start --wait` and `exec-ls --status`, and `ws` for the files of one's workspace.
//!
//! Unlike 0.9.7 it exits non-zero on every failure, takes the server and credentials from flags
//! as well as from `ZOE_URL`, `ZOE_USER` and `ZOE_PASS`, has a timeout on each request and
//! retries only requests that could not reach the server.
//!
//! [`client`] is the HTTP side (auth, timeouts, retry, errors and exit codes), [`commands`]
//! runs each subcommand, [`output`] formats for people.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use zoe_checkpoints::ExecutionStatus;

pub mod bulk;
pub mod client;
pub mod commands;
pub mod credentials;
pub mod output;
pub mod progress;
pub mod usage;
pub mod workspace;

pub use client::{CliError, Connection};

/// Shown at the end of `zoe --help`.
pub const AFTER_HELP: &str = "\
Client commands (stats, user-*, app-validate, start, exec-*, terminate, logs, ws, usage) take the server
and credentials from --url/--user/--password, given before the command, or else from ZOE_URL,
ZOE_USER and ZOE_PASS (e.g. ZOE_URL=http://127.0.0.1:4850). For an https:// master whose
certificate is not from a public authority, --ca-file (or ZOE_CA_FILE) names a PEM file with
its certificate authority, or with its own (self-signed) certificate, which is then trusted as
exactly that certificate. With --json they print the server's JSON, pretty; errors always go
to stderr as `zoe: <message> (<code>)`. What the server sends is printed with its control
characters escaped (`logs --raw` prints a log as it is).

Exit codes of the client commands:
  0  success
  1  the server refused (its message and code are printed), the application description is
     invalid, `start --wait` saw the execution end before it ran, or `ws get`/`put` left
     something out (each named on stderr)
  2  usage error: bad arguments, no server or credentials given, unreadable file
  3  the server could not be reached (after 3 attempts, 0.5 s then 1 s apart) or did not
     answer within 30 s, or a `ws` transfer broke off
  4  `start --wait --timeout` gave up waiting (the execution stays queued)
  5  the server redirected the request to another host, port or scheme, which the client
     does not follow (the message says where)";

/// Server, credentials and output format of the client commands.
#[derive(Args, Clone, Debug, Default)]
pub struct Options {
    /// Zoe master to talk to, e.g. http://127.0.0.1:4850 [default: $ZOE_URL].
    #[arg(long, value_name = "URL", help_heading = "Client options")]
    pub url: Option<String>,

    /// User name to authenticate as [default: $ZOE_USER].
    #[arg(long, value_name = "NAME", help_heading = "Client options")]
    pub user: Option<String>,

    /// Password to authenticate with [default: $ZOE_PASS].
    #[arg(long, value_name = "PASSWORD", help_heading = "Client options")]
    pub password: Option<String>,

    /// Trust the certificates in this PEM file for an https:// server, instead of the built-in
    /// public authorities: the master's certificate must be signed by one of them, or be one of
    /// them (a self-signed certificate, pinned as it is) [default: $ZOE_CA_FILE].
    #[arg(long, value_name = "PATH", help_heading = "Client options")]
    pub ca_file: Option<PathBuf>,

    /// Print the server's JSON answers (pretty) instead of tables, for scripts (user-rm and
    /// terminate then print nothing).
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,
}

impl Options {
    /// Whether any client option was given (they mean nothing to `master` and `checkpoint`).
    pub fn any_given(&self) -> bool {
        self.url.is_some() || self.user.is_some() || self.password.is_some() || self.ca_file.is_some() || self.json
    }

    /// The server and credentials: flags first, then the environment; without a password, the
    /// token of `zoe login` when it is for the same server and user.
    pub fn connection(&self) -> Result<Connection, CliError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let password = self.password.clone().or_else(|| env("ZOE_PASS"));
        let saved = if password.is_none() { credentials::load()? } else { None };
        let mut conn = match (password, saved) {
            (None, Some(saved)) => {
                let url = self.url.clone().or_else(|| env("ZOE_URL")).unwrap_or_else(|| saved.url.clone());
                let user = self.user.clone().or_else(|| env("ZOE_USER")).unwrap_or_else(|| saved.user.clone());
                if client::normalize_url(&url)? != saved.url || user != saved.user {
                    return Err(CliError::Usage(format!(
                        "no password given, and zoe login's token is for {} at {}: set ZOE_PASS or zoe login again",
                        saved.user, saved.url
                    )));
                }
                Connection { url: saved.url, user, password: String::new(), token: Some(saved.token), ca_file: None }
            }
            (password, _) => Connection::resolve(self.url.clone(), self.user.clone(), password, env)?,
        };
        conn.ca_file = self.connection_ca_file();
        Ok(conn)
    }

    /// `--ca-file`, else `ZOE_CA_FILE`.
    pub fn connection_ca_file(&self) -> Option<PathBuf> {
        self.ca_file
            .clone()
            .or_else(|| std::env::var_os("ZOE_CA_FILE").map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
    }
}

/// The client subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum ClientCommand {
    /// Show the platform statistics: the scheduler's queue and reservations, and the Docker
    /// engine.
    Stats,

    /// Create a user (administrators only).
    UserNew {
        /// Name of the new user (a lowercase DNS label).
        #[arg(long)]
        name: String,
        /// Their password. Without it, one line is read from standard input, which must then
        /// not be a terminal (`echo "$PW" | zoe user-new ...`).
        #[arg(long)]
        password: Option<String>,
        /// Their role.
        #[arg(long, value_parser = ["admin", "user", "guest"])]
        role: String,
    },

    /// Show a user.
    UserGet {
        #[arg(value_name = "NAME")]
        name: String,
    },

    /// Change a user's role or password (roles: administrators only; passwords: administrators,
    /// or the user themselves).
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["role", "password"])))]
    UserSet {
        #[arg(value_name = "NAME")]
        name: String,
        /// The new role.
        #[arg(long, value_parser = ["admin", "user", "guest"])]
        role: Option<String>,
        /// Change the password: `--password` alone reads it from one line of standard input,
        /// which must then not be a terminal (`echo "$PW" | zoe user-set alice --password`), so
        /// that `ps` and the shell's history never show it. `--password NEW` still works.
        #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "NEW")]
        password: Option<String>,
    },

    /// Delete a user (their executions stay in the history).
    UserRm {
        #[arg(value_name = "NAME")]
        name: String,
    },

    /// List the users.
    UserLs,

    /// Sign in: make an API token (with the password of --password, ZOE_PASS, or the prompt)
    /// and keep it in $XDG_CONFIG_HOME/zoe/credentials (default ~/.config/zoe/credentials,
    /// mode 0600); later commands use it when no password is given.
    Login {
        /// The token's name [default: cli-<seconds since 1970>].
        #[arg(long)]
        name: Option<String>,
        /// How long the token lives, in days (1 to 3650).
        #[arg(long, default_value_t = 90)]
        days: u32,
    },

    /// Revoke the token of `zoe login` and delete its file.
    Logout,

    /// Check an application description, locally, with the server's own validation.
    AppValidate {
        /// The application description (JSON).
        #[arg(value_name = "FILE")]
        jsonfile: PathBuf,
    },

    /// Start an execution of an application description (checked locally first).
    Start {
        /// Name of the execution (a lowercase DNS label).
        #[arg(value_name = "NAME")]
        name: String,
        /// The application description (JSON).
        #[arg(value_name = "FILE")]
        jsonfile: PathBuf,
        /// Wait until the execution runs, showing its progress on stderr, then print its
        /// services and their addresses. Fails (exit 1) if it ends before running. With
        /// --json, prints {"execution": ..., "services": [...]}.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after SECS seconds (exit 4); the execution is left as it is.
        /// Default: wait as long as it takes.
        #[arg(long, value_name = "SECS", requires = "wait", value_parser = parse_seconds)]
        timeout: Option<std::time::Duration>,
    },

    /// List executions (all of them by default; administrators see everyone's).
    ExecLs {
        /// Only executions with this status (repeatable): scheduled, starting, running,
        /// "cleaning up", finished, terminated, error.
        #[arg(long, value_name = "STATUS", value_parser = parse_status)]
        status: Vec<String>,
        /// Only active executions: scheduled, starting, running, cleaning up.
        #[arg(long, conflicts_with = "status")]
        active: bool,
        /// Every execution, whatever its status (the default).
        #[arg(long, conflicts_with_all = ["status", "active"])]
        all: bool,
        /// Only executions with exactly this name.
        #[arg(long)]
        name: Option<String>,
        /// Only executions of this user (administrators).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Only executions submitted at or after this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most N executions: the newest that match.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only executions with an id below this one (the next page after --limit).
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
    },

    /// Show an execution and its services with their addresses. With --json, prints
    /// {"execution": ..., "services": [...]}.
    ExecGet {
        #[arg(value_name = "ID")]
        id: u64,
    },

    /// Print the application description of the execution NAME (the newest one of that name).
    ExecAppGet {
        #[arg(value_name = "NAME")]
        name: String,
    },

    /// Terminate an execution (its record is kept).
    Terminate {
        #[arg(value_name = "ID")]
        id: u64,
    },

    /// What users (administrators: every user; others: themselves) used and reserved over a
    /// span of whole UTC days: CPU and memory, used against reserved (the efficiency). Times
    /// are ages (30d, 12h, 2w), Unix times, dates (2026-12-01) or RFC 3339 times.
    Usage {
        /// The span's start [default: 30 days before --until].
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// The span's end [default: now].
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// One row per user or per execution.
        #[arg(long, value_enum, default_value_t = usage::By::User)]
        by: usage::By,
        /// Print CSV (a header line, then one line per row).
        #[arg(long)]
        csv: bool,
    },

    /// Print the log of a service (a container), as it arrives.
    Logs {
        /// The service id (see exec-get).
        #[arg(value_name = "SERVICE_ID")]
        service_id: u64,
        /// Keep following the log until the container ends (no time limit).
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// Print the log's bytes as they are. By default control characters other than newlines
        /// and tabs are shown escaped (`\u{1b}`, `\r`), so that what a container printed cannot
        /// drive the terminal of whoever reads it.
        #[arg(long)]
        raw: bool,
    },

    /// The files of your workspace: `ws ls [PATH]`, `ws get PATH [LOCAL]`, `ws put LOCAL
    /// [PATH]`, `ws rm [-r] PATH` (`zoe ws --help`); folders are copied recursively.
    Ws(workspace::WsArgs),
}

/// An execution status as written in the API; `cleaning-up` and `cleaning_up` are accepted
/// for `cleaning up`.
fn parse_status(s: &str) -> Result<String, String> {
    let spaced = s.trim().replace(['-', '_'], " ");
    ExecutionStatus::parse(&spaced).map(|st| st.as_str().to_string()).ok_or_else(|| {
        let all: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a status; use one of: {}", all.join(", "))
    })
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|f| std::time::Duration::try_from_secs_f64(f).ok())
        .ok_or_else(|| "not a number of seconds".to_string())
}

/// Runs a client command; prints its error as `zoe: <message>` and returns its exit code.
pub fn run(options: &Options, command: ClientCommand) -> ExitCode {
    match commands::run(options, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message may quote the server, which may quote a tenant.
            eprintln!("zoe: {}", crate::escape::controls(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_checked_and_spelled_as_the_api_does() {
        assert_eq!(parse_status("running"), Ok("running".to_string()));
        assert_eq!(parse_status("cleaning-up"), Ok("cleaning up".to_string()));
        assert!(parse_status("queued").is_err());
    }
}
