//! Exponential back-off, the one way Zoe waits after a failure: a pause that doubles after each
//! failure up to a ceiling, and starts over from the shortest after a success. The back ends
//! wait so before reconnecting to Docker, the state actor before starting executions again and
//! before trying a checkpoint again.

use std::time::Duration;

/// The pauses after failures: `min`, twice that, ... up to `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Pauses from `min` doubling up to `max`.
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, next: min }
    }

    /// The pause to wait now; the next one is twice as long, up to the ceiling.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(self.max);
        pause
    }

    /// After a success: the next pause is the shortest again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The longest pause.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let pauses: Vec<u64> = (0..5).map(|_| b.next_pause().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_pause(), Duration::from_secs(1));
    }
}
