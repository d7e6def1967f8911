//! Traces: the CSV a simulation reads (see the module above for the columns), read as a
//! stream line by line, written, and generated at random.

use std::io::BufRead;

use time::OffsetDateTime;

use crate::logic::resources::Resources;
use crate::logic::scheduler::Waiting;

pub const MAX_INSTANCES: u32 = 1000;
/// Longest line of a trace, in bytes (a line of seven numbers takes well under 200).
pub const MAX_LINE: usize = 1024;
/// Largest `submit_s` and `duration_s`: about 317 years, room for Unix times as well.
pub const MAX_SECONDS: f64 = 1e10;
/// Largest `memory_mib` of an instance (1 EiB).
pub const MAX_MEMORY_MIB: f64 = 1_099_511_627_776.0;
/// Largest `cores` of an instance.
pub const MAX_CORES: f64 = 1e6;

/// One execution of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub submit: f64,
    /// What each instance reserves.
    pub need: Resources,
    /// Running time with all its instances.
    pub duration: f64,
    pub priority: u32,
    /// Instances that admit it (at least 1).
    pub essential: u32,
    /// Instances that only make it faster, started as room allows when elastic.
    pub elastic: u32,
}

/// `n` instances of `need`.
pub(super) fn times(need: Resources, n: u32) -> Resources {
    Resources { memory: need.memory.saturating_mul(u64::from(n)), cores: need.cores * f64::from(n) }
}

impl Job {
    /// All its instances, essential and elastic.
    pub fn instances(&self) -> u32 {
        self.essential + self.elastic
    }

    /// What all its instances reserve together.
    pub fn total(&self) -> Resources {
        times(self.need, self.instances())
    }

    /// Its rate of progress with `running` instances: 1 with all of them.
    pub(super) fn rate(&self, running: u32) -> f64 {
        f64::from(running) / f64::from(self.instances().max(1))
    }

    /// What admits it: all its instances (rigid) or its essential ones (elastic).
    pub(super) fn admitted(&self, elastic: bool) -> u32 {
        if elastic {
            self.essential
        } else {
            self.instances()
        }
    }

    /// As the scheduler's `pick` sees it in the queue. (`pick` does not read the submission
    /// time: the simulator keeps the queue in order itself, see `QueueKey`.)
    pub(super) fn waiting(&self, id: usize) -> Waiting {
        Waiting {
            id: id as u64,
            submitted: OffsetDateTime::UNIX_EPOCH,
            priority: self.priority,
            need: self.total(),
            instances: vec![self.need; self.instances() as usize],
            essential: vec![self.need; self.essential as usize],
        }
    }
}

/// The header line of a trace, as [`to_csv`] writes it.
pub const HEADER: &str = "submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances";

/// Parses one line of a trace (`number` counts from 1); `None` for a line to skip (empty, a
/// comment, the header). The error names the line and the column.
pub fn parse_line(line: &str, number: usize) -> Result<Option<Job>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || (number == 1 && line.starts_with("submit")) {
        return Ok(None);
    }
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let bad = |what: &str| format!("line {number}: {what}");
    if !(5..=7).contains(&f.len()) {
        return Err(bad(&format!(
            "{} fields, expected 5 to 7: submit_s,memory_mib,cores,duration_s,priority and either instances \
             or essential_instances,elastic_instances",
            f.len()
        )));
    }
    let count = |k: usize, name: &str, min: u32| {
        f[k].parse::<u32>()
            .ok()
            .filter(|n| (min..=MAX_INSTANCES).contains(n))
            .ok_or_else(|| bad(&format!("{name} {:?} is not a whole number from {min} to {MAX_INSTANCES}", f[k])))
    };
    let (essential, elastic) = match f.len() {
        5 => (1, 0),
        6 => (count(5, "instances", 1)?, 0),
        _ => (count(5, "essential_instances", 1)?, count(6, "elastic_instances", 0)?),
    };
    if essential + elastic > MAX_INSTANCES {
        return Err(bad(&format!(
            "essential_instances + elastic_instances is {}, more than {MAX_INSTANCES}",
            essential + elastic
        )));
    }
    let num = |k: usize, name: &str, max: f64| {
        f[k].parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (0.0..=max).contains(v))
            .ok_or_else(|| bad(&format!("{name} {:?} is not a number from 0 to {max}", f[k])))
    };
    let memory = num(1, "memory_mib", MAX_MEMORY_MIB)?;
    let priority = f[4]
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= 1024)
        .ok_or_else(|| bad(&format!("priority {:?} is not a whole number from 0 to 1024", f[4])))?;
    Ok(Some(Job {
        submit: num(0, "submit_s", MAX_SECONDS)?,
        need: Resources { memory: (memory * 1024.0 * 1024.0) as u64, cores: num(2, "cores", MAX_CORES)? },
        duration: num(3, "duration_s", MAX_SECONDS)?,
        priority,
        essential,
        elastic,
    }))
}

/// A trace read line by line from `input`: each line at most [`MAX_LINE`] bytes, in submission
/// order. Yields each execution, or the first error (naming the line), then stops.
pub struct TraceReader<R> {
    input: R,
    /// Lines read so far.
    line: usize,
    /// The submission time of the latest execution.
    last_submit: f64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(input: R) -> Self {
        TraceReader { input, line: 0, last_submit: 0.0, buf: Vec::with_capacity(128), done: false }
    }

    /// The next line's execution, `Ok(None)` at the end.
    fn next_job(&mut self) -> Result<Option<Job>, String> {
        loop {
            self.buf.clear();
            let limit = MAX_LINE as u64 + 1;
            let n = std::io::Read::take(&mut self.input, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("line {}: cannot read the trace: {e}", self.line + 1))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let number = self.line;
            if self.buf.len() > MAX_LINE {
                return Err(format!(
                    "line {number} is longer than {MAX_LINE} bytes: a trace has one execution of 5 to 7 numbers per line"
                ));
            }
            let text = std::str::from_utf8(&self.buf)
                .map_err(|_| format!("line {number} is not text (UTF-8): a trace is CSV"))?;
            let Some(job) = parse_line(text, number)? else { continue };
            if job.submit < self.last_submit {
                return Err(format!(
                    "line {number}: submit_s {} is earlier than the line before ({}): a trace lists executions in \
                     submission order (sort it by its first column)",
                    job.submit, self.last_submit
                ));
            }
            self.last_submit = job.submit;
            return Ok(Some(job));
        }
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Job, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_job().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Parses a whole trace held in memory; the error names the line and the column.
pub fn parse_trace(text: &str) -> Result<Vec<Job>, String> {
    TraceReader::new(text.as_bytes()).collect()
}

/// The xorshift generator of [`generate`].
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One execution of [`generate`], without its submission time, and its work: its share of
/// `capacity` times its running time.
fn draw(rnd: &mut Rng, capacity: Resources) -> (Job, f64) {
    let kind = rnd.next();
    // The whole execution's memory (MiB), cores and running time, and its elastic instances.
    let (mem_mib, cores, dur, elastic) = if kind < 0.7 {
        (256.0 + 768.0 * rnd.next(), 0.5 + 0.5 * rnd.next(), 60.0 + 540.0 * rnd.next(), 0)
    } else if kind < 0.95 {
        (2048.0 + 2048.0 * rnd.next(), 1.0 + rnd.next(), 600.0 + 3000.0 * rnd.next(), 2 + (3.0 * rnd.next()) as u32)
    } else {
        (8192.0 + 8192.0 * rnd.next(), 4.0, 3600.0 + 7200.0 * rnd.next(), 4 + (5.0 * rnd.next()) as u32)
    };
    let count = f64::from(1 + elastic);
    let need = Resources {
        memory: ((mem_mib / count).round() as u64) << 20,
        cores: ((cores / count * 10.0_f64).round() / 10.0).max(0.1),
    };
    let job = Job { submit: 0.0, need, duration: dur.round(), priority: 0, essential: 1, elastic };
    let total = job.total();
    let share = (total.memory as f64 / capacity.memory as f64).max(total.cores / capacity.cores);
    let work = share * job.duration;
    (Job { priority: (rnd.next() * 1024.0) as u32, ..job }, work)
}

/// A reproducible synthetic workload of `n` executions for a platform of `capacity`: mostly
/// small interactive ones (one instance), some medium (one essential instance and 2 to 4
/// elastic), a few large batch ones (one essential and 4 to 8 elastic), each instance an equal
/// share of its execution's size, arriving at random (Poisson) at a rate that keeps the platform
/// about `load` busy (0.9: 90%) when every instance runs.
///
/// Made in two passes over the same random numbers, so that nothing is held: the first sums the
/// work (which sets the arrival rate), the second yields each execution as it is made.
pub fn generate_iter(n: usize, seed: u64, capacity: Resources, load: f64) -> impl Iterator<Item = Job> {
    let mut sizes = Rng::new(seed);
    let mut work = 0.0;
    for _ in 0..n {
        work += draw(&mut sizes, capacity).1;
    }
    // The arrivals use the numbers that follow all the sizes.
    let mut arrivals = sizes;
    let mut sizes = Rng::new(seed);
    // Spread the submissions so that the offered load is `load`.
    let span = work / load.max(0.01);
    let mean_gap = span / n.max(1) as f64;
    let mut t = 0.0;
    (0..n).map(move |_| {
        let (job, _) = draw(&mut sizes, capacity);
        let submit = (t * 10.0_f64).round() / 10.0;
        t += -mean_gap * (1.0 - arrivals.next()).ln();
        Job { submit, ..job }
    })
}

/// [`generate_iter`], collected.
pub fn generate(n: usize, seed: u64, capacity: Resources, load: f64) -> Vec<Job> {
    generate_iter(n, seed, capacity, load).collect()
}

/// One line of a trace (without its newline), with the [`HEADER`] columns.
pub fn csv_line(j: &Job) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        j.submit,
        j.need.memory / (1024 * 1024),
        j.need.cores,
        j.duration,
        j.priority,
        j.essential,
        j.elastic
    )
}

/// Writes a trace, with the [`HEADER`] columns.
pub fn to_csv(jobs: &[Job]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for j in jobs {
        out.push_str(&csv_line(j));
        out.push('\n');
    }
    out
}
