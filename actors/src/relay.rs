//! The relay: how the master reaches a user's services on a Swarm without publishing their ports
//! on the nodes.
//!
//! A service's exposed ports are reachable only on its user's overlay network. Each user's
//! network gets one small Zoe component on it, the relay (`zoe relay`, a Swarm service of its
//! own), whose one port is published on its node. The master connects there and, after a mutual
//! authentication, names the service and port it wants; the relay connects to it over the overlay
//! and then copies bytes both ways. The relay of a network knows only that network's key, derived
//! from the master's secret: a tenant who reaches the relay's port (every container can reach
//! node addresses) gets nothing without the key, and the master talks to no one but the relay.
//!
//! The handshake (all integers big-endian; `MAC` is keyed BLAKE2b-256 with the network's key):
//!
//! ```text
//! relay  -> master: "ZOE-RELAY/1\n", nonce_r (32 bytes)
//! master -> relay:  nonce_m (32), length (u16), target ("host:port"), MAC("client", nonce_r, nonce_m, length, target)
//! relay  -> master: status (1 byte: 0 connected, 1 refused), MAC("relay", nonce_m, nonce_r, status)
//! ```
//!
//! Fresh nonces on both sides make every tag good for one connection only. A relay that gets a
//! wrong tag closes the connection without a word; it connects only to addresses of its own
//! network's subnets. What follows a `0` is the service's own bytes.
//!
//! This module holds the protocol (no randomness, no sockets of its own: the callers bring the
//! nonces and the stream), and the key derivation; `zoe relay` (the server) and the proxy's
//! dialing are in the `zoe` crate.

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first bytes a relay sends: the protocol and its version.
pub const MAGIC: &[u8; 12] = b"ZOE-RELAY/1\n";
/// Bytes of a nonce, of a key and of a tag.
pub const NONCE: usize = 32;
pub const TAG: usize = 32;
/// The longest target (`host:port`) a master may name.
pub const MAX_TARGET: usize = 255;
/// The port a relay listens on inside its container.
pub const PORT: u16 = 7700;

type Hmac = Blake2bMac<U32>;

/// A 32-byte secret: the master's (kept in its state directory), or one network's key derived
/// from it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The key of the relay of `network`: what that relay knows, and all it knows.
    pub fn network_key(&self, network: &str) -> Secret {
        let mut mac = mac(&self.0);
        mac.update(b"zoe relay key\0");
        mac.update(network.as_bytes());
        Secret(mac.finalize().into_bytes().into())
    }

    /// As lowercase hex (for the relay's environment).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a relay key is 64 hexadecimal digits".to_string());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Secret(out))
    }
}

fn mac(key: &[u8; 32]) -> Hmac {
    // A 32-byte key is always accepted by BLAKE2b (up to 64).
    <Hmac as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("BLAKE2b takes 32-byte keys"))
}

fn client_tag(key: &Secret, nonce_r: &[u8; NONCE], nonce_m: &[u8; NONCE], target: &[u8]) -> Hmac {
    let mut m = mac(&key.0);
    m.update(b"client");
    m.update(nonce_r);
    m.update(nonce_m);
    m.update(&(target.len() as u16).to_be_bytes());
    m.update(target);
    m
}

fn relay_tag(key: &Secret, nonce_m: &[u8; NONCE], nonce_r: &[u8; NONCE], status: u8) -> Hmac {
    let mut m = mac(&key.0);
    m.update(b"relay");
    m.update(nonce_m);
    m.update(nonce_r);
    m.update(&[status]);
    m
}

/// Why a handshake did not go through.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The other side does not speak the protocol, or does not know the key.
    NotAuthentic(String),
    /// The relay could not (or would not) connect to the target.
    TargetRefused,
    /// The connection failed or ended.
    Io(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAuthentic(why) => write!(f, "the relay could not be authenticated: {why}"),
            Refusal::TargetRefused => write!(f, "the relay could not connect to the service"),
            Refusal::Io(e) => write!(f, "the connection to the relay failed: {e}"),
        }
    }
}

fn io(e: std::io::Error) -> Refusal {
    Refusal::Io(e.to_string())
}

/// The master's side: over a fresh connection to a relay, asks for `target` (`host:port`) with
/// the network's `key` and the master's fresh `nonce_m`. On `Ok`, the stream carries the
/// service's bytes.
pub async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &Secret,
    nonce_m: [u8; NONCE],
    target: &str,
) -> Result<(), Refusal> {
    if target.is_empty() || target.len() > MAX_TARGET {
        return Err(Refusal::TargetRefused);
    }
    let mut hello = [0u8; MAGIC.len() + NONCE];
    stream.read_exact(&mut hello).await.map_err(io)?;
    if &hello[..MAGIC.len()] != MAGIC {
        return Err(Refusal::NotAuthentic("it does not speak the relay protocol".into()));
    }
    let mut nonce_r = [0u8; NONCE];
    nonce_r.copy_from_slice(&hello[MAGIC.len()..]);
    let tag = client_tag(key, &nonce_r, &nonce_m, target.as_bytes()).finalize().into_bytes();
    let mut request = Vec::with_capacity(NONCE + 2 + target.len() + TAG);
    request.extend_from_slice(&nonce_m);
    request.extend_from_slice(&(target.len() as u16).to_be_bytes());
    request.extend_from_slice(target.as_bytes());
    request.extend_from_slice(&tag);
    stream.write_all(&request).await.map_err(io)?;
    let mut answer = [0u8; 1 + TAG];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|_| Refusal::NotAuthentic("it closed the connection: it does not know this key".into()))?;
    let status = answer[0];
    relay_tag(key, &nonce_m, &nonce_r, status)
        .verify_slice(&answer[1..])
        .map_err(|_| Refusal::NotAuthentic("its answer does not carry the key's tag".into()))?;
    match status {
        0 => Ok(()),
        _ => Err(Refusal::TargetRefused),
    }
}

/// What a master asked a relay for, once its tag is verified.
#[derive(Debug)]
pub struct Request {
    pub target: String,
    nonce_m: [u8; NONCE],
    nonce_r: [u8; NONCE],
}

/// The relay's side, first half: greets with the relay's fresh `nonce_r` and reads the master's
/// request, checking its tag. `Err` on anything else (the caller hangs up without a word).
pub async fn hear<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &Secret,
    nonce_r: [u8; NONCE],
) -> Result<Request, Refusal> {
    let mut hello = Vec::with_capacity(MAGIC.len() + NONCE);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&nonce_r);
    stream.write_all(&hello).await.map_err(io)?;
    let mut head = [0u8; NONCE + 2];
    stream.read_exact(&mut head).await.map_err(io)?;
    let mut nonce_m = [0u8; NONCE];
    nonce_m.copy_from_slice(&head[..NONCE]);
    let length = usize::from(u16::from_be_bytes([head[NONCE], head[NONCE + 1]]));
    if length == 0 || length > MAX_TARGET {
        return Err(Refusal::NotAuthentic(format!("a target of {length} bytes")));
    }
    let mut rest = vec![0u8; length + TAG];
    stream.read_exact(&mut rest).await.map_err(io)?;
    let (target, tag) = rest.split_at(length);
    client_tag(key, &nonce_r, &nonce_m, target)
        .verify_slice(tag)
        .map_err(|_| Refusal::NotAuthentic("a wrong tag".into()))?;
    let target = String::from_utf8(target.to_vec()).map_err(|_| Refusal::NotAuthentic("a target not UTF-8".into()))?;
    Ok(Request { target, nonce_m, nonce_r })
}

/// The relay's side, second half: tells the master whether the target is connected.
pub async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    key: &Secret,
    request: &Request,
    connected: bool,
) -> Result<(), Refusal> {
    let status = if connected { 0 } else { 1 };
    let tag = relay_tag(key, &request.nonce_m, &request.nonce_r, status).finalize().into_bytes();
    let mut out = Vec::with_capacity(1 + TAG);
    out.push(status);
    out.extend_from_slice(&tag);
    stream.write_all(&out).await.map_err(io)
}

/// Whether `ip` is in one of `subnets` (`a.b.c.d/n` or IPv6 `x::/n`).
pub fn in_subnets(ip: std::net::IpAddr, subnets: &[String]) -> bool {
    subnets.iter().any(|s| {
        let Some((net, len)) = s.split_once('/') else { return false };
        let (Ok(net), Ok(len)) = (net.parse::<std::net::IpAddr>(), len.parse::<u32>()) else { return false };
        match (ip, net) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(a) & mask == u32::from(n) & mask
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) if len <= 128 => {
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                u128::from(a) & mask == u128::from(n) & mask
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Secret {
        Secret([n; 32]).network_key("alice-dev")
    }

    /// Runs the relay's side over one end of a pipe: hears, then answers `connected`.
    async fn relay(mut end: tokio::io::DuplexStream, key: Secret, connected: bool) -> Result<String, Refusal> {
        let request = hear(&mut end, &key, [9u8; NONCE]).await?;
        answer(&mut end, &key, &request, connected).await?;
        // What comes next is the service's: echo a line.
        end.write_all(b"from the service").await.map_err(io)?;
        Ok(request.target)
    }

    #[actix::test]
    async fn a_master_and_its_relay_agree_and_then_carry_bytes() {
        let (mut m, r) = tokio::io::duplex(4096);
        let server = actix::spawn(relay(r, key(1), true));
        ask(&mut m, &key(1), [7u8; NONCE], "web-x-alice-dev:8080").await.unwrap();
        let mut got = [0u8; 16];
        m.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from the service");
        assert_eq!(server.await.unwrap().unwrap(), "web-x-alice-dev:8080");
    }

    #[actix::test]
    async fn a_wrong_key_gets_nothing_either_way() {
        // A tenant without the key: the relay hangs up, having said nothing but hello.
        let (mut m, r) = tokio::io::duplex(4096);
        let server = actix::spawn(relay(r, key(1), true));
        let e = ask(&mut m, &key(2), [7u8; NONCE], "web:8080").await.unwrap_err();
        assert!(matches!(e, Refusal::NotAuthentic(_)), "{e:?}");
        assert!(matches!(server.await.unwrap(), Err(Refusal::NotAuthentic(_))));
        // Another network's key is another key.
        assert_ne!(Secret([1; 32]).network_key("alice-dev"), Secret([1; 32]).network_key("bob-dev"));
        // An impostor in the relay's place (it does not know the key) says "connected": the
        // master does not believe it, and sends it nothing more.
        let (mut m, mut r) = tokio::io::duplex(4096);
        let impostor = actix::spawn(async move {
            let mut hello = MAGIC.to_vec();
            hello.extend_from_slice(&[9u8; NONCE]);
            r.write_all(&hello).await.unwrap();
            let mut request = [0u8; NONCE + 2 + 8 + TAG];
            r.read_exact(&mut request).await.unwrap();
            let mut yes = vec![0u8];
            yes.extend_from_slice(&[0u8; TAG]);
            r.write_all(&yes).await.unwrap();
            r
        });
        let e = ask(&mut m, &key(1), [7u8; NONCE], "web:8080").await.unwrap_err();
        assert!(matches!(e, Refusal::NotAuthentic(_)), "{e:?}");
        drop(impostor.await.unwrap());
    }

    #[actix::test]
    async fn a_refused_target_is_told_and_nothing_follows() {
        let (mut m, r) = tokio::io::duplex(4096);
        let server = actix::spawn(relay(r, key(1), false));
        assert_eq!(ask(&mut m, &key(1), [7u8; NONCE], "web:8080").await, Err(Refusal::TargetRefused));
        let _ = server.await;
    }

    #[actix::test]
    async fn a_replayed_request_fails_against_a_fresh_nonce() {
        // Record what a master sent to a relay whose nonce was [9; 32]...
        let (mut m, mut r) = tokio::io::duplex(4096);
        let k = key(1);
        let master = actix::spawn(async move { ask(&mut m, &key(1), [7u8; NONCE], "web:8080").await });
        let mut hello = Vec::new();
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&[9u8; NONCE]);
        r.write_all(&hello).await.unwrap();
        let mut recorded = vec![0u8; NONCE + 2 + 8 + TAG];
        r.read_exact(&mut recorded).await.unwrap();
        drop(r);
        let _ = master.await;
        // ...and play it to a relay with another nonce.
        let (mut attacker, mut relay_end) = tokio::io::duplex(4096);
        let server = actix::spawn(async move { hear(&mut relay_end, &k, [8u8; NONCE]).await });
        let mut greeting = [0u8; MAGIC.len() + NONCE];
        attacker.read_exact(&mut greeting).await.unwrap();
        attacker.write_all(&recorded).await.unwrap();
        assert!(matches!(server.await.unwrap(), Err(Refusal::NotAuthentic(_))));
    }

    #[test]
    fn keys_read_back_and_subnets_contain() {
        let k = key(5);
        assert_eq!(Secret::from_hex(&k.to_hex()).unwrap(), k);
        assert!(Secret::from_hex("abc").is_err());
        assert_eq!(format!("{k:?}"), "Secret(..)", "never printed");
        let nets = vec!["10.78.3.0/24".to_string(), "fd00::/64".to_string()];
        assert!(in_subnets("10.78.3.17".parse().unwrap(), &nets));
        assert!(!in_subnets("10.78.4.17".parse().unwrap(), &nets));
        assert!(!in_subnets("172.18.0.1".parse().unwrap(), &nets));
        assert!(in_subnets("fd00::5".parse().unwrap(), &nets));
        assert!(!in_subnets("10.78.3.17".parse().unwrap(), &["garbage".to_string()]));
    }
}
