//! Client-side latency statistics of one measurement window.

use std::time::{Duration, Instant};

use serde::Serialize;

/// One request as the client saw it.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
}

impl Record {
    pub fn latency(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// perf_analyzer counts a request in a window only when it both started and ended
    /// inside it.
    pub fn within(&self, from: Instant, to: Instant) -> bool {
        self.start >= from && self.end <= to
    }
}

/// The percentile of sorted values as perf_analyzer picks it: the element at index
/// `round(p/100 * (n-1))`. `None` for an empty slice.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64 + 0.5) as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

/// The median of unsorted values; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Latency figures in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub avg_us: f64,
    pub min_us: f64,
    pub max_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub std_us: f64,
}

impl LatencySummary {
    /// Summarises latencies given in nanoseconds (any order).
    pub fn from_ns(latencies_ns: &[u64]) -> Self {
        if latencies_ns.is_empty() {
            return LatencySummary::default();
        }
        let mut sorted = latencies_ns.to_vec();
        sorted.sort_unstable();
        let n = sorted.len() as f64;
        let sum: f64 = sorted.iter().map(|&x| x as f64).sum();
        let avg = sum / n;
        let var = sorted
            .iter()
            .map(|&x| (x as f64 - avg).powi(2))
            .sum::<f64>()
            / n;
        let us = |ns: Option<u64>| ns.unwrap_or(0) as f64 / 1000.0;
        LatencySummary {
            count: sorted.len() as u64,
            avg_us: avg / 1000.0,
            min_us: us(sorted.first().copied()),
            max_us: us(sorted.last().copied()),
            p50_us: us(percentile(&sorted, 50.0)),
            p90_us: us(percentile(&sorted, 90.0)),
            p95_us: us(percentile(&sorted, 95.0)),
            p99_us: us(percentile(&sorted, 99.0)),
            std_us: var.sqrt() / 1000.0,
        }
    }
}

/// What happened inside one measurement window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowCounts {
    pub ok: u64,
    pub failed: u64,
    pub latency: LatencySummary,
}

/// Selects the records inside `[from, to]` and summarises the successful ones.
pub fn window(records: &[Record], from: Instant, to: Instant) -> WindowCounts {
    let mut lat = Vec::new();
    let mut failed = 0;
    for r in records.iter().filter(|r| r.within(from, to)) {
        if r.ok {
            lat.push(u64::try_from(r.latency().as_nanos()).unwrap_or(u64::MAX));
        } else {
            failed += 1;
        }
    }
    WindowCounts {
        ok: lat.len() as u64,
        failed,
        latency: LatencySummary::from_ns(&lat),
    }
}
