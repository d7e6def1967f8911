//! Web sessions: what `POST /login` gives a browser instead of the basic-auth prompt.
//!
//! A session is a random cookie (256 bits) of Zoe's origin; the master keeps only a keyed digest
//! of it, with the user it signed in (id, name, role) and a digest of their stored password hash
//! at that moment. It is accepted by Zoe's pages and by the `/proxy/` entry, never by the API
//! (which keeps basic auth and tokens, and never redirects) nor on application hosts (which never
//! reach Zoe's routes, and take only their own cookie). It ends:
//!
//! - after `session-hours` from the sign-in, whatever its use;
//! - at `POST /logout`;
//! - when its user is deleted, their role changes, or their password changes: every use compares
//!   the session with the user as the newest state has it ([`Session::still_valid`]);
//! - when the master restarts: the table is in memory only, like the CSRF tokens' key.
//!
//! The table is bounded per user (their oldest session goes first) and in all (expired sessions
//! make room, then the oldest).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use zoe_actors::Caller;
use zoe_checkpoints::Role;

use crate::keyed;

/// The sessions a user may have at once (browsers, devices): beyond, their oldest ends.
pub const PER_USER: usize = 32;
/// The sessions of all users at once, at most.
pub const MAX_SESSIONS: usize = 20_000;

/// The name of the session cookie: with the `__Host-` prefix under TLS, which makes browsers
/// refuse it unless it was set by this very host, `Secure`, with `Path=/` and no `Domain`.
pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-zoe-session"
    } else {
        "zoe-session"
    }
}

/// The `Set-Cookie` value of a new session: this host only (no `Domain`), every path, never
/// for scripts, not sent with requests other sites make (except opening a page), `Secure` under
/// TLS. No `Max-Age`: the browser forgets it when it closes, the master at `session-hours`.
pub fn set_cookie(value: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}", cookie_name(https))
}

/// The `Set-Cookie` value that makes a browser forget its session cookie.
pub fn clear_cookie(https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}", cookie_name(https))
}

type Key = [u8; 32];

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub caller: Caller,
    /// A digest of the user's stored password hash at the sign-in.
    password: [u8; 16],
    pub expires: Instant,
}

impl Session {
    /// Whether the session still speaks for its user: they exist with the same id and role,
    /// and the same stored password hash.
    pub fn still_valid(&self, id: u64, role: Role, password_hash: &str, sessions: &WebSessions) -> bool {
        self.caller.id == id && self.caller.role == role && self.password == sessions.password_digest(password_hash)
    }
}

/// The sessions of one master.
pub struct WebSessions {
    secret: [u8; 32],
    lifetime: Duration,
    per_user: usize,
    max: usize,
    table: Mutex<HashMap<Key, Session>>,
}

impl WebSessions {
    /// Sessions that last `lifetime` (a zero one is one second: a session must be usable once).
    pub fn new(lifetime: Duration) -> Self {
        Self::bounded(lifetime, PER_USER, MAX_SESSIONS)
    }

    pub fn bounded(lifetime: Duration, per_user: usize, max: usize) -> Self {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        WebSessions {
            secret,
            lifetime: lifetime.max(Duration::from_secs(1)),
            per_user: per_user.max(1),
            max: max.max(1),
            table: Mutex::default(),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn key(&self, cookie: &str) -> Key {
        keyed::digest(&self.secret, b"zoe-web-session", cookie)
    }

    fn password_digest(&self, password_hash: &str) -> [u8; 16] {
        keyed::short_digest(&self.secret, b"zoe-session-password", password_hash)
    }

    /// Starts a session for `caller`, whose stored password hash is `password_hash`: the value
    /// of its cookie (shown this once; the table keeps a digest).
    pub fn begin(&self, caller: Caller, password_hash: &str, now: Instant) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let session = Session { password: self.password_digest(password_hash), expires: now + self.lifetime, caller };
        if let Ok(mut table) = self.table.lock() {
            let user = session.caller.id;
            loop {
                let mine = table.iter().filter(|(_, s)| s.caller.id == user);
                if mine.clone().count() < self.per_user {
                    break;
                }
                let Some(oldest) = mine.min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else { break };
                table.remove(&oldest);
            }
            if table.len() >= self.max {
                table.retain(|_, s| s.expires > now);
                while table.len() >= self.max {
                    let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else { break };
                    table.remove(&oldest);
                }
            }
            table.insert(self.key(&cookie), session);
        }
        cookie
    }

    /// The session of the first of `cookies` that is a live one and that `valid` still accepts
    /// (a browser may send several cookies of one name). Expired sessions and those `valid`
    /// refuses end here.
    pub fn find<'c>(
        &self,
        cookies: impl Iterator<Item = &'c str>,
        now: Instant,
        valid: impl Fn(&Session) -> bool,
    ) -> Option<Session> {
        let mut table = self.table.lock().ok()?;
        for c in cookies {
            let key = self.key(c);
            let Some(s) = table.get(&key) else { continue };
            if s.expires <= now || !valid(s) {
                table.remove(&key);
                continue;
            }
            return Some(s.clone());
        }
        None
    }

    /// Ends the sessions of `cookies`.
    pub fn end<'c>(&self, cookies: impl Iterator<Item = &'c str>) {
        if let Ok(mut table) = self.table.lock() {
            for c in cookies {
                table.remove(&self.key(c));
            }
        }
    }

    /// Forgets expired sessions and those `valid` refuses (a deleted or changed user).
    pub fn sweep(&self, now: Instant, valid: impl Fn(&Session) -> bool) {
        if let Ok(mut table) = self.table.lock() {
            table.retain(|_, s| s.expires > now && valid(s));
        }
    }

    /// Sessions held (for tests of the bounds).
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    fn caller(id: u64) -> Caller {
        Caller { id, name: format!("u{id}"), role: Role::User }
    }

    #[test]
    fn a_session_lives_its_time_and_ends_with_its_user_or_at_sign_out() {
        let s = WebSessions::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        let c = s.begin(caller(1), "hash-1", t0);
        assert_eq!(c.len(), 43);
        let ok = |sess: &Session| sess.still_valid(1, Role::User, "hash-1", &s);
        assert_eq!(s.find(["junk", c.as_str()].into_iter(), t0, ok).map(|x| x.caller.id), Some(1));
        assert!(s.find(["junk"].into_iter(), t0, ok).is_none());
        let later = t0 + Duration::from_secs(3599);
        assert!(s.find([c.as_str()].into_iter(), later, ok).is_some());
        assert!(s.find([c.as_str()].into_iter(), t0 + Duration::from_secs(3600), ok).is_none(), "expired");
        assert!(s.is_empty(), "an expired session is forgotten");

        // A changed password, role or id ends it, for good.
        for (id, role, hash) in [(1, Role::User, "hash-2"), (1, Role::Guest, "hash-1"), (2, Role::User, "hash-1")] {
            let c = s.begin(caller(1), "hash-1", t0);
            assert!(s.find([c.as_str()].into_iter(), t0, |x| x.still_valid(id, role, hash, &s)).is_none());
            assert!(s.find([c.as_str()].into_iter(), t0, ok).is_none(), "ended, even if the change is undone");
        }
        let c = s.begin(caller(1), "hash-1", t0);
        s.end([c.as_str()].into_iter());
        assert!(s.find([c.as_str()].into_iter(), t0, ok).is_none(), "signed out");
    }

    #[test]
    fn sessions_are_bounded_per_user_and_in_all() {
        let s = WebSessions::bounded(Duration::from_secs(60), 3, 10);
        let t0 = Instant::now();
        let theirs = s.begin(caller(2), "h", t0);
        let mine: Vec<String> = (0..20).map(|i| s.begin(caller(1), "h", t0 + Duration::from_millis(i))).collect();
        assert_eq!(s.len(), 4);
        let any = |_: &Session| true;
        assert!(s.find([mine[0].as_str()].into_iter(), t0, any).is_none(), "the oldest went");
        assert!(s.find([mine[19].as_str()].into_iter(), t0, any).is_some());
        assert!(s.find([theirs.as_str()].into_iter(), t0, any).is_some(), "another user's stays");
        for u in 10..40 {
            s.begin(caller(u), "h", t0 + Duration::from_secs(u));
        }
        assert_eq!(s.len(), 10);
        // The newest ten (made at 30 s to 39 s) remain; at 96 s, those made after 36 s live.
        s.sweep(t0 + Duration::from_secs(96), any);
        assert_eq!(s.len(), 3, "expired ones are swept");
        assert_eq!(set_cookie("v", false), "zoe-session=v; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(set_cookie("v", true), "__Host-zoe-session=v; Path=/; HttpOnly; SameSite=Lax; Secure");
    }
}
