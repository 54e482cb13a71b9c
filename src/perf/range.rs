//! `start:end:step` ranges as perf_analyzer reads them: the step is added, `end` is
//! inclusive, a missing `end` means a single level and `end` 0 means "until the latency
//! threshold is met".

use super::error::PerfError;

/// Open-ended ranges (`end` 0) stop after this many levels even if the latency
/// threshold is never reached, so every sweep is bounded.
pub const MAX_OPEN_LEVELS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcurrencyRange {
    pub start: u64,
    /// 0: no end (needs a latency threshold).
    pub end: u64,
    pub step: u64,
}

impl ConcurrencyRange {
    pub fn single(n: u64) -> Self {
        ConcurrencyRange {
            start: n,
            end: n,
            step: 1,
        }
    }

    pub fn is_open(&self) -> bool {
        self.end == 0
    }

    /// The levels in order; an open range yields at most [`MAX_OPEN_LEVELS`].
    pub fn levels(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut v = self.start;
        while (self.is_open() && out.len() < MAX_OPEN_LEVELS) || (!self.is_open() && v <= self.end)
        {
            out.push(v);
            match v.checked_add(self.step) {
                Some(n) => v = n,
                None => break,
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateRange {
    pub start: f64,
    /// 0: no end (needs a latency threshold).
    pub end: f64,
    pub step: f64,
}

impl RateRange {
    pub fn is_open(&self) -> bool {
        self.end == 0.0
    }

    /// The rates in order, computed as `start + i * step` so that no rounding error
    /// accumulates; `end` is included when it lies on the grid (within 1e-9 relative).
    pub fn levels(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let limit = self.end * (1.0 + 1e-9);
        for i in 0.. {
            let v = self.start + i as f64 * self.step;
            if self.is_open() {
                if out.len() >= MAX_OPEN_LEVELS {
                    break;
                }
            } else if v > limit {
                break;
            }
            out.push(v);
        }
        out
    }
}

fn parts(text: &str) -> Result<Vec<&str>, PerfError> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(PerfError::config(format!(
            "invalid range '{text}': expected start[:end[:step]]"
        )));
    }
    Ok(parts)
}

pub fn parse_concurrency_range(text: &str) -> Result<ConcurrencyRange, PerfError> {
    let parts = parts(text)?;
    let num = |s: &str| {
        s.parse::<u64>().map_err(|_| {
            PerfError::config(format!(
                "invalid concurrency range '{text}': '{s}' is not a non-negative integer"
            ))
        })
    };
    let start = num(parts[0])?;
    let end = parts.get(1).map(|s| num(s)).transpose()?.unwrap_or(start);
    let step = parts.get(2).map(|s| num(s)).transpose()?.unwrap_or(1);
    if start == 0 {
        return Err(PerfError::config(format!(
            "invalid concurrency range '{text}': start must be at least 1"
        )));
    }
    if step == 0 {
        return Err(PerfError::config(format!(
            "invalid concurrency range '{text}': step must be at least 1"
        )));
    }
    if end != 0 && end < start {
        return Err(PerfError::config(format!(
            "invalid concurrency range '{text}': end is below start"
        )));
    }
    Ok(ConcurrencyRange { start, end, step })
}

pub fn parse_rate_range(text: &str) -> Result<RateRange, PerfError> {
    let parts = parts(text)?;
    let num = |s: &str| match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(PerfError::config(format!(
            "invalid request rate range '{text}': '{s}' is not a non-negative number"
        ))),
    };
    let start = num(parts[0])?;
    let end = parts.get(1).map(|s| num(s)).transpose()?.unwrap_or(start);
    let step = parts.get(2).map(|s| num(s)).transpose()?.unwrap_or(1.0);
    if start <= 0.0 {
        return Err(PerfError::config(format!(
            "invalid request rate range '{text}': start must be above 0"
        )));
    }
    if step <= 0.0 {
        return Err(PerfError::config(format!(
            "invalid request rate range '{text}': step must be above 0"
        )));
    }
    if end != 0.0 && end < start {
        return Err(PerfError::config(format!(
            "invalid request rate range '{text}': end is below start"
        )));
    }
    Ok(RateRange { start, end, step })
}
