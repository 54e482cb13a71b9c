//! Latency quantiles over a sliding time window, for Triton's `nv_inference_*_summary_us`
//! families (`--metrics-config summary_latencies=true`).
//!
//! Values go into log-linear buckets: exact below 64 µs, within 1/64 (1.6%) of the value
//! above, so any quantile is rank-exact over the window at that precision. The window is
//! five rotating slots of 12 s (60 s in all), like the Prometheus client Triton uses.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Values below this are their own bucket.
const EXACT: u64 = 64;
/// Buckets per power of two above `EXACT`.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Largest value kept apart: 2^40 µs, about 12 days.
const TOP_BIT: u32 = 40;
const BUCKETS: usize = EXACT as usize + (TOP_BIT as usize - 6 + 1) * SUB;

pub const MAX_AGE: Duration = Duration::from_secs(60);
pub const AGE_SLOTS: usize = 5;

fn bucket(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let v = v.min((1u64 << (TOP_BIT + 1)) - 1);
    let top = 63 - v.leading_zeros(); // >= 6
    let mantissa = ((v >> (top - SUB_BITS)) as usize) & (SUB - 1);
    EXACT as usize + (top as usize - 6) * SUB + mantissa
}

/// The value a bucket stands for: itself when exact, else the middle of its range.
fn value_of(index: usize) -> f64 {
    if index < EXACT as usize {
        return index as f64;
    }
    let i = index - EXACT as usize;
    let top = (i / SUB) as u32 + 6;
    let mantissa = (i % SUB) as u64;
    let width = 1u64 << (top - SUB_BITS);
    let low = ((SUB as u64) + mantissa) * width;
    (low as f64 + (width - 1) as f64 / 2.0).round()
}

struct Window {
    slots: Vec<Box<[u32]>>,
    /// The slot new values go to.
    head: usize,
    head_start: Instant,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            slots: (0..AGE_SLOTS)
                .map(|_| vec![0u32; BUCKETS].into_boxed_slice())
                .collect(),
            head: 0,
            head_start: now,
        }
    }

    /// Moves the head forward to `now`, clearing the slots that aged out.
    fn advance(&mut self, now: Instant) {
        let slot = MAX_AGE / AGE_SLOTS as u32;
        let steps =
            (now.saturating_duration_since(self.head_start).as_nanos() / slot.as_nanos()) as usize;
        if steps == 0 {
            return;
        }
        for k in 1..=steps.min(AGE_SLOTS) {
            self.slots[(self.head + k) % AGE_SLOTS].fill(0);
        }
        self.head = (self.head + steps) % AGE_SLOTS;
        self.head_start += slot * steps.min(u32::MAX as usize) as u32;
    }
}

/// One latency summary: all-time count and sum, windowed quantiles.
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
    window: Mutex<Window>,
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .finish()
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            window: Mutex::new(Window::new(Instant::now())),
        }
    }
}

impl Summary {
    /// Records `n` observations of `value` (a batch's compute time counts once per request).
    pub fn observe_n(&self, value: u64, n: u64, now: Instant) {
        if n == 0 {
            return;
        }
        self.count.fetch_add(n, Relaxed);
        self.sum.fetch_add(value.saturating_mul(n), Relaxed);
        let mut w = self.window.lock();
        w.advance(now);
        let head = w.head;
        let c = &mut w.slots[head][bucket(value)];
        *c = c.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// The value at each quantile over the window; NaN when the window is empty.
    pub fn quantiles(&self, qs: &[f64], now: Instant) -> Vec<f64> {
        let mut merged = vec![0u64; BUCKETS];
        {
            let mut w = self.window.lock();
            w.advance(now);
            for slot in &w.slots {
                for (m, c) in merged.iter_mut().zip(slot.iter()) {
                    *m += u64::from(*c);
                }
            }
        }
        let total: u64 = merged.iter().sum();
        qs.iter()
            .map(|&q| {
                if total == 0 {
                    return f64::NAN;
                }
                // The smallest value with at least ceil(q * total) values at or below it.
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
                let mut seen = 0;
                for (i, c) in merged.iter().enumerate() {
                    seen += c;
                    if seen >= rank {
                        return value_of(i);
                    }
                }
                f64::NAN
            })
            .collect()
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        *self.window.lock() = Window::new(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_64_and_within_a_64th_above() {
        for v in 0..EXACT {
            assert_eq!(value_of(bucket(v)), v as f64);
        }
        let mut last = 0;
        for v in (EXACT..5_000_000)
            .step_by(7)
            .chain([1u64 << 39, (1 << 41) - 1])
        {
            let b = bucket(v);
            assert!(b >= last && b < BUCKETS, "bucket of {v}: {b}");
            last = b;
            let rep = value_of(b);
            assert!(
                (rep - v as f64).abs() <= v as f64 / 64.0,
                "{v} stands as {rep}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_rank_exact() {
        let s = Summary::default();
        let t = Instant::now();
        for v in 1..=1000u64 {
            s.observe_n(v % 50, 1, t); // 20 of each of 0..50
        }
        assert_eq!(s.count(), 1000);
        assert_eq!(s.sum(), 20 * (0..50).sum::<u64>());
        let q = s.quantiles(&[0.0, 0.5, 0.9, 0.99, 1.0], t);
        assert_eq!(q, vec![0.0, 24.0, 44.0, 49.0, 49.0]);
        let big = Summary::default();
        big.observe_n(10_000, 99, t);
        big.observe_n(1_000_000, 1, t);
        let q = big.quantiles(&[0.5, 0.99, 0.999], t);
        assert!((q[0] - 10_000.0).abs() <= 10_000.0 / 64.0, "{q:?}");
        assert!((q[1] - 10_000.0).abs() <= 10_000.0 / 64.0, "{q:?}");
        assert!((q[2] - 1_000_000.0).abs() <= 1_000_000.0 / 64.0, "{q:?}");
    }

    #[test]
    fn the_window_forgets_after_a_minute_but_count_and_sum_do_not() {
        let s = Summary::default();
        let t = Instant::now();
        s.observe_n(10, 3, t);
        s.observe_n(1000, 1, t + Duration::from_secs(30));
        let q = s.quantiles(&[0.5, 1.0], t + Duration::from_secs(50));
        assert_eq!(q[0], 10.0);
        assert!((q[1] - 1000.0).abs() <= 1000.0 / 64.0);
        // The first values aged out; the later one is still inside its 60 s.
        let q = s.quantiles(&[0.5], t + Duration::from_secs(75));
        assert!((q[0] - 1000.0).abs() <= 1000.0 / 64.0, "{q:?}");
        let q = s.quantiles(&[0.5], t + Duration::from_secs(200));
        assert!(q[0].is_nan());
        assert_eq!((s.count(), s.sum()), (4, 1030));
        assert!(Summary::default().quantiles(&[0.5], t)[0].is_nan());
    }
}
