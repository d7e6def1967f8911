//! Per-user limits on what requests may consume, beyond the quotas the scheduler checks:
//! submissions per second (a token bucket per user), followed log streams and proxied
//! connections open at once. Administrators are not limited. Each table holds one small entry
//! per user, no more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use zoe_actors::Caller;

use crate::error::{ApiError, HttpCode};

/// The limits, shared by all HTTP workers.
pub struct Limits {
    /// Submissions per second, on average, and the burst allowed above that.
    rate: f64,
    burst: f64,
    /// Tokens left and when they were counted, per user id.
    buckets: Mutex<HashMap<u64, (f64, Instant)>>,
    followers: Places,
    proxied: Places,
}

/// How many of something each user holds at once, up to a maximum.
struct Places {
    max: usize,
    held: Arc<Mutex<HashMap<u64, usize>>>,
}

/// One held place (a followed log, a proxied connection); given back when this is dropped
/// (when the stream ends or its client goes).
pub struct Place {
    user: u64,
    held: Arc<Mutex<HashMap<u64, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut f) = self.held.lock() {
            if let Some(n) = f.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    f.remove(&self.user);
                }
            }
        }
    }
}

impl Places {
    fn new(max: usize) -> Places {
        Places { max, held: Arc::default() }
    }

    /// One more place for `user`, or the refusal `full` makes when they hold the most.
    fn take(&self, caller: &Caller, full: impl FnOnce(usize) -> ApiError) -> Result<Place, ApiError> {
        if let Ok(mut f) = self.held.lock() {
            let n = f.entry(caller.id).or_insert(0);
            if *n >= self.max && !caller.is_admin() {
                return Err(full(self.max));
            }
            *n += 1;
        }
        Ok(Place { user: caller.id, held: self.held.clone() })
    }
}

impl Limits {
    pub fn new(rate: f64, burst: u32, max_followers: usize, max_proxied: usize) -> Limits {
        Limits {
            rate: if rate.is_finite() && rate > 0.0 { rate } else { f64::MIN_POSITIVE },
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
            followers: Places::new(max_followers),
            proxied: Places::new(max_proxied),
        }
    }

    /// Takes one submission from the caller's bucket, or says when the next one will be allowed.
    pub fn submission(&self, caller: &Caller, now: Instant) -> Result<(), ApiError> {
        if caller.is_admin() {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let (tokens, at) = buckets.entry(caller.id).or_insert((self.burst, now));
        let refilled = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            *at = now;
            return Ok(());
        }
        let wait = ((1.0 - refilled) / self.rate).ceil().min(86_400.0) as u64;
        Err(ApiError::new(
            HttpCode::TooManyRequests,
            format!(
                "too many submissions: at most {} per second on average (bursts of {}); try again in {wait} s",
                self.rate, self.burst
            ),
        )
        .retry_after(wait))
    }

    /// A place for one more followed log stream of the caller, if they have one left.
    pub fn follower(&self, caller: &Caller) -> Result<Place, ApiError> {
        self.followers.take(caller, |max| {
            ApiError::new(
                HttpCode::TooManyRequests,
                format!("you are already following {max} logs, the most one may at once; close one of them first"),
            )
            .retry_after(5)
        })
    }

    /// A place for one more connection through the proxy to the executions of `owner`: counted
    /// against the owner (an administrator's visit counts against no one).
    pub fn proxied(&self, caller: &Caller) -> Result<Place, ApiError> {
        self.proxied.take(caller, |max| {
            ApiError::new(
                HttpCode::TooManyRequests,
                format!(
                    "you already have {max} connections open through the proxy, the most one may at once; \
                     close some (browser tabs, clients) first"
                ),
            )
            .retry_after(2)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zoe_checkpoints::Role;

    fn user(id: u64) -> Caller {
        Caller { id, name: format!("u{id}"), role: Role::User }
    }

    #[test]
    fn submissions_come_in_bursts_then_at_the_rate() {
        let l = Limits::new(2.0, 3, 1, 1);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.submission(&user(1), t0).unwrap();
        }
        let e = l.submission(&user(1), t0).unwrap_err();
        assert_eq!((e.code, e.retry_after), (HttpCode::TooManyRequests.into(), Some(1)));
        l.submission(&user(2), t0).unwrap();
        l.submission(&user(1), t0 + Duration::from_millis(500)).unwrap();
        assert!(l.submission(&user(1), t0 + Duration::from_millis(600)).is_err());
        let admin = Caller { id: 0, name: "zoeadmin".into(), role: Role::Admin };
        for _ in 0..100 {
            l.submission(&admin, t0).unwrap();
        }
    }

    #[test]
    fn followers_are_counted_and_given_back() {
        let l = Limits::new(1.0, 1, 2, 1);
        let a = l.follower(&user(1)).unwrap();
        let _b = l.follower(&user(1)).unwrap();
        assert_eq!(l.follower(&user(1)).err().map(|e| e.code), Some(HttpCode::TooManyRequests.into()));
        let _other = l.follower(&user(2)).unwrap();
        drop(a);
        let _c = l.follower(&user(1)).unwrap();
        assert_eq!(l.followers.held.lock().unwrap()[&1], 2);
        let _p = l.proxied(&user(1)).unwrap();
        assert!(l.proxied(&user(1)).is_err(), "proxied connections have their own count");
    }
}
