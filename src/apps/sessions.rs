//! Who may use an application host: one-time tickets made on Zoe's origin, and the cookies an
//! application host gives for them.
//!
//! - A **ticket** is made by `/proxy/...` on Zoe's origin for a caller Zoe has authenticated and
//!   one port of one instance of one execution (a [`Grant`]). It is random (256 bits), single
//!   use, valid for [`TICKET_TTL`], and only on the host of that port.
//! - A **chain** of tickets signs a browser in to every exposed port of an execution at once
//!   (at most [`MAX_CHAIN`] hosts): one ticket per host, each valid on its own host only. The
//!   first is random; each next one is derived from the one before with the master's key, so
//!   only the holder of a ticket learns the next one, and the tables still hold digests only.
//!   Exchanging a ticket of a chain tells the host where to send the browser next: the next
//!   host's label (kept here, never read from the request), and at the end the first host.
//! - A **cookie** is what the application host gives in exchange: random too, host-only, and
//!   valid only on the host it was given for, for the caller and port of its ticket. It dies
//!   when it has not been used for [`COOKIE_IDLE`], when its execution ends (the proxy checks the
//!   execution at every request, and [`Sessions::sweep`] forgets cookies of ended executions),
//!   and when the master restarts.
//!
//! Both tables are bounded: per user (a hostile user cannot crowd others out) and in all (the
//! oldest go first). Neither holds a ticket or cookie itself, only a keyed digest of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use blake2::{Blake2s256, Digest};
use zoe_actors::Caller;

/// How long a ticket may wait to be exchanged.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long a cookie lives without use.
pub const COOKIE_IDLE: Duration = Duration::from_secs(24 * 3600);

/// The most hosts one sign-in covers: an execution with more exposed ports signs in to the one
/// asked for only (browsers follow about 20 redirects at most).
pub const MAX_CHAIN: usize = 16;

/// The bounds of both tables.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub tickets: usize,
    pub tickets_per_user: usize,
    pub cookies: usize,
    pub cookies_per_user: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { tickets: 10_000, tickets_per_user: 4 * MAX_CHAIN, cookies: 20_000, cookies_per_user: 8 * MAX_CHAIN }
    }
}

/// What a ticket or cookie allows: `caller` may use port `port` of instance `instance` of
/// execution `execution`, served at the application host `label`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub caller: Caller,
    pub execution: u64,
    pub instance: String,
    pub port: u16,
    /// The host name label (see `naming::app_host_label`).
    pub label: String,
}

type Key = [u8; 32];

struct Entry {
    grant: Arc<Grant>,
    /// When the ticket was made, or when the cookie was last used.
    at: Instant,
    /// A ticket of a chain: where the browser goes after exchanging it.
    then: Option<Arc<Then>>,
}

/// Where a browser goes after exchanging a ticket of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    /// To the sign-in of the host with this label, with the next ticket of the chain.
    SignIn { label: String },
    /// To the page asked for, on the host with this label (the first of the chain).
    Home { label: String },
}

/// What exchanging a ticket gives: the new cookie, what it allows, and where the browser goes
/// next (`None`: to the page asked for, on this host).
pub struct Exchanged {
    pub cookie: String,
    pub grant: Arc<Grant>,
    pub then: Option<Then>,
}

/// The tickets and cookies of one master.
pub struct Sessions {
    secret: [u8; 32],
    bounds: Bounds,
    tickets: Mutex<Table>,
    cookies: Mutex<Table>,
}

/// Entries by key, with a count per user.
#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    per_user: HashMap<u64, usize>,
}

impl Table {
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        if let Some(n) = self.per_user.get_mut(&e.grant.caller.id) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&e.grant.caller.id);
            }
        }
        Some(e)
    }

    /// The key of the oldest entry, of one user or of all.
    fn oldest(&self, user: Option<u64>) -> Option<Key> {
        self.entries
            .iter()
            .filter(|(_, e)| user.is_none_or(|u| e.grant.caller.id == u))
            .min_by_key(|(_, e)| e.at)
            .map(|(k, _)| *k)
    }

    /// Adds an entry, making room first: the user's oldest beyond `per_user`, then expired
    /// entries and the oldest of all beyond `max`.
    fn insert(&mut self, key: Key, entry: Entry, per_user: usize, max: usize, expired: impl Fn(&Entry) -> bool) {
        let user = entry.grant.caller.id;
        while self.per_user.get(&user).is_some_and(|n| *n >= per_user.max(1)) {
            let Some(k) = self.oldest(Some(user)) else { break };
            self.remove(&k);
        }
        if self.entries.len() >= max.max(1) {
            let gone: Vec<Key> = self.entries.iter().filter(|(_, e)| expired(e)).map(|(k, _)| *k).collect();
            for k in gone {
                self.remove(&k);
            }
            while self.entries.len() >= max.max(1) {
                let Some(k) = self.oldest(None) else { break };
                self.remove(&k);
            }
        }
        *self.per_user.entry(user).or_default() += 1;
        self.entries.insert(key, entry);
    }
}

/// A new random token: 256 bits, URL-safe base64 (43 characters).
fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    pub fn new(bounds: Bounds) -> Self {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Sessions { secret, bounds, tickets: Mutex::default(), cookies: Mutex::default() }
    }

    /// The keyed digest a token is kept under.
    fn key(&self, kind: &[u8], token: &str) -> Key {
        let mut h = Blake2s256::new();
        h.update(self.secret);
        h.update(kind);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    /// The ticket that follows `ticket` in a chain: a keyed digest of it.
    pub fn successor(&self, ticket: &str) -> String {
        let mut h = Blake2s256::new();
        h.update(self.secret);
        h.update(b"next ticket");
        h.update(ticket.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// A ticket for `grant`, to be exchanged on its host within [`TICKET_TTL`].
    pub fn ticket(&self, grant: Grant, now: Instant) -> String {
        self.chain(vec![grant], now)
    }

    /// A chain of tickets for `grants` (at most [`MAX_CHAIN`]; beyond, the first only), one per
    /// host, to be exchanged in turn within [`TICKET_TTL`]: the first of them. Exchanging one
    /// sends the browser to the next host, and the last back to the first host.
    pub fn chain(&self, mut grants: Vec<Grant>, now: Instant) -> String {
        if grants.len() > MAX_CHAIN {
            grants.truncate(1);
        }
        let first = token();
        let Ok(mut table) = self.tickets.lock() else { return first };
        let home = grants.first().map(|g| g.label.clone()).unwrap_or_default();
        let labels: Vec<String> = grants.iter().map(|g| g.label.clone()).collect();
        let expired = |e: &Entry| now.saturating_duration_since(e.at) >= TICKET_TTL;
        let mut t = first.clone();
        for (i, grant) in grants.into_iter().enumerate() {
            let then = match labels.get(i + 1) {
                Some(label) => Some(Then::SignIn { label: label.clone() }),
                None if i > 0 => Some(Then::Home { label: home.clone() }),
                None => None,
            };
            let entry = Entry { grant: Arc::new(grant), at: now, then: then.map(Arc::new) };
            table.insert(self.key(b"ticket", &t), entry, self.bounds.tickets_per_user, self.bounds.tickets, expired);
            t = self.successor(&t);
        }
        first
    }

    /// Exchanges a ticket on application host `label` for a new cookie: the ticket is used up
    /// whatever happens; the cookie is made only if the ticket was valid, fresh and for this host.
    pub fn exchange(&self, ticket: &str, label: &str, now: Instant) -> Option<Exchanged> {
        let entry = self.tickets.lock().ok()?.remove(&self.key(b"ticket", ticket))?;
        if entry.grant.label != label || now.saturating_duration_since(entry.at) >= TICKET_TTL {
            return None;
        }
        let c = token();
        let key = self.key(b"cookie", &c);
        let mut table = self.cookies.lock().ok()?;
        let expired = |e: &Entry| now.saturating_duration_since(e.at) >= COOKIE_IDLE;
        let grant = entry.grant;
        table.insert(
            key,
            Entry { grant: grant.clone(), at: now, then: None },
            self.bounds.cookies_per_user,
            self.bounds.cookies,
            expired,
        );
        Some(Exchanged { cookie: c, grant, then: entry.then.as_deref().cloned() })
    }

    /// The grant of the first of `cookies` that is valid on application host `label`, if any
    /// (a browser may send several cookies of the same name: others may have been set for a
    /// parent domain by another host's page). Counts as its use.
    pub fn session<'c>(&self, cookies: impl Iterator<Item = &'c str>, label: &str, now: Instant) -> Option<Arc<Grant>> {
        let mut table = self.cookies.lock().ok()?;
        for c in cookies {
            let key = self.key(b"cookie", c);
            let Some(e) = table.entries.get_mut(&key) else { continue };
            if e.grant.label != label {
                continue;
            }
            if now.saturating_duration_since(e.at) >= COOKIE_IDLE {
                table.remove(&key);
                continue;
            }
            e.at = now;
            return Some(e.grant.clone());
        }
        None
    }

    /// Forgets every cookie of execution `id` (it no longer runs).
    pub fn end(&self, id: u64) {
        if let Ok(mut table) = self.cookies.lock() {
            let gone: Vec<Key> =
                table.entries.iter().filter(|(_, e)| e.grant.execution == id).map(|(k, _)| *k).collect();
            for k in gone {
                table.remove(&k);
            }
        }
    }

    /// Forgets expired tickets and cookies, and cookies whose grant is no longer `live` (an
    /// ended execution, a deleted user).
    pub fn sweep(&self, now: Instant, live: impl Fn(&Grant) -> bool) {
        for (table, ttl) in [(&self.tickets, TICKET_TTL), (&self.cookies, COOKIE_IDLE)] {
            if let Ok(mut table) = table.lock() {
                let gone: Vec<Key> = table
                    .entries
                    .iter()
                    .filter(|(_, e)| now.saturating_duration_since(e.at) >= ttl || !live(&e.grant))
                    .map(|(k, _)| *k)
                    .collect();
                for k in gone {
                    table.remove(&k);
                }
            }
        }
    }

    /// Tickets and cookies held (for tests of the bounds).
    pub fn sizes(&self) -> (usize, usize) {
        let n = |t: &Mutex<Table>| t.lock().map(|t| t.entries.len()).unwrap_or(0);
        (n(&self.tickets), n(&self.cookies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoe_checkpoints::Role;

    fn grant(user: u64, execution: u64, label: &str) -> Grant {
        Grant {
            caller: Caller { id: user, name: format!("u{user}"), role: Role::User },
            execution,
            instance: "web".into(),
            port: 8080,
            label: label.into(),
        }
    }

    #[test]
    fn a_ticket_is_used_once_on_its_own_host_within_its_time() {
        let s = Sessions::new(Bounds::default());
        let t0 = Instant::now();
        let t = s.ticket(grant(1, 7, "8080-web-7"), t0);
        assert_eq!(t.len(), 43);
        assert!(s.exchange(&t, "8080-web-8", t0).is_none(), "another execution's host");
        assert!(s.exchange(&t, "8080-web-7", t0).is_none(), "used up by the failed try");
        let t = s.ticket(grant(1, 7, "8080-web-7"), t0);
        let Exchanged { cookie: c, grant: g, then } = s.exchange(&t, "8080-web-7", t0).unwrap();
        assert_eq!((g.execution, g.caller.id, then), (7, 1, None));
        assert!(s.exchange(&t, "8080-web-7", t0).is_none(), "single use");
        let late = s.ticket(grant(1, 7, "8080-web-7"), t0);
        assert!(s.exchange(&late, "8080-web-7", t0 + TICKET_TTL).is_none(), "too late");
        assert!(s.exchange("made-up", "8080-web-7", t0).is_none());

        // The cookie works on its host only, among other cookies of the same name.
        let cookies = ["junk", c.as_str()];
        assert_eq!(s.session(cookies.into_iter(), "8080-web-7", t0).map(|g| g.execution), Some(7));
        assert!(s.session(cookies.into_iter(), "8080-web-8", t0).is_none(), "another host");
        assert!(s.session([t.as_str()].into_iter(), "8080-web-7", t0).is_none(), "a ticket is no cookie");
        // It lives while used, and dies unused or with its execution.
        let later = t0 + COOKIE_IDLE - Duration::from_secs(1);
        assert!(s.session([c.as_str()].into_iter(), "8080-web-7", later).is_some());
        assert!(s.session([c.as_str()].into_iter(), "8080-web-7", later + COOKIE_IDLE).is_none());
        let t = s.ticket(grant(1, 7, "8080-web-7"), t0);
        let c = s.exchange(&t, "8080-web-7", t0).unwrap().cookie;
        s.end(7);
        assert!(s.session([c.as_str()].into_iter(), "8080-web-7", t0).is_none(), "the execution ended");
    }

    #[test]
    fn a_chain_signs_in_to_each_host_in_turn_and_ends_where_it_began() {
        let s = Sessions::new(Bounds::default());
        let t0 = Instant::now();
        let hosts = ["8888-nb-7", "8080-ui-7", "4040-ui-7"];
        let first = s.chain(hosts.iter().map(|h| grant(1, 7, h)).collect(), t0);
        assert_eq!(s.sizes().0, 3);
        // Each ticket is valid on its own host only; a wrong try uses it up (and the chain ends).
        let second = s.successor(&first);
        assert!(s.exchange(&second, hosts[0], t0).is_none(), "the second ticket on the first host");
        let first = s.chain(hosts.iter().map(|h| grant(1, 7, h)).collect(), t0);
        let mut t = first.clone();
        let mut went = Vec::new();
        for host in hosts {
            let e = s.exchange(&t, host, t0).unwrap_or_else(|| panic!("the ticket of {host}"));
            assert_eq!(e.grant.label, host);
            assert!(s.session([e.cookie.as_str()].into_iter(), host, t0).is_some(), "signed in to {host}");
            went.push(e.then.unwrap());
            t = s.successor(&t);
        }
        let to = |l: &str| Then::SignIn { label: l.to_string() };
        assert_eq!(went, [to(hosts[1]), to(hosts[2]), Then::Home { label: hosts[0].to_string() }]);
        assert!(s.exchange(&first, hosts[0], t0).is_none(), "single use");
        assert_eq!(s.successor(&first), s.successor(&first), "derived, the same each time");
        assert_ne!(Sessions::new(Bounds::default()).successor(&first), s.successor(&first), "with the master's key");
        // Longer than a chain may be: the first host only.
        let many: Vec<Grant> = (0..=MAX_CHAIN).map(|i| grant(1, 7, &format!("{}-ui-7", 1000 + i))).collect();
        let t = s.chain(many, t0);
        let e = s.exchange(&t, "1000-ui-7", t0).unwrap();
        assert_eq!(e.then, None);
        assert!(s.exchange(&s.successor(&t), "1001-ui-7", t0).is_none());
    }

    #[test]
    fn tables_are_bounded_per_user_and_in_all() {
        let bounds = Bounds { tickets: 50, tickets_per_user: 5, cookies: 40, cookies_per_user: 10 };
        let s = Sessions::new(bounds);
        let t0 = Instant::now();
        // A hostile user makes many tickets: only the newest 5 stay, others' are untouched.
        let theirs = s.ticket(grant(2, 9, "8080-web-9"), t0);
        let mine: Vec<String> =
            (0..100).map(|i| s.ticket(grant(1, 7, "8080-web-7"), t0 + Duration::from_millis(i))).collect();
        assert_eq!(s.sizes().0, 6);
        assert!(s.exchange(&mine[0], "8080-web-7", t0).is_none(), "the oldest went");
        assert!(s.exchange(&theirs, "8080-web-9", t0).is_some(), "another user's ticket stays");
        // And many cookies: at most 10 for them.
        for i in 0..100 {
            let at = t0 + Duration::from_millis(200 + i);
            let t = s.ticket(grant(1, 7, "8080-web-7"), at);
            s.exchange(&t, "8080-web-7", at).unwrap();
        }
        assert_eq!(s.sizes().1, 11);
        // Many users: never more than 40 in all, the oldest going first.
        for u in 10..100 {
            let at = t0 + Duration::from_secs(u);
            let t = s.ticket(grant(u, u, &format!("8080-web-{u}")), at);
            s.exchange(&t, &format!("8080-web-{u}"), at).unwrap();
        }
        assert_eq!(s.sizes().1, 40);
        // The sweep forgets what is no longer live.
        s.sweep(t0 + Duration::from_secs(100), |g| g.execution % 2 == 0);
        assert_eq!(s.sizes(), (0, 20));
    }
}
