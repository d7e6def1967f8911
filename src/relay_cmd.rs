//! `zoe relay`: the small server that runs on each user's overlay network of a Swarm and lets the
//! master, and only the master, reach that user's services (see `zoe_actors::relay` for the
//! protocol). The Swarm back end runs it as a service of its own per user network, from the
//! image `relay-image` (`deploy/relay-image.sh` builds it from this binary).
//!
//! It takes its network's key and subnets from the environment (`ZOE_RELAY_KEY`, 64 hex digits;
//! `ZOE_RELAY_SUBNETS`, comma-separated), listens on `--listen`, and for each connection: greets,
//! checks the master's tag (a wrong one: it hangs up), resolves the target through the overlay's
//! DNS, connects only to an address of its subnets, answers with its own tag, then copies bytes
//! both ways until either side closes. At most `--max-connections` at once (more are closed at
//! once); a handshake must end within 10 s, a connection to a service open within 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio::net::{TcpListener, TcpStream};
use zoe_actors::relay::{self, Secret};

/// How long a handshake, and a connection to a service, may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of `zoe relay`.
#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:7700")]
    pub listen: SocketAddr,
    /// Connections relayed at once; more are closed at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
}

/// Runs the relay until it is stopped; returns only on a setup error.
pub async fn run(args: RelayArgs) -> Result<(), String> {
    let key = Secret::from_hex(&std::env::var("ZOE_RELAY_KEY").map_err(|_| "ZOE_RELAY_KEY is not set".to_string())?)?;
    let subnets: Vec<String> = std::env::var("ZOE_RELAY_SUBNETS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if subnets.is_empty() {
        return Err("ZOE_RELAY_SUBNETS is empty: the relay would reach nothing".to_string());
    }
    let listener =
        TcpListener::bind(args.listen).await.map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, subnets = subnets.join(","), "relay listening");
    let shared = Arc::new((key, subnets));
    let places = Arc::new(tokio::sync::Semaphore::new(args.max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections: closed");
            continue;
        };
        let shared = shared.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = serve(stream, &shared.0, &shared.1).await {
                tracing::debug!(%peer, error = e, "connection ended");
            }
            drop(place);
        });
    }
}

async fn serve(mut stream: TcpStream, key: &Secret, subnets: &[String]) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut nonce = [0u8; relay::NONCE];
    OsRng.fill_bytes(&mut nonce);
    let request = tokio::time::timeout(HANDSHAKE_TIMEOUT, relay::hear(&mut stream, key, nonce))
        .await
        .map_err(|_| "no request within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let service = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect(&request.target, subnets)).await;
    let mut service = match service {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = relay::answer(&mut stream, key, &request, false).await;
            return Err(e);
        }
        Err(_) => {
            let _ = relay::answer(&mut stream, key, &request, false).await;
            return Err(format!("{} did not answer within 10 s", request.target));
        }
    };
    relay::answer(&mut stream, key, &request, true).await.map_err(|e| e.to_string())?;
    tokio::io::copy_bidirectional(&mut stream, &mut service).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Connects to the first address of `target` within the relay's subnets.
async fn connect(target: &str, subnets: &[String]) -> Result<TcpStream, String> {
    let addresses = tokio::net::lookup_host(target).await.map_err(|e| format!("cannot resolve {target}: {e}"))?;
    let mut last = format!("{target} has no address on this network");
    for addr in addresses.filter(|a| relay::in_subnets(a.ip(), subnets)) {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to {target} ({addr}): {e}"),
        }
    }
    Err(last)
}
