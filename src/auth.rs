//! HTTP basic authentication with argon2id password hashes.
//!
//! Hashing and verification run on actix-web's blocking pool, never on the state actor. A
//! successful verification is remembered for a short time under a keyed digest of
//! (user, password, stored hash): the cache never holds a password, and it forgets a user as
//! soon as their hash changes or they are deleted (the lookup goes through the state actor
//! first). Failed logins are throttled per user and client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use blake2::{Blake2s256, Digest};
use zoe_actors::state_actor::LookupCredentials;
use zoe_actors::{Caller, Code};

use crate::error::ApiError;
use crate::AppData;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes a password as an argon2id PHC string. CPU-heavy: call it from the blocking pool.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Checks a password against a PHC string. CPU-heavy: call it from the blocking pool.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// The authenticator shared by all HTTP workers.
pub struct Auth {
    secret: [u8; 32],
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    /// One verification at a time per credential: concurrent requests with the same
    /// credentials wait for the first one's result instead of all paying argon2.
    in_progress: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    failures: Mutex<HashMap<(String, IpAddr), (u32, Instant)>>,
    max_failures: u32,
    window: Duration,
    /// Verified against when the user does not exist, so that unknown and known users take
    /// the same time to refuse.
    dummy_hash: String,
}

const MAX_ENTRIES: usize = 100_000;

impl Auth {
    pub fn new(ttl: Duration, max_failures: u32, window: Duration) -> Result<Self, String> {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Ok(Auth {
            secret,
            ttl,
            cache: Mutex::new(HashMap::new()),
            in_progress: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            max_failures,
            window,
            dummy_hash: hash_password("zoe-dummy-password")?,
        })
    }

    fn digest(&self, name: &str, password: &str, phc: &str) -> [u8; 32] {
        let mut h = Blake2s256::new();
        h.update(self.secret);
        for part in [name, password, phc] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let Ok(cache) = self.cache.lock() else { return false };
        cache.get(key).is_some_and(|t| t.elapsed() < self.ttl)
    }

    fn remember(&self, key: [u8; 32]) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                cache.retain(|_, t| t.elapsed() < ttl);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now());
        }
    }

    fn gate(&self, key: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        match self.in_progress.lock() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Forgets the gate of `key` once nobody holds or waits for it.
    fn ungate(&self, key: &[u8; 32]) {
        if let Ok(mut m) = self.in_progress.lock() {
            if m.get(key).is_some_and(|g| Arc::strong_count(g) == 1) {
                m.remove(key);
            }
        }
    }

    fn throttled(&self, name: &str, ip: IpAddr) -> bool {
        let Ok(f) = self.failures.lock() else { return false };
        f.get(&(name.to_string(), ip))
            .is_some_and(|(n, since)| *n >= self.max_failures && since.elapsed() < self.window)
    }

    fn record_failure(&self, name: &str, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            if f.len() >= MAX_ENTRIES {
                let window = self.window;
                f.retain(|_, (_, since)| since.elapsed() < window);
            }
            let e = f.entry((name.to_string(), ip)).or_insert((0, Instant::now()));
            if e.1.elapsed() >= self.window {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    fn clear_failures(&self, name: &str, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&(name.to_string(), ip));
        }
    }

    /// Authenticates a request, or says why not.
    pub async fn authenticate(&self, data: &AppData, req: &HttpRequest) -> Result<Caller, ApiError> {
        let (name, password) = basic_credentials(req).ok_or_else(unauthorized)?;
        let ip = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if self.throttled(&name, ip) {
            return Err(ApiError::new(
                Code::TooManyFailedLogins,
                format!(
                    "too many failed logins for {name} from {ip}; wait {} seconds and try again",
                    self.window.as_secs()
                ),
            ));
        }
        let creds = data.state.send(LookupCredentials { name: name.clone() }).await?;
        let (phc, caller) = match creds {
            Some(c) => (c.password_hash, Some(c.caller)),
            None => (self.dummy_hash.clone(), None),
        };
        let key = self.digest(&name, &password, &phc);
        let ok = if caller.is_some() && self.cached(&key) {
            true
        } else if password.len() > MAX_PASSWORD_BYTES {
            false
        } else {
            let gate = self.gate(key);
            let _turn = gate.lock().await;
            if caller.is_some() && self.cached(&key) {
                true
            } else {
                let phc = phc.clone();
                let ok = web::block(move || verify_password(&password, &phc))
                    .await
                    .map_err(|e| ApiError::new(Code::Internal, format!("password check failed: {e}")))?;
                if ok && caller.is_some() {
                    self.remember(key);
                }
                ok
            }
        };
        self.ungate(&key);
        match caller {
            Some(caller) if ok => {
                self.remember(key);
                self.clear_failures(&name, ip);
                Ok(caller)
            }
            _ => {
                self.record_failure(&name, ip);
                Err(unauthorized())
            }
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(Code::Unauthorized, "Cannot authenticate your request, provide proper credentials")
}

/// The user name and password of an `Authorization: Basic` header.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4 * MAX_PASSWORD_BYTES {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// Extractor: the authenticated caller of a request.
pub struct Authed(pub Caller);

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let data = req
                .app_data::<web::Data<AppData>>()
                .ok_or_else(|| ApiError::new(Code::Internal, "application data missing"))?
                .clone();
            data.auth.authenticate(&data, &req).await.map(Authed)
        })
    }
}
