//! The server-side split of a level, from the statistics extension read before and
//! after the measurement window (and at a few points in between, for the median of the
//! queue delay over short intervals).

use serde::Serialize;
use serde_json::Value;

use super::stats::median;

/// A `{count, ns}` pair of the statistics extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Duration {
    pub count: u64,
    pub ns: u64,
}

impl Duration {
    fn minus(self, before: Duration) -> Duration {
        Duration {
            count: self.count.saturating_sub(before.count),
            ns: self.ns.saturating_sub(before.ns),
        }
    }

    /// Average in microseconds, 0 when nothing was counted.
    pub fn avg_us(self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.ns as f64 / self.count as f64 / 1000.0
        }
    }
}

/// Cumulative statistics of a model (summed over the versions the answer lists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub inference_count: u64,
    pub execution_count: u64,
    pub success: Duration,
    pub fail: Duration,
    pub queue: Duration,
    pub compute_input: Duration,
    pub compute_infer: Duration,
    pub compute_output: Duration,
}

impl StatsSnapshot {
    pub fn minus(&self, before: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            inference_count: self.inference_count.saturating_sub(before.inference_count),
            execution_count: self.execution_count.saturating_sub(before.execution_count),
            success: self.success.minus(before.success),
            fail: self.fail.minus(before.fail),
            queue: self.queue.minus(before.queue),
            compute_input: self.compute_input.minus(before.compute_input),
            compute_infer: self.compute_infer.minus(before.compute_infer),
            compute_output: self.compute_output.minus(before.compute_output),
        }
    }

    /// Adds another snapshot (for models served by several versions).
    pub fn add(&mut self, o: &StatsSnapshot) {
        let add = |a: &mut Duration, b: Duration| {
            a.count += b.count;
            a.ns += b.ns;
        };
        self.inference_count += o.inference_count;
        self.execution_count += o.execution_count;
        add(&mut self.success, o.success);
        add(&mut self.fail, o.fail);
        add(&mut self.queue, o.queue);
        add(&mut self.compute_input, o.compute_input);
        add(&mut self.compute_infer, o.compute_infer);
        add(&mut self.compute_output, o.compute_output);
    }

    /// Reads the HTTP statistics answer (`{"model_stats": [...]}`), keeping the entries
    /// of `model` (and of `version` unless it is empty). Counters may be JSON numbers or
    /// strings (the protobuf JSON mapping of uint64).
    pub fn from_json(v: &Value, model: &str, version: &str) -> Result<StatsSnapshot, String> {
        let list = v
            .get("model_stats")
            .and_then(Value::as_array)
            .ok_or("the statistics answer has no \"model_stats\" array")?;
        let mut total = StatsSnapshot::default();
        let mut found = false;
        for m in list {
            if m.get("name").and_then(Value::as_str) != Some(model) {
                continue;
            }
            if !version.is_empty() && m.get("version").and_then(Value::as_str) != Some(version) {
                continue;
            }
            found = true;
            let is = m.get("inference_stats");
            let dur = |key: &str| {
                let d = is.and_then(|s| s.get(key));
                Duration {
                    count: num(d.and_then(|d| d.get("count"))),
                    ns: num(d.and_then(|d| d.get("ns"))),
                }
            };
            total.add(&StatsSnapshot {
                inference_count: num(m.get("inference_count")),
                execution_count: num(m.get("execution_count")),
                success: dur("success"),
                fail: dur("fail"),
                queue: dur("queue"),
                compute_input: dur("compute_input"),
                compute_infer: dur("compute_infer"),
                compute_output: dur("compute_output"),
            });
        }
        if !found {
            return Err(format!(
                "the statistics answer has no entry for model '{model}'"
            ));
        }
        Ok(total)
    }
}

fn num(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The server's view of one measurement window. Times are averages per request in
/// microseconds, as perf_analyzer reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerSplit {
    pub success_count: u64,
    pub fail_count: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    /// inference_count delta / execution_count delta.
    pub avg_batch_size: f64,
    /// Average time from arrival to response, as the server measures it.
    pub request_us: f64,
    pub queue_us: f64,
    pub compute_input_us: f64,
    pub compute_infer_us: f64,
    pub compute_output_us: f64,
    /// Median over the stats intervals of each interval's average queue time: the
    /// statistics extension gives totals only, so this is the closest honest median.
    pub queue_us_median_of_intervals: Option<f64>,
    /// How many intervals (with at least one queued request) that median is taken over.
    pub queue_intervals: usize,
}

impl ServerSplit {
    /// Builds the split from snapshots taken in order across the window: the first at
    /// its start, the last at its end (at least two).
    pub fn from_snapshots(snaps: &[StatsSnapshot]) -> Option<ServerSplit> {
        let (first, last) = (snaps.first()?, snaps.last()?);
        if snaps.len() < 2 {
            return None;
        }
        let d = last.minus(first);
        let interval_avgs: Vec<f64> = snaps
            .windows(2)
            .map(|w| w[1].queue.minus(w[0].queue))
            .filter(|q| q.count > 0)
            .map(Duration::avg_us)
            .collect();
        Some(ServerSplit {
            success_count: d.success.count,
            fail_count: d.fail.count,
            inference_count: d.inference_count,
            execution_count: d.execution_count,
            avg_batch_size: if d.execution_count == 0 {
                0.0
            } else {
                d.inference_count as f64 / d.execution_count as f64
            },
            request_us: d.success.avg_us(),
            queue_us: d.queue.avg_us(),
            compute_input_us: d.compute_input.avg_us(),
            compute_infer_us: d.compute_infer.avg_us(),
            compute_output_us: d.compute_output.avg_us(),
            queue_us_median_of_intervals: median(&interval_avgs),
            queue_intervals: interval_avgs.len(),
        })
    }
}
