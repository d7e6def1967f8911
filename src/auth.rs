//! HTTP basic authentication with argon2id password hashes, and API tokens.
//!
//! `Authorization: Bearer <token>` is accepted wherever basic auth is, and checked first, before
//! any throttling: a token is 256 random bits, kept only as a fast hash
//! ([`zoe_checkpoints::token_hash`]), so a valid one costs one BLAKE2s and passes, and guessing
//! one is hopeless. Its use is written down at most once per
//! [`zoe_checkpoints::TOKEN_USE_GRAIN`] (see [`zoe_actors::logic::tokens`]).
//!
//! Hashing and verification run on actix-web's blocking pool, never on the state actor. A
//! successful verification is remembered for a short time under a keyed digest of
//! (user, password, stored hash): the cache never holds a password, and it forgets a user as
//! soon as their hash changes or they are deleted (the lookup goes through the state actor
//! first). Credentials verified a moment ago pass before any throttling.
//!
//! Failed logins are throttled per user name and client address, and per user name: a guesser
//! gets 429 for that name. Failures under many names from one address (made-up names, a
//! password sprayed over a list of users) never refuse anyone: past the address's limit, that
//! address's logins are verified one at a time, in turn, so a flood from one address is slowed
//! to one verification at a time while the right password of a user with no failures of their
//! own still signs in (behind one NAT address, or one reverse proxy, everybody shares the
//! address). Behind a `trusted-proxy`, the address is the client's, from `X-Forwarded-For` or
//! `Forwarded`. All tables are bounded. Verifications themselves are bounded in number and
//! memory (`passwords`).
//!
//! Users of the directory (`ldap-url`, [`crate::ldap`]) are verified there instead: a name Zoe
//! does not know, and the users Zoe created from the directory (their stored hash is
//! [`DIRECTORY_PASSWORD_HASH`]). Local users never are: a directory entry cannot take over
//! `zoeadmin`, and local users sign in while the directory is down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use blake2::{Blake2s256, Digest};
use zoe_actors::logic::tokens;
use zoe_actors::logic::views::credentials;
use zoe_actors::state_actor::{DirectorySignIn, TokenUsed};
use zoe_actors::Caller;
use zoe_checkpoints::DIRECTORY_PASSWORD_HASH;

use crate::audit::{Audit, Kind};
use crate::error::{ApiError, HttpCode};
use crate::keyed;
use crate::ldap::{Directory, Verdict};
use crate::passwords::Passwords;
pub use crate::passwords::{hash_password, MAX_PASSWORD_BYTES};
use crate::web_sessions::{Session, WebSessions};
use crate::AppData;

/// The authenticator shared by all HTTP workers.
pub struct Auth {
    secret: [u8; 32],
    ttl: Duration,
    /// Hashing and verification, bounded in concurrency and memory.
    pub passwords: Passwords,
    /// Verified credentials: their digest, when, and a fingerprint of the stored hash they were
    /// verified against (a changed password forgets them).
    /// Read-mostly: readers do not wait for each other.
    cache: RwLock<HashMap<[u8; 32], (Instant, u64)>>,
    /// One verification at a time per credential: concurrent requests with the same
    /// credentials wait for the first one's result instead of all paying argon2.
    in_progress: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    failures: Mutex<Failures>,
    /// Addresses past their failure limit: their logins take turns, one at a time.
    address_turns: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
    max_failures: u32,
    window: Duration,
    /// Verified against when the user does not exist, so that unknown and known users take
    /// the same time to refuse.
    dummy_hash: String,
    /// The directory (LDAP), when `ldap-url` is set.
    directory: Option<Directory>,
    /// Sign-ins, failures and token changes, for administrators ([`crate::audit`]).
    pub audit: Audit,
    /// Browsers signed in at `/login` ([`crate::web_sessions`]).
    pub sessions: WebSessions,
}

/// Entries of the credential cache and of each failure table. Failure tables are keyed by a
/// digest of the name (16 bytes), never by the name itself, so made-up names of any length
/// cost the same few bytes, and there are at most this many.
const MAX_ENTRIES: usize = 10_000;

/// A user name may fail this many times more often (from all addresses together) than a (user,
/// address) pair before it is refused for the window; an address that fails this many times
/// more often has its logins take turns.
const ADDRESS_FACTOR: u32 = 10;

/// How long a web session lasts when `session-hours` is not set.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How long a login waits for its address's turn at most, before it is answered 503 `busy`.
const ADDRESS_TURN_WAIT: Duration = Duration::from_secs(30);

/// Failed logins within the window: per (user, address), per user, and per address.
#[derive(Default)]
struct Failures {
    by_user: HashMap<([u8; 16], IpAddr), (u32, Instant)>,
    by_name: HashMap<[u8; 16], (u32, Instant)>,
    by_address: HashMap<IpAddr, (u32, Instant)>,
}

/// Counts one failure in a bounded table: expired entries make room first, then the oldest.
fn count_failure<K: std::hash::Hash + Eq + Copy>(table: &mut HashMap<K, (u32, Instant)>, key: K, window: Duration) {
    if table.len() >= MAX_ENTRIES && !table.contains_key(&key) {
        table.retain(|_, (_, since)| since.elapsed() < window);
        if table.len() >= MAX_ENTRIES {
            if let Some(oldest) = table.iter().min_by_key(|(_, (_, since))| *since).map(|(k, _)| *k) {
                table.remove(&oldest);
            }
        }
    }
    let e = table.entry(key).or_insert((0, Instant::now()));
    if e.1.elapsed() >= window {
        *e = (0, Instant::now());
    }
    e.0 += 1;
}

/// The seconds left until a throttled entry's window ends, if it is throttled.
fn throttled_for<K: std::hash::Hash + Eq>(
    table: &HashMap<K, (u32, Instant)>,
    key: &K,
    max: u32,
    window: Duration,
) -> Option<u64> {
    let (n, since) = table.get(key)?;
    let left = window.checked_sub(since.elapsed())?;
    (*n >= max).then(|| left.as_secs() + u64::from(left.subsec_nanos() > 0))
}

impl Auth {
    pub fn new(ttl: Duration, max_failures: u32, window: Duration, passwords: Passwords) -> Result<Self, String> {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Ok(Auth {
            secret,
            ttl,
            passwords,
            cache: RwLock::new(HashMap::new()),
            in_progress: Mutex::new(HashMap::new()),
            failures: Mutex::default(),
            address_turns: Mutex::default(),
            max_failures,
            window,
            dummy_hash: hash_password("zoe-dummy-password")?,
            directory: None,
            audit: Audit::new(crate::audit::DEFAULT_KEEP),
            sessions: WebSessions::new(DEFAULT_SESSION_LIFETIME),
        })
    }

    /// The same authenticator, with web sessions that last `lifetime`.
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.sessions = WebSessions::new(lifetime);
        self
    }

    /// The same authenticator, verifying the users of `directory` there.
    pub fn with_directory(mut self, directory: Option<Directory>) -> Self {
        self.directory = directory;
        self
    }

    /// The same authenticator, keeping the newest `keep` audit events.
    pub fn with_audit_keep(mut self, keep: usize) -> Self {
        self.audit = Audit::new(keep);
        self
    }

    /// A keyed digest of a user's name and password: what the cache holds instead of passwords.
    fn digest(&self, name: &str, password: &str) -> [u8; 32] {
        let mut h = Blake2s256::new();
        h.update(self.secret);
        for part in [name, password] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// Tells stored hashes apart (not a secret: it only notices that a password changed).
    fn fingerprint(phc: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        phc.hash(&mut h);
        h.finish()
    }

    /// A short keyed digest of a user name, for the failure tables.
    fn name_key(&self, name: &str) -> [u8; 16] {
        keyed::short_digest(&self.secret, b"zoe-login-failures", name)
    }

    fn cached(&self, key: &[u8; 32], phc: &str) -> bool {
        let Ok(cache) = self.cache.read() else { return false };
        cache.get(key).is_some_and(|(t, f)| t.elapsed() < self.ttl && *f == Self::fingerprint(phc))
    }

    fn remember(&self, key: [u8; 32], phc: &str) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                cache.retain(|_, (t, _)| t.elapsed() < ttl);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), Self::fingerprint(phc)));
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

    /// Refuses a login whose user name and address, or whose user name, failed too often.
    /// Says whether the address itself failed too often (then its logins take turns).
    fn check_throttle(&self, name: &str, ip: IpAddr) -> Result<bool, ApiError> {
        let Ok(f) = self.failures.lock() else { return Ok(false) };
        let (max, many) = (self.max_failures, self.max_failures.saturating_mul(ADDRESS_FACTOR));
        let key = self.name_key(name);
        if let Some(secs) = throttled_for(&f.by_user, &(key, ip), max, self.window) {
            return Err(ApiError::new(
                HttpCode::TooManyFailedLogins,
                format!("too many failed logins for {} from {ip}; wait {secs} seconds and try again", shorten(name)),
            )
            .retry_after(secs));
        }
        if let Some(secs) = throttled_for(&f.by_name, &key, many, self.window) {
            return Err(ApiError::new(
                HttpCode::TooManyFailedLogins,
                format!("too many failed logins for {}; wait {secs} seconds and try again", shorten(name)),
            )
            .retry_after(secs));
        }
        Ok(throttled_for(&f.by_address, &ip, many, self.window).is_some())
    }

    /// Waits for the turn of an address past its failure limit: one login at a time from it.
    async fn address_turn(&self, ip: IpAddr) -> Result<tokio::sync::OwnedMutexGuard<()>, ApiError> {
        let turn = match self.address_turns.lock() {
            Ok(mut m) => {
                if m.len() >= MAX_ENTRIES && !m.contains_key(&ip) {
                    m.retain(|_, t| Arc::strong_count(t) > 1);
                }
                m.entry(ip).or_default().clone()
            }
            Err(_) => Arc::default(),
        };
        tokio::time::timeout(ADDRESS_TURN_WAIT, turn.lock_owned()).await.map_err(|_| {
            ApiError::new(
                HttpCode::Busy,
                format!("too many logins from {ip} are waiting their turn; try again in a moment"),
            )
            .retry_after(1)
        })
    }

    /// Records a token's creation or revocation by `who`, through the API or a web page: a log
    /// line and an audit event, with the token's name and owner, never the token.
    pub fn record_token(
        &self,
        req: &HttpRequest,
        trusted_proxies: &[IpAddr],
        kind: Kind,
        who: &str,
        token: &str,
        owner: Option<&str>,
    ) {
        let detail = match owner {
            Some(o) if o != who => format!("{} of {o}", shorten(token)),
            _ => shorten(token),
        };
        let verb = if kind == Kind::TokenRevoked { "revoked" } else { "made" };
        tracing::info!("{who} {verb} token {detail}");
        self.audit.record(kind, who, client_address(req, trusted_proxies), &detail);
    }

    fn record_failure(&self, name: &str, ip: IpAddr) {
        self.audit.record(Kind::SignInFailed, name, ip, "");
        let key = self.name_key(name);
        if let Ok(mut f) = self.failures.lock() {
            count_failure(&mut f.by_user, (key, ip), self.window);
            count_failure(&mut f.by_name, key, self.window);
            count_failure(&mut f.by_address, ip, self.window);
        }
    }

    /// A verified sign-in: its user's failures from this address are forgotten.
    fn clear_failures(&self, name: &str, ip: IpAddr, how: Via) {
        self.audit.record(Kind::SignIn, name, ip, how.detail());
        let key = self.name_key(name);
        if let Ok(mut f) = self.failures.lock() {
            f.by_user.remove(&(key, ip));
        }
    }

    /// Entries in the failure tables (for tests of their bound).
    pub fn failure_entries(&self) -> usize {
        self.failures.lock().map(|f| f.by_user.len() + f.by_name.len() + f.by_address.len()).unwrap_or(0)
    }

    /// Authenticates a request, or says why not.
    pub async fn authenticate(&self, data: &AppData, req: &HttpRequest) -> Result<Caller, ApiError> {
        // A token is checked before any throttling: a valid one always passes, and a made-up one
        // (256 random bits to guess) is refused at the cost of one fast hash.
        if let Some(token) = bearer_token(req) {
            return authenticate_token(data, token);
        }
        let (name, password) = basic_credentials(req).ok_or_else(unauthorized)?;
        self.verify(data, req, name, password, Via::Basic).await
    }

    /// Verifies a user name and password, from basic auth or the sign-in form (`how`): the
    /// credential cache, the throttling, the directory, the audit record. A sign-in through the
    /// form is recorded even when the cache knew the password.
    pub async fn verify(
        &self,
        data: &AppData,
        req: &HttpRequest,
        name: String,
        password: String,
        how: Via,
    ) -> Result<Caller, ApiError> {
        let key = self.digest(&name, &password);
        let published = data.reader.now();
        let user = credentials(&published, &name);
        // The fast path of a client that keeps polling: the same credentials, verified a moment
        // ago against the same stored hash. (They are right, so there is nothing to throttle.)
        if let Some(u) = user {
            if self.cached(&key, &u.password_hash) {
                if how == Via::Form {
                    let ip = client_address(req, &data.config.trusted_proxy);
                    self.audit.record(Kind::SignIn, &name, ip, how.detail());
                }
                return Ok(Caller { id: u.id, name: u.name.clone(), role: u.role });
            }
        }
        let ip = client_address(req, &data.config.trusted_proxy);
        let flooding = self.check_throttle(&name, ip)?;
        // Past its failure limit, an address's logins are verified one at a time.
        let _turn = if flooding { Some(self.address_turn(ip).await?) } else { None };
        let of_directory = match user {
            Some(u) => u.password_hash == DIRECTORY_PASSWORD_HASH,
            None => self.directory.is_some() && zoe_checkpoints::is_dns_label(&name),
        };
        if of_directory {
            return self.authenticate_with_directory(data, (name, password), key, ip, how).await;
        }
        let (phc, caller) = match user {
            Some(u) => (u.password_hash.clone(), Some(Caller { id: u.id, name: u.name.clone(), role: u.role })),
            None => (self.dummy_hash.clone(), None),
        };
        let ok = if password.len() > MAX_PASSWORD_BYTES {
            false
        } else {
            let gate = self.gate(key);
            let turn = gate.lock().await;
            let ok = if caller.is_some() && self.cached(&key, &phc) {
                Ok(true)
            } else {
                self.passwords.verify(password, phc.clone()).await
            };
            drop(turn);
            drop(gate);
            self.ungate(&key);
            ok?
        };
        match caller {
            Some(caller) if ok => {
                self.remember(key, &phc);
                self.clear_failures(&name, ip, how);
                Ok(caller)
            }
            _ => {
                self.record_failure(&name, ip);
                Err(unauthorized())
            }
        }
    }
}

impl Auth {
    /// Verifies a user of the directory there, then creates them or brings their role up to
    /// date. A directory that cannot say is `auth_unavailable` (503), never a 401, and is not
    /// counted as a failed login.
    async fn authenticate_with_directory(
        &self,
        data: &AppData,
        (name, password): (String, String),
        key: [u8; 32],
        ip: IpAddr,
        how: Via,
    ) -> Result<Caller, ApiError> {
        // An empty password never reaches the directory: its bind would be anonymous, and
        // succeed.
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            self.record_failure(&name, ip);
            return Err(unauthorized());
        }
        let Some(directory) = &self.directory else {
            return Err(ApiError::new(
                HttpCode::AuthUnavailable,
                format!("{} signs in through the directory, and no directory is configured (ldap-url)", shorten(&name)),
            ));
        };
        let gate = self.gate(key);
        let turn = gate.lock().await;
        // Another request with the same credentials may have just verified them.
        let cached = credentials(&data.reader.now(), &name)
            .filter(|u| u.password_hash == DIRECTORY_PASSWORD_HASH && self.cached(&key, &u.password_hash))
            .map(|u| Caller { id: u.id, name: u.name.clone(), role: u.role });
        let verdict = match cached {
            Some(caller) => {
                if how == Via::Form {
                    self.audit.record(Kind::SignIn, &name, ip, how.detail());
                }
                Ok(caller)
            }
            None => Err(directory.verify(&name, &password).await),
        };
        drop(turn);
        drop(gate);
        self.ungate(&key);
        let (role, uid) = match verdict {
            Ok(caller) => return Ok(caller),
            Err(Verdict::Accepted { role, uid }) => (role, uid),
            Err(Verdict::Refused) => {
                self.record_failure(&name, ip);
                return Err(unauthorized());
            }
            Err(Verdict::Unavailable(why)) => {
                tracing::warn!("sign-in of {} through the directory: {why}", shorten(&name));
                self.audit.record(Kind::DirectoryUnavailable, &name, ip, "");
                return Err(ApiError::new(
                    HttpCode::AuthUnavailable,
                    "the directory that verifies your password is not available right now; try again later",
                )
                .retry_after(5));
            }
        };
        let user = data.state.send(DirectorySignIn { name: name.clone(), role, uid }).await?.map_err(|e| {
            if e.code == zoe_actors::Code::UserExists {
                // A local user of this name appeared meanwhile: the directory does not speak for them.
                unauthorized()
            } else {
                ApiError::from(e)
            }
        })?;
        self.remember(key, DIRECTORY_PASSWORD_HASH);
        self.clear_failures(&name, ip, how);
        Ok(Caller { id: user.id, name: user.name, role: user.role })
    }
}

/// How a user name and password came: basic auth (API clients, browsers that send it) or the
/// sign-in page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Basic,
    Form,
}

impl Via {
    /// What the audit record says of a sign-in.
    fn detail(self) -> &'static str {
        match self {
            Via::Basic => "",
            Via::Form => "sign-in page",
        }
    }
}

impl Auth {
    /// The session values a request's cookies carry (the cookie of the scheme the client used).
    fn session_cookies<'r>(data: &AppData, req: &'r HttpRequest) -> Vec<&'r str> {
        let https =
            crate::origin::request_scheme(req, &data.config.trusted_proxy, data.config.tls_cert.is_some()) == "https";
        crate::origin::cookie_values(req, crate::web_sessions::cookie_name(https)).collect()
    }

    /// The caller a request's session cookie signs in, if it is a live session whose user is
    /// still as they were when they signed in (not deleted, same role, same password). Several
    /// session cookies (one of them tossed by a page of a sibling host for a parent domain, on
    /// plain HTTP where the `__Host-` prefix cannot forbid it) sign nobody in.
    pub fn session_caller(&self, data: &AppData, req: &HttpRequest) -> Option<Session> {
        let cookies = Self::session_cookies(data, req);
        if cookies.len() != 1 {
            return None;
        }
        let published = data.reader.now();
        self.sessions.find(cookies.into_iter(), std::time::Instant::now(), |s| {
            credentials(&published, &s.caller.name)
                .is_some_and(|u| s.still_valid(u.id, u.role, &u.password_hash, &self.sessions))
        })
    }

    /// Starts a session for a caller just verified: the cookie's value.
    pub fn begin_session(&self, data: &AppData, caller: Caller) -> String {
        let published = data.reader.now();
        // A directory user created a moment ago may not be published yet: their stored hash is
        // the directory's marker.
        let hash = credentials(&published, &caller.name)
            .filter(|u| u.id == caller.id)
            .map_or(DIRECTORY_PASSWORD_HASH.to_string(), |u| u.password_hash.clone());
        self.sessions.begin(caller, &hash, std::time::Instant::now())
    }

    /// Ends the sessions of a request's cookies (signing out).
    pub fn end_sessions(&self, data: &AppData, req: &HttpRequest) {
        self.sessions.end(Self::session_cookies(data, req).into_iter());
    }

    /// Forgets expired sessions and those of users who changed (run now and then).
    pub fn sweep_sessions(&self, data: &AppData) {
        let published = data.reader.now();
        self.sessions.sweep(std::time::Instant::now(), |s| {
            credentials(&published, &s.caller.name)
                .is_some_and(|u| s.still_valid(u.id, u.role, &u.password_hash, &self.sessions))
        });
    }
}

/// Whether a request carries an `Authorization` header (basic auth, a token). A page asked for
/// without one, and without a live session, sends the browser to the sign-in page; with a wrong
/// one, it is refused as the API refuses it (401 and the basic-auth prompt).
pub fn has_authorization(req: &HttpRequest) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
}

/// `/login?next=<this page>`.
pub fn sign_in_path(req: &HttpRequest) -> String {
    let here = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_string(),
    };
    format!("/login?next={}", crate::percent::encode_path(&here))
}

/// The caller a request's API token is, if it is a valid one. Its use is noted, coarsely
/// ([`zoe_checkpoints::TOKEN_USE_GRAIN`]), by a message nobody waits for.
fn authenticate_token(data: &AppData, token: &str) -> Result<Caller, ApiError> {
    let published = data.reader.now();
    let now = time::OffsetDateTime::now_utc();
    let (user, found) = tokens::token_user(&published.state, token, now).ok_or_else(unauthorized)?;
    if tokens::needs_touch(found, now) {
        data.state.do_send(TokenUsed { id: user.id, hash: found.hash.clone() });
    }
    Ok(Caller { id: user.id, name: user.name.clone(), role: user.role })
}

/// A new API token of user `id`: `zoe_<id>_` and 256 random bits (base64url). The id finds the
/// user without a scan; the random part is the secret.
pub fn new_token(id: u64) -> String {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    format!("zoe_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
}

/// The longest `Authorization: Bearer` value looked at: a token is about 70 bytes.
const MAX_TOKEN_BYTES: usize = 256;

/// The token of an `Authorization: Bearer` header.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // A bearer header that is not a token is no token: refused as one, never as basic auth.
    Some(if token.len() > MAX_TOKEN_BYTES { "" } else { token.trim() })
}

/// The client's address: the peer's, or, from a `trusted-proxy`, the nearest address of the
/// forwarding headers that is not one of the trusted proxies (`X-Forwarded-For`, else
/// `Forwarded`'s `for=`; the addresses a client wrote itself are further left, and never
/// reached while a proxy of ours appended its own).
pub fn client_address(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let headers = req.headers();
    let joined =
        |name: header::HeaderName| headers.get_all(name).filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let forwarded_for = joined(header::X_FORWARDED_FOR);
    let chain: Vec<IpAddr> = if !forwarded_for.trim().is_empty() {
        forwarded_for.split(',').filter_map(|a| parse_address(a.trim())).collect()
    } else {
        joined(header::FORWARDED)
            .split([',', ';'])
            .filter_map(|part| {
                let (k, v) = part.trim().split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_address(v.trim().trim_matches('"')))?
            })
            .collect()
    };
    chain.iter().rev().find(|a| !trusted_proxies.contains(a)).copied().unwrap_or(peer)
}

/// An address of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:5678` or `::1`.
fn parse_address(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

/// A user name for a message: made-up names can be long.
pub fn shorten(name: &str) -> String {
    zoe_actors::description::naming::shorten(name, 64)
}

fn unauthorized() -> ApiError {
    ApiError::new(zoe_actors::Code::Unauthorized, "Cannot authenticate your request, provide proper credentials")
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

/// The application's data, which every request of the server has.
fn app_data(req: &HttpRequest) -> Result<web::Data<AppData>, ApiError> {
    let data = req.app_data::<web::Data<AppData>>().cloned();
    data.ok_or_else(|| ApiError::new(HttpCode::Internal, "application data missing"))
}

/// Defines an extractor of the request's caller, which takes a session cookie first when
/// `cookie` is set (see [`extract`]).
macro_rules! caller_extractor {
    ($(#[$doc:meta])* $name:ident, cookie: $cookie:expr) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = CallerFuture<Self>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                extract(req, $cookie, $name)
            }
        }
    };
}

caller_extractor!(
    /// Extractor: the authenticated caller of a request.
    Authed,
    cookie: false
);

caller_extractor!(
    /// Extractor for Zoe's pages and the `/proxy/` entry: the caller of a session cookie, or else
    /// of the API's credentials (basic auth, a token). The API itself never takes the cookie.
    Signed,
    cookie: true
);

/// What the caller extractors give: the extractor, once the caller is known.
type CallerFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ApiError>>>>;

/// The caller of a request, wrapped by `wrap`: of its session cookie first when `cookie` is
/// set, else (or without a live session) of the API's credentials.
fn extract<T: 'static>(req: &HttpRequest, cookie: bool, wrap: fn(Caller) -> T) -> CallerFuture<T> {
    let req = req.clone();
    Box::pin(async move {
        let data = app_data(&req)?;
        if cookie {
            if let Some(session) = data.auth.session_caller(&data, &req) {
                return Ok(wrap(session.caller));
            }
        }
        data.auth.authenticate(&data, &req).await.map(wrap)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn address(peer: &str, headers: &[(&str, &str)], trusted: &[&str]) -> String {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:40000").parse().unwrap());
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let trusted: Vec<IpAddr> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(&req.to_http_request(), &trusted).to_string()
    }

    #[test]
    fn the_client_address_comes_from_forwarding_headers_of_trusted_proxies_only() {
        let xff = [("X-Forwarded-For", "6.6.6.6, 1.2.3.4")];
        assert_eq!(address("10.0.0.1", &xff, &[]), "10.0.0.1", "not a trusted proxy");
        assert_eq!(address("10.0.0.1", &xff, &["10.0.0.1"]), "1.2.3.4", "what the client wrote is further left");
        assert_eq!(
            address("10.0.0.1", &[("X-Forwarded-For", "1.2.3.4, 10.0.0.2")], &["10.0.0.1", "10.0.0.2"]),
            "1.2.3.4"
        );
        assert_eq!(
            address("10.0.0.1", &[("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")], &["10.0.0.1"]),
            "2001:db8::1"
        );
        assert_eq!(address("10.0.0.1", &[("Forwarded", "for=1.2.3.4:80, for=5.6.7.8")], &["10.0.0.1"]), "5.6.7.8");
        assert_eq!(address("10.0.0.1", &[("X-Forwarded-For", "junk")], &["10.0.0.1"]), "10.0.0.1");
        assert_eq!(address("10.0.0.1", &[], &["10.0.0.1"]), "10.0.0.1");
    }
}
