//! What an execution used and reserved, as the master measured it by sampling its containers
//! (the accounting is `zoe_actors::logic::usage`).
//!
//! A checkpoint keeps, per execution, the totals ([`Usage`], also in the archive and in the API's
//! JSON) and a short time series for its page's chart ([`UsageSeries`], at most
//! [`SERIES_POINTS`] points: when full, neighbouring points merge and each covers twice the
//! time). The series stays with the execution while the checkpoints hold it, and is dropped when
//! the execution moves to the archive (50,000 archived executions with 60 points each would
//! weigh some hundred megabytes); the totals stay.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most points a [`UsageSeries`] keeps.
pub const SERIES_POINTS: usize = 60;

/// What an execution used and reserved since it started, all of its containers together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// CPU time its containers used, in seconds (one core busy for one second: 1).
    pub cpu_seconds: f64,
    /// Memory in use (less the page cache the kernel can drop) integrated over time, in
    /// byte-seconds.
    pub memory_byte_seconds: f64,
    /// The most memory in use at one sample, in bytes.
    pub memory_peak_bytes: u64,
    /// The cores it reserved, integrated over the time its containers ran, in core-seconds.
    pub reserved_core_seconds: f64,
    /// The memory it reserved, integrated over the time its containers ran, in byte-seconds.
    pub reserved_memory_byte_seconds: f64,
}

impl Usage {
    /// Nothing measured yet.
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    /// Both together (the peak is the larger peak).
    pub fn plus(&self, o: &Usage) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds + o.cpu_seconds,
            memory_byte_seconds: self.memory_byte_seconds + o.memory_byte_seconds,
            memory_peak_bytes: self.memory_peak_bytes.max(o.memory_peak_bytes),
            reserved_core_seconds: self.reserved_core_seconds + o.reserved_core_seconds,
            reserved_memory_byte_seconds: self.reserved_memory_byte_seconds + o.reserved_memory_byte_seconds,
        }
    }

    /// The share `f` (0 to 1) of the time-integrated figures (the peak is kept).
    pub fn scaled(&self, f: f64) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds * f,
            memory_byte_seconds: self.memory_byte_seconds * f,
            memory_peak_bytes: self.memory_peak_bytes,
            reserved_core_seconds: self.reserved_core_seconds * f,
            reserved_memory_byte_seconds: self.reserved_memory_byte_seconds * f,
        }
    }

    /// Whether every figure is a finite number, none negative.
    pub fn is_sound(&self) -> bool {
        [self.cpu_seconds, self.memory_byte_seconds, self.reserved_core_seconds, self.reserved_memory_byte_seconds]
            .iter()
            .all(|x| x.is_finite() && *x >= 0.0)
    }
}

/// An execution's CPU and memory over time, oldest point first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageSeries {
    /// The shortest time a point covers, in seconds: a new sample joins the last point until it
    /// covers this long. Doubles each time the series is full.
    pub step: u32,
    /// Memory in use at the last sample, in bytes.
    pub memory_bytes: u64,
    pub points: Vec<UsagePoint>,
}

impl UsageSeries {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// When it was last sampled: the end of its last point (Unix seconds).
    pub fn last_at(&self) -> Option<i64> {
        self.points.last().map(|p| p.0)
    }
}

/// One point: `(end, seconds, cores, memory)`: the span ending at `end` (Unix seconds) and
/// `seconds` long, the mean CPU use over it in cores, and the mean memory in use in bytes. A
/// tuple, so that a checkpoint writes a point on one line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsagePoint(pub i64, pub u32, pub f64, pub u64);

impl UsagePoint {
    pub fn end(&self) -> i64 {
        self.0
    }

    pub fn seconds(&self) -> u32 {
        self.1
    }

    pub fn cores(&self) -> f64 {
        self.2
    }

    pub fn memory(&self) -> u64 {
        self.3
    }
}
