//! One load level: closed-loop workers (concurrency) or an open-loop dispatcher
//! (request rate), a warm-up, a measurement window, and the drain. Every level is
//! bounded in requests (`max_level_requests`) and in time (`max_level_time` plus the
//! request timeout for the drain).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{Client, Prepared};
use super::cpu::process_cpu_time;
use super::report::{ClientCpu, ErrorCount, LevelReport};
use super::schedule::{Distribution, Schedule};
use super::server_stats::{ServerSplit, StatsSnapshot};
use super::stats::{Record, window};
use super::{Measurement, Window};

/// A request sent this much after its scheduled time counts as delayed.
const LATE: Duration = Duration::from_millis(2);
/// Distinct error texts kept per level; the rest are summed into one line.
const MAX_ERROR_KINDS: usize = 20;
/// How often the controller looks at the counters while it waits.
const TICK: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, Debug)]
pub(crate) enum LevelLoad {
    Concurrency(u64),
    Rate(f64, Distribution),
}

pub(crate) struct LevelContext<'a> {
    pub client: Arc<Client>,
    pub prepared: Arc<Prepared>,
    pub measurement: &'a Measurement,
    pub stats: bool,
    pub batch_size: usize,
    pub lanes: usize,
    pub max_in_flight: usize,
    pub seed: u64,
}

struct Shared {
    stop: CancellationToken,
    max_requests: u64,
    sent: AtomicU64,
    completed: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Shared {
    fn new(max_requests: u64) -> Self {
        Shared {
            stop: CancellationToken::new(),
            max_requests,
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    /// Takes one request from the level's budget.
    fn claim(&self) -> bool {
        self.sent
            .fetch_update(Relaxed, Relaxed, |s| {
                (s < self.max_requests).then_some(s + 1)
            })
            .is_ok()
    }

    fn enter(&self) {
        let n = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(n, Relaxed);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.completed.fetch_add(1, Relaxed);
    }

    fn exhausted(&self) -> bool {
        let sent = self.sent.load(Relaxed);
        sent >= self.max_requests && self.completed.load(Relaxed) >= sent
    }
}

#[derive(Default)]
struct Collector {
    records: Vec<Record>,
    errors: HashMap<String, u64>,
}

impl Collector {
    fn push(&mut self, start: Instant, end: Instant, result: Result<(), String>) {
        let ok = result.is_ok();
        if let Err(e) = result {
            *self.errors.entry(e).or_default() += 1;
        }
        self.records.push(Record { start, end, ok });
    }

    fn merge(&mut self, other: Collector) {
        self.records.extend(other.records);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

async fn send_one(
    client: &Client,
    prepared: &Prepared,
    shared: &Shared,
    index: usize,
    lane: usize,
) -> (Instant, Instant, Result<(), String>) {
    shared.enter();
    let start = Instant::now();
    let r = client.infer(prepared, index, lane).await;
    let end = Instant::now();
    shared.leave();
    (start, end, r)
}

async fn concurrency_worker(
    client: Arc<Client>,
    prepared: Arc<Prepared>,
    shared: Arc<Shared>,
    lane: usize,
) -> Collector {
    let mut col = Collector::default();
    let mut index = lane;
    while !shared.stop.is_cancelled() && shared.claim() {
        let (start, end, r) = send_one(&client, &prepared, &shared, index, lane).await;
        col.push(start, end, r);
        index = index.wrapping_add(1);
    }
    col
}

struct Dispatch {
    /// Send time of each request, and whether it left late.
    sends: Vec<(Instant, bool)>,
}

#[allow(clippy::too_many_arguments)]
async fn rate_dispatcher(
    client: Arc<Client>,
    prepared: Arc<Prepared>,
    shared: Arc<Shared>,
    collector: Arc<Mutex<Collector>>,
    mut schedule: Schedule,
    lanes: usize,
    max_in_flight: usize,
) -> Dispatch {
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let tracker = TaskTracker::new();
    let start = Instant::now();
    let mut sends = Vec::new();
    let mut k = 0usize;
    loop {
        let at = start + schedule.next_offset();
        if at > Instant::now() {
            tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = tokio::time::sleep_until(at.into()) => {}
            }
        }
        let permit = tokio::select! {
            _ = shared.stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        if shared.stop.is_cancelled() || !shared.claim() {
            break;
        }
        let now = Instant::now();
        sends.push((now, now.saturating_duration_since(at) >= LATE));
        let (client, prepared, shared, collector) = (
            client.clone(),
            prepared.clone(),
            shared.clone(),
            collector.clone(),
        );
        tracker.spawn(async move {
            let (s, e, r) = send_one(&client, &prepared, &shared, k, k % lanes.max(1)).await;
            collector.lock().push(s, e, r);
            drop(permit);
        });
        k = k.wrapping_add(1);
    }
    tracker.close();
    tracker.wait().await;
    Dispatch { sends }
}

/// Runs one level and reports it; `warnings` collects problems that do not stop the run.
pub(crate) async fn run_level(
    ctx: &LevelContext<'_>,
    load: LevelLoad,
    warnings: &mut Vec<String>,
) -> LevelReport {
    let m = ctx.measurement;
    let shared = Arc::new(Shared::new(m.max_level_requests));
    let collector = Arc::new(Mutex::new(Collector::default()));
    let mut workers = Vec::new();
    let mut dispatcher = None;
    match load {
        LevelLoad::Concurrency(n) => {
            for lane in 0..n as usize {
                workers.push(tokio::spawn(concurrency_worker(
                    ctx.client.clone(),
                    ctx.prepared.clone(),
                    shared.clone(),
                    lane,
                )));
            }
        }
        LevelLoad::Rate(rate, dist) => {
            dispatcher = Some(tokio::spawn(rate_dispatcher(
                ctx.client.clone(),
                ctx.prepared.clone(),
                shared.clone(),
                collector.clone(),
                Schedule::new(dist, rate, ctx.seed),
                ctx.lanes,
                ctx.max_in_flight,
            )));
        }
    }

    let level_start = Instant::now();
    let deadline = level_start + m.max_level_time;
    let mut truncated = false;

    // Warm-up: requests and time, whichever comes last.
    loop {
        if shared.completed.load(Relaxed) >= m.warmup_requests
            && level_start.elapsed() >= m.warmup_time
        {
            break;
        }
        if Instant::now() >= deadline || shared.exhausted() {
            truncated = true;
            break;
        }
        tokio::time::sleep(TICK).await;
    }

    // Measurement window, with statistics read at its ends and every stats interval.
    let mut snaps: Vec<StatsSnapshot> = Vec::new();
    let mut stats_failed: Option<String> = None;
    let take_stats = async |snaps: &mut Vec<StatsSnapshot>, failed: &mut Option<String>| {
        if ctx.stats && failed.is_none() {
            match ctx.client.stats().await {
                Ok(s) => snaps.push(s),
                Err(e) => *failed = Some(e.to_string()),
            }
        }
    };
    take_stats(&mut snaps, &mut stats_failed).await;
    let cpu0 = process_cpu_time();
    let w0 = Instant::now();
    let completed0 = shared.completed.load(Relaxed);
    let in_flight0 = shared.sent.load(Relaxed).saturating_sub(completed0);
    let interval = m.stats_interval.filter(|d| !d.is_zero());
    let mut next_stats = interval.map(|d| w0 + d);
    loop {
        let now = Instant::now();
        let done = match m.window {
            Window::Time(d) => now >= w0 + d,
            // Requests in flight at the start do not count, so wait for them too.
            Window::Count(n) => shared.completed.load(Relaxed) - completed0 >= n + in_flight0,
        };
        if done {
            break;
        }
        if now >= deadline || shared.exhausted() {
            truncated = true;
            break;
        }
        if let (Some(at), Some(d)) = (next_stats, interval)
            && now >= at
        {
            take_stats(&mut snaps, &mut stats_failed).await;
            next_stats = Some(at + d);
        }
        let mut wake = match m.window {
            Window::Time(d) => w0 + d,
            Window::Count(_) => now + TICK,
        };
        wake = wake.min(deadline);
        if let Some(at) = next_stats {
            wake = wake.min(at);
        }
        tokio::time::sleep_until(wake.max(now).into()).await;
    }
    let w1 = Instant::now();
    let cpu1 = process_cpu_time();
    take_stats(&mut snaps, &mut stats_failed).await;

    // Drain: no new requests; the ones in flight finish (bounded by the request timeout).
    shared.stop.cancel();
    let mut all = Collector::default();
    for w in workers {
        match w.await {
            Ok(c) => all.merge(c),
            Err(e) => warnings.push(format!("a load worker failed: {e}")),
        }
    }
    let mut sends = Vec::new();
    if let Some(d) = dispatcher {
        match d.await {
            Ok(d) => sends = d.sends,
            Err(e) => warnings.push(format!("the request dispatcher failed: {e}")),
        }
    }
    all.merge(std::mem::take(&mut *collector.lock()));

    if let Some(e) = stats_failed {
        warnings.push(format!(
            "server statistics could not be read during the level: {e}"
        ));
    }
    let span = w1.saturating_duration_since(w0);
    let secs = span.as_secs_f64().max(1e-9);
    let counts = window(&all.records, w0, w1);
    let cpu = cpu1.saturating_sub(cpu0);
    let completed_in_window = all
        .records
        .iter()
        .filter(|r| r.end >= w0 && r.end <= w1)
        .count() as f64;
    let (concurrency, request_rate) = match load {
        LevelLoad::Concurrency(n) => (Some(n), None),
        LevelLoad::Rate(r, _) => (None, Some(r)),
    };
    let in_window: Vec<&(Instant, bool)> =
        sends.iter().filter(|(t, _)| *t >= w0 && *t <= w1).collect();
    let mut errors: Vec<ErrorCount> = all
        .errors
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
    if errors.len() > MAX_ERROR_KINDS {
        let rest: u64 = errors[MAX_ERROR_KINDS..].iter().map(|e| e.count).sum();
        let kinds = errors.len() - MAX_ERROR_KINDS;
        errors.truncate(MAX_ERROR_KINDS);
        errors.push(ErrorCount {
            message: format!("{kinds} other error texts"),
            count: rest,
        });
    }
    LevelReport {
        concurrency,
        request_rate,
        window_ms: span.as_secs_f64() * 1000.0,
        truncated,
        requests_ok: counts.ok,
        requests_failed: counts.failed,
        requests_total: all.records.len() as u64,
        failed_total: all.records.iter().filter(|r| !r.ok).count() as u64,
        throughput_infer_per_s: counts.ok as f64 * ctx.batch_size as f64 / secs,
        throughput_req_per_s: counts.ok as f64 / secs,
        latency: counts.latency,
        server: ServerSplit::from_snapshots(&snaps),
        client_cpu: ClientCpu {
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            percent_of_one_core: cpu.as_secs_f64() / secs * 100.0,
            us_per_request: if completed_in_window > 0.0 {
                cpu.as_secs_f64() * 1e6 / completed_in_window
            } else {
                0.0
            },
        },
        send_rate: request_rate.map(|_| in_window.len() as f64 / secs),
        delayed_requests: request_rate
            .map(|_| in_window.iter().filter(|(_, late)| *late).count() as u64),
        max_in_flight: shared.max_in_flight.load(Relaxed),
        errors,
    }
}
