//! `zoe`: the Zoe master, its checkpoint tools and its command-line client, in one binary.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use zoe::checkpoint_cmd::{self, CheckpointCmd, StateDir};
use zoe::config::MasterConfig;

/// Zoe: analytics as a service on Docker.
#[derive(Parser, Debug)]
#[command(name = "zoe", version, about, after_help = zoe::cli::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    client: zoe::cli::Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the master: REST API, web interface, scheduler and checkpoints.
    Master(Box<MasterConfig>),
    /// Inspect, compare, verify and revert checkpoints (with the master stopped for revert).
    Checkpoint {
        #[command(flatten)]
        dir: StateDir,
        #[command(subcommand)]
        cmd: CheckpointCmd,
    },
    /// Replay a workload trace through the scheduler with a simulated clock, comparing
    /// policies; or generate a synthetic trace.
    Simulate(zoe::simulate_cmd::SimulateArgs),
    /// Run a relay: what a Swarm back end puts on each user's overlay network so that the
    /// master, and only the master, reaches that user's services (started by the master, not by
    /// hand).
    Relay(zoe::relay_cmd::RelayArgs),
    // The command-line client of a master (0.9.7's `zoe.py` commands and more).
    #[command(flatten)]
    Client(zoe::cli::ClientCommand),
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZOE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = zoe::observability::log_subscriber(json, filter, std::io::stderr);
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("zoe: cannot set up logging: {e}");
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `--json` is also `simulate`'s own flag (clap gives the global one its value too).
    let simulate = matches!(cli.command, Command::Simulate(_));
    let client = zoe::cli::Options { json: cli.client.json && !simulate, ..cli.client.clone() };
    if client.any_given() && !matches!(cli.command, Command::Client(_)) {
        eprintln!("zoe: --url, --user, --password, --ca-file and --json are options of the client commands");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Master(config) => {
            let config = *config;
            let sub = matches.subcommand_matches("master");
            let config = match sub.map(|m| config.clone().apply_file(m)).unwrap_or(Ok(config)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zoe master: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(config.log_format == zoe::config::LogFormat::Json);
            let system = actix::System::new();
            let result = system.block_on(async move {
                let running = zoe::master::start(config).map_err(|e| e.to_string())?;
                running.server.await.map_err(|e| e.to_string())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zoe master: {e}");
                    // A start checks what can stop it before it starts anything; should something
                    // have started all the same, its tasks are not dropped outside their runtime
                    // (a panic): the process ends with them.
                    std::mem::forget(system);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Checkpoint { dir, cmd } => match checkpoint_cmd::run(cmd, &dir) {
            // A reader that went away (`| head -1`) saw what it wanted.
            Ok(()) | Err(checkpoint_cmd::CmdError::Closed) => ExitCode::SUCCESS,
            Err(checkpoint_cmd::CmdError::Failed(e)) => {
                // Not `eprintln!`, which panics when stderr is a closed pipe too.
                let _ = writeln!(std::io::stderr(), "zoe checkpoint: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Simulate(args) => match zoe::simulate_cmd::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zoe simulate: {e}");
                ExitCode::from(2)
            }
        },
        Command::Relay(args) => {
            init_logging(false);
            match actix::System::new().block_on(zoe::relay_cmd::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zoe relay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client(cmd) => zoe::cli::run(&cli.client, cmd),
    }
}
