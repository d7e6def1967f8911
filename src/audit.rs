//! The audit record: sign-ins, failed sign-ins, and the creation and revocation of API tokens,
//! with who (the user name as given, shortened) and from where (the client's address, as the
//! throttling sees it). Never a password nor a token.
//!
//! It is kept in memory only, the newest `audit-keep` events (older ones make room), and lost at
//! a restart; the log keeps the same lines (names quoted there, so a made-up one cannot forge
//! a line). A sign-in is recorded when a password was really
//! verified, not when the credential cache, a token or a web session let a request in, so a
//! polling client does not flood it; every sign-in through the sign-in page is recorded (its
//! detail says so). Administrators read it at `GET /api/0.6/audit` and on `/admin/audit`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_actors::description::naming::shorten;

/// The events kept when `audit-keep` is not set.
pub const DEFAULT_KEEP: usize = 1000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AuditKind)]
pub enum Kind {
    SignIn,
    SignInFailed,
    DirectoryUnavailable,
    TokenCreated,
    TokenRevoked,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::SignInFailed => "sign_in_failed",
            Kind::DirectoryUnavailable => "directory_unavailable",
            Kind::TokenCreated => "token_created",
            Kind::TokenRevoked => "token_revoked",
        }
    }
}

/// One event of the audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditEvent, example = json!({"time": "2026-12-07T01:00:00Z", "kind": "token_created", "user": "alice", "address": "10.0.0.7", "detail": "laptop"}))]
pub struct Event {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: time::OffsetDateTime,
    pub kind: Kind,
    /// The user name as given (shortened to 64 characters): a failed sign-in's may be made up.
    pub user: String,
    /// The client's address (behind a `trusted-proxy`, from its forwarding headers).
    pub address: String,
    /// The token's name and owner, for token events; empty otherwise.
    pub detail: String,
}

/// The newest events, bounded.
pub struct Audit {
    keep: usize,
    events: Mutex<VecDeque<Event>>,
}

impl Audit {
    pub fn new(keep: usize) -> Self {
        Audit { keep, events: Mutex::new(VecDeque::new()) }
    }

    /// Records an event; the oldest make room.
    pub fn record(&self, kind: Kind, user: &str, address: IpAddr, detail: &str) {
        // Token changes and an unavailable directory have their own log lines where they happen.
        match kind {
            Kind::SignIn => tracing::info!("sign-in of {:?} from {address}", shorten(user, 64)),
            Kind::SignInFailed => tracing::info!("failed sign-in as {:?} from {address}", shorten(user, 64)),
            _ => {}
        }
        if self.keep == 0 {
            return;
        }
        let event = Event {
            time: time::OffsetDateTime::now_utc(),
            kind,
            user: shorten(user, 64),
            address: address.to_string(),
            detail: shorten(detail, 64),
        };
        if let Ok(mut events) = self.events.lock() {
            while events.len() >= self.keep {
                events.pop_front();
            }
            events.push_back(event);
        }
    }

    /// The newest `limit` events, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Event> {
        self.events.lock().map(|e| e.iter().rev().take(limit).cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_the_newest_and_shortens_names() {
        let audit = Audit::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..5 {
            audit.record(Kind::SignInFailed, &format!("u{i}"), ip, "");
        }
        let names: Vec<String> = audit.newest(10).into_iter().map(|e| e.user).collect();
        assert_eq!(names, ["u4", "u3", "u2"]);
        assert_eq!(audit.newest(1).len(), 1);
        audit.record(Kind::SignIn, &"x".repeat(1000), ip, "");
        assert!(audit.newest(1)[0].user.chars().count() <= 65);
        Audit::new(0).record(Kind::SignIn, "a", ip, "");
    }
}
