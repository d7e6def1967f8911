//! Password hashing and verification (argon2id), bounded so that nobody can exhaust the master
//! with them.
//!
//! One argon2 computation takes about 19 MiB and a core for a moment. Without a bound, 200
//! concurrent logins with made-up names (no credentials needed) took the master from 0.2 to 4 GB,
//! and the allocator kept it. So:
//! - at most `concurrency` computations run at once (about one per core), on the blocking pool;
//! - a request waits at most `wait` for its turn, then is refused with `busy` (503, Retry-After);
//! - each turn owns one working-memory buffer, kept between computations while logins keep
//!   coming: the memory is allocated once per turn, never per request, so a burst cannot grow
//!   the heap; two seconds after the last computation the buffers are given back to the system
//!   (they are allocated large enough that the allocator maps them on their own, so freeing them
//!   really returns the memory).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{ApiError, HttpCode};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Refuses a new password shorter than `min` characters (400 `password_too_short`) or longer
/// than [`MAX_PASSWORD_BYTES`] (400 `invalid_request`), before anything is hashed.
pub fn check_new_password(password: &str, min: usize) -> Result<(), ApiError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::new(
            HttpCode::InvalidRequest,
            format!("password: must be a string of 1 to {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.chars().count() < min {
        return Err(ApiError::new(
            HttpCode::PasswordTooShort,
            format!("password: must be at least {} characters long (min-password-length)", min.max(1)),
        ));
    }
    Ok(())
}

/// Largest argon2 working memory a stored hash may ask for (256 MiB): a hand-edited checkpoint
/// cannot make every login allocate gigabytes.
const MAX_BLOCKS: usize = 256 * 1024;

/// Blocks (of 1 KiB) a working-memory buffer holds at least: over 32 MiB, which glibc always
/// maps on its own (its largest dynamic mmap threshold), so that dropping it unmaps it. Only the
/// blocks argon2 uses (19 MiB) are ever touched, so the rest costs no memory.
const MAPPED_BLOCKS: usize = 33 * 1024;

/// How long the working memory is kept after the last computation.
const KEEP_MEMORY: Duration = Duration::from_secs(2);

/// The hasher shared by all HTTP workers.
pub struct Passwords {
    turns: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    wait: Duration,
    /// Working memory of the turns not in use, and a count of computations (to know whether
    /// any happened since a release was planned).
    memory: Arc<Mutex<(Vec<Vec<Block>>, u64)>>,
}

impl Passwords {
    /// `concurrency` computations at once (0: one per core), each waiting at most `wait`.
    pub fn new(concurrency: usize, wait: Duration) -> Passwords {
        let n = if concurrency == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            concurrency
        };
        Passwords { turns: Arc::new(tokio::sync::Semaphore::new(n)), concurrency: n, wait, memory: Arc::default() }
    }

    /// Buffers kept for the turns (for tests).
    pub fn kept_buffers(&self) -> usize {
        self.memory.lock().map(|m| m.0.len()).unwrap_or(0)
    }

    /// Runs `f` with a working-memory buffer on the blocking pool, once a turn is free.
    async fn with_turn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let busy = || {
            ApiError::new(HttpCode::Busy, "the master is checking too many passwords right now; try again in a moment")
                .retry_after(1)
        };
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let memory = self.memory.clone();
        let result = actix_web::web::block(move || {
            let mut blocks =
                memory.lock().ok().and_then(|mut m| m.0.pop()).unwrap_or_else(|| Vec::with_capacity(MAPPED_BLOCKS));
            let out = f(&mut blocks);
            if let Ok(mut m) = memory.lock() {
                m.0.push(blocks);
                m.1 += 1;
            }
            drop(turn);
            out
        })
        .await
        .map_err(|e| ApiError::new(HttpCode::Internal, format!("the password task failed: {e}")))?;
        self.release_later();
        Ok(result)
    }

    /// Gives the working memory back once no computation happened for a while.
    fn release_later(&self) {
        let Ok(seen) = self.memory.lock().map(|m| m.1) else { return };
        let (memory, turns, all) = (self.memory.clone(), self.turns.clone(), self.concurrency);
        actix_web::rt::spawn(async move {
            tokio::time::sleep(KEEP_MEMORY).await;
            if let Ok(mut m) = memory.lock() {
                if m.1 == seen && turns.available_permits() == all {
                    m.0.clear();
                }
            }
        });
    }

    /// Hashes a password as an argon2id PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.with_turn(move |blocks| hash_with(&password, blocks))
            .await?
            .map_err(|e| ApiError::new(HttpCode::Internal, e))
    }

    /// Whether `password` matches the PHC string `phc`.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, ApiError> {
        self.with_turn(move |blocks| verify_with(&password, &phc, blocks)).await
    }
}

/// Hashes a password as an argon2id PHC string, with a buffer of its own (for the first
/// administrator, before the master serves anything).
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_with(password, &mut Vec::new())
}

fn hash_with(password: &str, blocks: &mut Vec<Block>) -> Result<String, String> {
    let failed = |e: &dyn std::fmt::Display| format!("cannot hash the password: {e}");
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    blocks.resize(params.block_count(), Block::default());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, &mut blocks[..])
        .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

fn verify_with(password: &str, phc: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else { return false };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else { return false };
    let need = params.block_count();
    if need > MAX_BLOCKS || password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    if blocks.len() < need {
        blocks.resize(need, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt_raw,
        &mut out,
        &mut blocks[..need],
    );
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_verify_and_match_the_reference_implementation() {
        let mut blocks = Vec::new();
        let phc = hash_with("s3cret", &mut blocks).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_with("s3cret", &phc, &mut blocks));
        assert!(!verify_with("s3creT", &phc, &mut blocks));
        // Our hashes verify with the crate's own verifier, and its hashes with ours.
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(b"s3cret", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"other", &salt).unwrap().to_string();
        assert!(verify_with("other", &theirs, &mut blocks));
        assert!(!verify_with("other", "not a hash", &mut blocks));
        // A stored hash asking for absurd memory is refused, not computed.
        let greedy = theirs.replace("m=19456", "m=4194304");
        assert!(!verify_with("other", &greedy, &mut blocks));
        assert_eq!(blocks.len(), Params::default().block_count(), "the buffer is reused, not regrown");
    }

    #[actix_web::test]
    async fn a_turn_not_given_in_time_is_a_busy_refusal() {
        let p = Passwords::new(1, Duration::from_millis(50));
        let held = p.turns.clone().acquire_owned().await.unwrap();
        let e = p.verify("x".into(), "y".into()).await.unwrap_err();
        assert_eq!((e.code, e.retry_after), (HttpCode::Busy.into(), Some(1)));
        drop(held);
        assert_eq!(p.verify("x".into(), "y".into()).await, Ok(false));
        assert_eq!(p.kept_buffers(), 1);
        tokio::time::sleep(KEEP_MEMORY + Duration::from_millis(500)).await;
        assert_eq!(p.kept_buffers(), 0, "the working memory is given back when idle");
    }
}
