//! How the proxy opens a connection to a service: straight to the container's address on one
//! engine (the master's host routes to Docker's bridges), or through the relay of the owner's
//! overlay network on a Swarm (see `zoe_actors::relay`), whose ports are published nowhere.
//! Either way the proxy gets a TCP stream that carries the service's bytes.

use std::time::Duration;

use actix::Recipient;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio::net::TcpStream;
use zoe_actors::logic::views::ProxyTarget;
use zoe_actors::protocol::FindRelay;
use zoe_actors::relay::{self, Refusal, Secret};
use zoe_actors::Code;

use crate::error::{ApiError, HttpCode};

/// How long connecting to a service (and, through a relay, the handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the master reaches services.
pub enum Dialer {
    /// Straight to the target's address.
    Direct,
    /// Through the relays of a Swarm's user networks: where each one is, and the master's
    /// secret their keys come from.
    Relayed { relays: Recipient<FindRelay>, secret: Secret },
}

fn bad_gateway(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(HttpCode::BadGateway, format!("the service did not answer the proxy: {what}"))
}

/// A fresh TCP connection, within the timeout, with TCP_NODELAY.
async fn tcp(address: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

impl Dialer {
    /// A connection to the target's service.
    pub async fn connect(&self, target: &ProxyTarget) -> Result<TcpStream, ApiError> {
        match self {
            Dialer::Direct => tcp(&target.address).await.map_err(bad_gateway),
            Dialer::Relayed { relays, secret } => {
                let key = secret.network_key(&target.network);
                // What was last seen first; once more from a fresh look when that relay is gone.
                let mut last = String::new();
                for fresh in [false, true] {
                    let relay = match relays.send(FindRelay { network: target.network.clone(), fresh }).await {
                        Ok(Ok(addr)) => addr,
                        Ok(Err(why)) => {
                            return Err(
                                ApiError::new(Code::Unavailable, format!("{why}; try again shortly")).retry_after(2)
                            )
                        }
                        Err(e) => return Err(bad_gateway(format!("the back end did not answer: {e}"))),
                    };
                    let mut stream = match tcp(&relay).await {
                        Ok(s) => s,
                        Err(e) => {
                            last = format!("the relay at {relay}: {e}");
                            continue;
                        }
                    };
                    let mut nonce = [0u8; relay::NONCE];
                    OsRng.fill_bytes(&mut nonce);
                    let asked =
                        tokio::time::timeout(CONNECT_TIMEOUT, relay::ask(&mut stream, &key, nonce, &target.address));
                    match asked.await {
                        Ok(Ok(())) => return Ok(stream),
                        Ok(Err(Refusal::TargetRefused)) => return Err(bad_gateway("cannot connect to it")),
                        Ok(Err(e)) => last = format!("the relay at {relay}: {e}"),
                        Err(_) => {
                            last = format!("the relay at {relay} did not answer within {} s", CONNECT_TIMEOUT.as_secs())
                        }
                    }
                }
                tracing::warn!(network = target.network, error = last, "no relay to the service");
                Err(bad_gateway(last))
            }
        }
    }
}
