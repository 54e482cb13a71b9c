//! Per model-version statistics: the numbers behind the statistics extension and the
//! Prometheus `nv_inference_*` families. Plain atomics, so recording costs a few adds;
//! latency summaries, when asked for, add one short lock per value.

mod summary;
pub use summary::Summary;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::status::Code;

#[derive(Default, Debug)]
pub struct DurationStat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationStat {
    pub fn add(&self, d: Duration) {
        self.add_n(1, d);
    }
    pub fn add_n(&self, n: u64, d: Duration) {
        self.count.fetch_add(n, Relaxed);
        self.ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
    pub fn ns(&self) -> u64 {
        self.ns.load(Relaxed)
    }
}

/// Compute durations of one execution, split as Triton reports them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ComputeTimes {
    pub input: Duration,
    pub infer: Duration,
    pub output: Duration,
}

#[derive(Default, Debug)]
pub struct BatchStat {
    pub compute_input: DurationStat,
    pub compute_infer: DurationStat,
    pub compute_output: DurationStat,
}

/// Failure reasons in the order of Triton's `reason` label values.
pub const FAILURE_REASONS: [&str; 4] = ["REJECTED", "CANCELED", "BACKEND", "OTHER"];

#[derive(Default, Debug)]
pub struct ModelStats {
    pub success: DurationStat,
    pub fail: DurationStat,
    pub queue: DurationStat,
    pub compute_input: DurationStat,
    pub compute_infer: DurationStat,
    pub compute_output: DurationStat,
    pub cache_hit: DurationStat,
    pub cache_miss: DurationStat,
    pub inference_count: AtomicU64,
    pub execution_count: AtomicU64,
    /// Milliseconds since the Unix epoch of the last execution (0 = never).
    pub last_inference_ms: AtomicU64,
    failures: [AtomicU64; 4],
    /// Requests accepted and not yet handed to an instance.
    pending: AtomicI64,
    /// Requests handed to an instance and not yet returned from its execute call.
    executing: AtomicI64,
    batches: Mutex<BTreeMap<u64, std::sync::Arc<BatchStat>>>,
    summaries: Option<Box<Summaries>>,
}

/// The `nv_inference_*_summary_us` families of one model version, values in µs.
#[derive(Default, Debug)]
pub struct Summaries {
    pub request: Summary,
    pub queue: Summary,
    pub compute_input: Summary,
    pub compute_infer: Summary,
    pub compute_output: Summary,
}

impl Summaries {
    fn all(&self) -> [&Summary; 5] {
        [
            &self.request,
            &self.queue,
            &self.compute_input,
            &self.compute_infer,
            &self.compute_output,
        ]
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl DurationStat {
    fn reset(&self) {
        self.count.store(0, Relaxed);
        self.ns.store(0, Relaxed);
    }
}

impl ModelStats {
    /// Statistics that also keep latency summaries when `latency_summaries` is set.
    pub fn new(latency_summaries: bool) -> Self {
        ModelStats {
            summaries: latency_summaries.then(Box::default),
            ..Default::default()
        }
    }

    pub fn summaries(&self) -> Option<&Summaries> {
        self.summaries.as_deref()
    }

    /// Forgets everything recorded so far (after warm-up, which clients never sent).
    pub fn reset(&self) {
        for d in [
            &self.success,
            &self.fail,
            &self.queue,
            &self.compute_input,
            &self.compute_infer,
            &self.compute_output,
            &self.cache_hit,
            &self.cache_miss,
        ] {
            d.reset();
        }
        self.inference_count.store(0, Relaxed);
        self.execution_count.store(0, Relaxed);
        self.last_inference_ms.store(0, Relaxed);
        for f in &self.failures {
            f.store(0, Relaxed);
        }
        self.batches.lock().clear();
        if let Some(s) = &self.summaries {
            s.all().iter().for_each(|s| s.reset());
        }
    }

    /// Records the end of a request: success when `failure` is `None`.
    pub fn record_request(&self, arrival: Instant, failure: Option<Code>) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(arrival);
        match failure {
            None => {
                self.success.add(elapsed);
                if let Some(s) = &self.summaries {
                    s.request.observe_n(micros(elapsed), 1, now);
                }
            }
            Some(code) => {
                self.fail.add(elapsed);
                let idx = FAILURE_REASONS
                    .iter()
                    .position(|r| *r == code.failure_reason())
                    .unwrap_or(3);
                self.failures[idx].fetch_add(1, Relaxed);
            }
        }
    }

    /// Records how long one request waited in the queue.
    pub fn record_queue(&self, waited: Duration, now: Instant) {
        self.queue.add(waited);
        if let Some(s) = &self.summaries {
            s.queue.observe_n(micros(waited), 1, now);
        }
    }

    /// Counts a request refused before it was queued (e.g. queue full).
    pub fn record_rejected(&self, arrival: Instant, code: Code) {
        self.record_request(arrival, Some(code));
    }

    pub fn failures(&self, reason: &str) -> u64 {
        FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.failures[i].load(Relaxed))
    }

    pub fn pending_inc(&self) {
        self.pending.fetch_add(1, Relaxed);
    }
    pub fn pending_dec(&self, n: usize) {
        self.pending.fetch_sub(n as i64, Relaxed);
    }
    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed).max(0) as u64
    }

    pub fn executing_add(&self, n: i64) {
        self.executing.fetch_add(n, Relaxed);
    }

    /// Requests queued or executing.
    pub fn inflight(&self) -> u64 {
        (self.pending.load(Relaxed) + self.executing.load(Relaxed)).max(0) as u64
    }

    /// Records one execution of `requests` requests holding `batch_size` rows in all.
    pub fn record_execution(&self, requests: usize, batch_size: usize, times: ComputeTimes) {
        let n = requests as u64;
        self.compute_input.add_n(n, times.input);
        self.compute_infer.add_n(n, times.infer);
        self.compute_output.add_n(n, times.output);
        if let Some(s) = &self.summaries {
            let now = Instant::now();
            s.compute_input.observe_n(micros(times.input), n, now);
            s.compute_infer.observe_n(micros(times.infer), n, now);
            s.compute_output.observe_n(micros(times.output), n, now);
        }
        self.inference_count.fetch_add(batch_size as u64, Relaxed);
        self.execution_count.fetch_add(1, Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_inference_ms
            .store(now.as_millis() as u64, Relaxed);
        let b = {
            let mut map = self.batches.lock();
            map.entry(batch_size as u64).or_default().clone()
        };
        b.compute_input.add(times.input);
        b.compute_infer.add(times.infer);
        b.compute_output.add(times.output);
    }

    /// Per-batch-size statistics, smallest batch first.
    pub fn batch_stats(&self) -> Vec<(u64, std::sync::Arc<BatchStat>)> {
        self.batches
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outcomes_and_batches() {
        let s = ModelStats::default();
        let t = Instant::now();
        s.record_request(t, None);
        s.record_request(t, Some(Code::Unavailable));
        s.record_request(t, Some(Code::InvalidArg));
        assert_eq!(s.success.count(), 1);
        assert_eq!(s.fail.count(), 2);
        assert_eq!(s.failures("REJECTED"), 1);
        assert_eq!(s.failures("OTHER"), 1);
        assert_eq!(s.failures("BACKEND"), 0);
        let times = ComputeTimes {
            input: Duration::from_nanos(5),
            ..Default::default()
        };
        s.record_execution(3, 4, times);
        s.record_execution(1, 1, times);
        assert_eq!(s.inference_count.load(Relaxed), 5);
        assert_eq!(s.execution_count.load(Relaxed), 2);
        assert_eq!(s.compute_input.count(), 4);
        assert_eq!(s.compute_input.ns(), 10);
        let b = s.batch_stats();
        assert_eq!(b.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(b[1].1.compute_input.count(), 1);
    }
}
