//! The per-model request queue and the dynamic batcher.
//!
//! Instance threads pull from one shared queue: whichever instance is free forms the next
//! batch, so a batch always goes to the next free instance. The batching decision is the
//! single function [`Queue::next_batch`]; it is pure bookkeeping over a locked `VecDeque`
//! per priority level and never runs model code.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::policy::{BatchPolicy, OnTimeout};
use crate::request::InferRequest;
use crate::stats::ModelStats;
use crate::status::Status;

struct Entry {
    req: InferRequest,
    enqueued: Instant,
    /// When a REJECT-policy request expires, or a DELAY-policy one loses its place.
    deadline: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// One FIFO per priority level; index 0 is level 1, served first.
    levels: Vec<VecDeque<Entry>>,
    /// DELAY-policy requests whose timeout passed: served after every level.
    delayed: VecDeque<Entry>,
    len: usize,
    closed: bool,
}

pub struct Queue {
    policy: BatchPolicy,
    /// Set with `preserve_ordering`: final answers leave in acceptance order.
    order: Option<Arc<crate::request::OrderKeeper>>,
    stats: Arc<ModelStats>,
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    pub fn new(policy: BatchPolicy, stats: Arc<ModelStats>) -> Queue {
        let levels = (0..policy.levels).map(|_| VecDeque::new()).collect();
        let order = policy
            .dynamic
            .as_ref()
            .filter(|d| d.preserve_ordering)
            .map(|_| Arc::new(crate::request::OrderKeeper::default()));
        Queue {
            policy,
            order,
            stats,
            state: Mutex::new(State {
                levels,
                ..State::default()
            }),
            ready: Condvar::new(),
        }
    }

    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// Queues a request, or gives it back with the reason it was refused.
    pub fn push(&self, mut req: InferRequest) -> Result<(), (Status, InferRequest)> {
        let level = match req.priority {
            0 => self.policy.default_level,
            p if (p as usize) <= self.policy.levels => p as usize,
            p if self.policy.levels == 1 => {
                // Priorities mean nothing without priority levels; Triton ignores them.
                let _ = p;
                1
            }
            p => {
                return Err((
                    Status::invalid_arg(format!(
                        "priority level {p} is out of range: the model has priority levels 1 to {}",
                        self.policy.levels
                    )),
                    req,
                ));
            }
        };
        let qp = &self.policy.queue[level - 1];
        let timeout_us = if req.timeout_us > 0 && qp.allow_override {
            req.timeout_us
        } else {
            qp.default_timeout_us
        };
        let now = Instant::now();
        let deadline = (timeout_us > 0).then(|| now + Duration::from_micros(timeout_us));
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            return Err((
                Status::unavailable("model is not accepting requests: it is being unloaded"),
                req,
            ));
        }
        if qp.max_queue_size > 0 && st.levels[level - 1].len() >= qp.max_queue_size {
            drop(st);
            return Err((Status::unavailable("Exceeds maximum queue size"), req));
        }
        req.responder.attach_stats(self.stats.clone(), req.arrival);
        if let Some(keeper) = &self.order {
            req.responder.attach_order(keeper.clone(), keeper.ticket());
        }
        let was_empty = st.len == 0;
        st.levels[level - 1].push_back(Entry {
            req,
            enqueued: now,
            deadline,
        });
        st.len += 1;
        self.stats.pending_inc();
        let wake = was_empty || deadline.is_some() || self.completes_batch(&st);
        drop(st);
        // One waiter is enough: whoever wakes re-reads the whole queue, and wakes another
        // if it leaves work behind (see `take`). Waking all would be a futex storm.
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Whether the queue now holds a batch to run at once. When it does not, an instance
    /// that is already timing the batcher's delay needs no wake-up: it looks again when the
    /// delay ends, and each needless wake-up costs a context switch.
    fn completes_batch(&self, st: &State) -> bool {
        let Some(dynamic) = self.policy.dynamic.as_ref() else {
            return true;
        };
        if dynamic.max_delay.is_zero() {
            return true;
        }
        let (_, rows, full) = self.candidate(st);
        full || rows >= self.target(dynamic)
    }

    /// The batch size the batcher fills before its delay ends.
    fn target(&self, dynamic: &super::policy::DynamicPolicy) -> usize {
        dynamic
            .preferred
            .last()
            .copied()
            .unwrap_or(self.policy.max_batch_size)
    }

    /// Stops accepting requests; queued ones are still served, then `next_batch` returns `None`.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn len(&self) -> usize {
        self.state.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until a batch is ready by the model's policy; `None` once closed and drained.
    pub fn next_batch(&self) -> Option<Vec<InferRequest>> {
        let mut st = self.state.lock();
        loop {
            let now = Instant::now();
            self.expire(&mut st, now);
            if st.len == 0 {
                if st.closed {
                    return None;
                }
                self.ready.wait(&mut st);
                continue;
            }
            let Some(dynamic) = self.policy.dynamic.as_ref() else {
                return Some(self.take(&mut st, 1, now));
            };
            let (count, rows, full) = self.candidate(&st);
            let target = self.target(dynamic);
            let oldest = self.oldest(&st).unwrap_or(now);
            let due = oldest + dynamic.max_delay;
            if full || rows >= target || dynamic.max_delay.is_zero() || now >= due || st.closed {
                // At the deadline, prefer the largest preferred size we can fill exactly.
                let count = if !full && rows < target && !dynamic.preferred.is_empty() {
                    self.preferred_prefix(&st, &dynamic.preferred)
                        .unwrap_or(count)
                } else {
                    count
                };
                return Some(self.take(&mut st, count.max(1), now));
            }
            let wait = due
                .saturating_duration_since(now)
                .min(self.next_expiry(&st, now));
            self.ready.wait_for(&mut st, wait);
        }
    }

    /// Serving order: levels first to last, then delayed requests.
    fn ordered<'a>(&self, st: &'a State) -> impl Iterator<Item = &'a Entry> {
        st.levels.iter().flatten().chain(st.delayed.iter())
    }

    fn oldest(&self, st: &State) -> Option<Instant> {
        self.ordered(st).map(|e| e.enqueued).min()
    }

    /// How many leading requests fit one batch, their rows, and whether the batch is
    /// closed by the size limit or an incompatible request.
    fn candidate(&self, st: &State) -> (usize, usize, bool) {
        let max = self.policy.max_batch_size.max(1);
        let mut count = 0;
        let mut rows = 0;
        let mut first: Option<&InferRequest> = None;
        for e in self.ordered(st) {
            let r = &e.req;
            if let Some(f) = first
                && (rows + r.batch_size > max || !compatible(f, r, &self.policy.ragged))
            {
                return (count, rows, true);
            }
            first.get_or_insert(r);
            count += 1;
            rows += r.batch_size;
        }
        (count, rows, rows >= max)
    }

    /// The number of leading requests whose rows add up to the largest preferred size.
    fn preferred_prefix(&self, st: &State, preferred: &[usize]) -> Option<usize> {
        let mut rows = 0;
        let mut best = None;
        for (i, e) in self.ordered(st).enumerate() {
            rows += e.req.batch_size;
            if preferred.contains(&rows) {
                best = Some(i + 1);
            }
            if rows >= *preferred.last()? {
                break;
            }
        }
        best
    }

    fn next_expiry(&self, st: &State, now: Instant) -> Duration {
        self.ordered(st)
            .filter_map(|e| e.deadline)
            .min()
            .map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(now)
            })
    }

    /// Removes the first `count` requests in serving order.
    fn take(&self, st: &mut State, count: usize, now: Instant) -> Vec<InferRequest> {
        let mut out = Vec::with_capacity(count);
        let State {
            levels, delayed, ..
        } = st;
        for q in levels.iter_mut().chain(std::iter::once(delayed)) {
            while out.len() < count {
                let Some(e) = q.pop_front() else { break };
                self.stats
                    .record_queue(now.saturating_duration_since(e.enqueued), now);
                out.push(e.req);
            }
        }
        st.len -= out.len();
        self.stats.pending_dec(out.len());
        if st.len > 0 {
            self.ready.notify_one();
        }
        out
    }

    /// Applies timeouts and drops requests whose client has gone.
    fn expire(&self, st: &mut State, now: Instant) {
        let mut removed = 0;
        let State {
            levels, delayed, ..
        } = st;
        for (i, q) in levels.iter_mut().enumerate() {
            let stale = |e: &Entry| {
                e.req.cancel.is_cancelled()
                    || e.req.responder.is_closed()
                    || e.deadline.is_some_and(|d| d <= now)
            };
            if !q.iter().any(stale) {
                continue;
            }
            let on_timeout = self.policy.queue[i].on_timeout;
            let mut kept = VecDeque::with_capacity(q.len());
            for mut e in q.drain(..) {
                if e.req.cancel.is_cancelled() || e.req.responder.is_closed() {
                    e.req
                        .responder
                        .fail(Status::cancelled("request was cancelled"));
                    removed += 1;
                } else if e.deadline.is_some_and(|d| d <= now) {
                    match on_timeout {
                        OnTimeout::Reject => {
                            e.req
                                .responder
                                .fail(Status::unavailable("Request timeout expired"));
                            removed += 1;
                        }
                        OnTimeout::Delay => {
                            e.deadline = None;
                            delayed.push_back(e);
                        }
                    }
                } else {
                    kept.push_back(e);
                }
            }
            *q = kept;
        }
        st.len -= removed;
        self.stats.pending_dec(removed);
    }
}

/// Two requests can share a batch when every input agrees on datatype and non-batch dims,
/// except inputs marked `allow_ragged_batch`, whose shapes may differ (the backend then
/// handles the ragged batch, as Triton's do).
fn compatible(a: &InferRequest, b: &InferRequest, ragged: &[String]) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs.iter().all(|x| {
            b.input(&x.name).is_some_and(|y| {
                x.tensor.datatype == y.datatype
                    && (x.tensor.shape.get(1..) == y.shape.get(1..) || ragged.contains(&x.name))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{NamedTensor, ResponseStream};
    use crate::scheduler::policy::{DynamicPolicy, QueuePolicy};
    use crate::tensor::Tensor;

    fn policy(preferred: Vec<usize>, delay_ms: u64) -> BatchPolicy {
        BatchPolicy {
            max_batch_size: 8,
            dynamic: Some(DynamicPolicy {
                preferred,
                max_delay: Duration::from_millis(delay_ms),
                preserve_ordering: false,
            }),
            levels: 2,
            default_level: 1,
            queue: vec![
                QueuePolicy::default(),
                QueuePolicy {
                    max_queue_size: 3,
                    ..QueuePolicy::default()
                },
            ],
            ragged: Vec::new(),
        }
    }

    fn req(rows: usize, width: i64, priority: u64) -> (InferRequest, ResponseStream) {
        let t = Tensor::from_values(vec![rows as i64, width], &vec![0f32; rows * width as usize]);
        let (mut r, s) = InferRequest::new(String::new(), vec![NamedTensor::new("X", t)]);
        r.batch_size = rows;
        r.priority = priority;
        (r, s)
    }

    fn queue(p: BatchPolicy) -> Queue {
        Queue::new(p, Arc::new(ModelStats::default()))
    }

    #[test]
    fn full_preferred_batch_goes_at_once() {
        let q = queue(policy(vec![4], 10_000));
        let mut streams = Vec::new();
        for _ in 0..4 {
            let (r, s) = req(1, 2, 0);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        let t = Instant::now();
        let b = q.next_batch().unwrap();
        assert_eq!(b.len(), 4);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn waiting_instance_wakes_when_a_push_completes_the_batch() {
        // The instance is already timing a 10 s delay when the batch fills: the push that
        // fills it must wake it (the pushes before it need not).
        let q = Arc::new(queue(policy(vec![4], 10_000)));
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || tx.send(q.next_batch().map(|b| b.len())).unwrap())
        };
        let mut streams = Vec::new();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(20));
            let (r, s) = req(1, 2, 0);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Some(4)));
        waiter.join().unwrap();
    }

    #[test]
    fn waiting_instance_wakes_for_an_incompatible_request() {
        // A request that cannot join the forming batch closes it: the batch goes at once.
        let q = Arc::new(queue(policy(vec![4], 10_000)));
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || tx.send(q.next_batch().map(|b| b.len())).unwrap())
        };
        let (a, _sa) = req(1, 2, 0);
        q.push(a).map_err(|e| e.0).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (b, _sb) = req(1, 3, 0);
        q.push(b).map_err(|e| e.0).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Some(1)));
        waiter.join().unwrap();
    }

    #[test]
    fn deadline_sends_largest_preferred_prefix() {
        let q = queue(policy(vec![2, 4], 20));
        let mut streams = Vec::new();
        for _ in 0..3 {
            let (r, s) = req(1, 2, 0);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        assert_eq!(q.next_batch().unwrap().len(), 2);
        assert_eq!(q.next_batch().unwrap().len(), 1);
    }

    #[test]
    fn incompatible_shapes_split_batches() {
        let q = queue(policy(vec![], 0));
        let mut streams = Vec::new();
        for w in [2, 2, 3] {
            let (r, s) = req(1, w, 0);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        assert_eq!(q.next_batch().unwrap().len(), 2);
        assert_eq!(q.next_batch().unwrap().len(), 1);
    }

    #[test]
    fn ragged_inputs_share_batches() {
        let mut p = policy(vec![], 0);
        p.ragged = vec!["X".into()];
        let q = queue(p);
        let mut streams = Vec::new();
        for w in [2, 3, 5] {
            let (r, s) = req(1, w, 0);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        assert_eq!(q.next_batch().unwrap().len(), 3);
    }

    #[test]
    fn priorities_and_queue_limits() {
        let q = queue(policy(vec![], 0));
        let mut streams = Vec::new();
        for _ in 0..3 {
            let (r, s) = req(8, 2, 2);
            q.push(r).map_err(|e| e.0).unwrap();
            streams.push(s);
        }
        let (r, _s) = req(1, 2, 2);
        let (status, r) = q.push(r).unwrap_err();
        assert_eq!(status.message, "Exceeds maximum queue size");
        std::mem::forget(r);
        let (r, _s2) = req(1, 2, 5);
        let (status, r) = q.push(r).unwrap_err();
        assert!(
            status.message.contains("priority level 5"),
            "{}",
            status.message
        );
        std::mem::forget(r);
        let (r, s) = req(1, 2, 1);
        q.push(r).map_err(|e| e.0).unwrap();
        streams.push(s);
        // The level-1 request jumps the three level-2 ones.
        let b = q.next_batch().unwrap();
        assert_eq!(b[0].priority, 1);
    }

    #[test]
    fn reject_timeout_fails_request() {
        let mut p = policy(vec![], 50);
        p.queue[0].default_timeout_us = 1;
        let q = queue(p);
        let (r, mut s) = req(1, 2, 0);
        q.push(r).map_err(|e| e.0).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        q.close();
        assert!(q.next_batch().is_none());
        let item = s.blocking_next().unwrap();
        assert_eq!(
            item.response.unwrap().unwrap_err().message,
            "Request timeout expired"
        );
    }

    #[test]
    fn close_drains_then_ends() {
        let q = queue(policy(vec![], 1000));
        let (r, _s) = req(1, 2, 0);
        q.push(r).map_err(|e| e.0).unwrap();
        q.close();
        assert_eq!(q.next_batch().unwrap().len(), 1);
        assert!(q.next_batch().is_none());
        let (r, _s) = req(1, 2, 0);
        let (status, r) = q.push(r).unwrap_err();
        assert_eq!(status.code, crate::status::Code::Unavailable);
        std::mem::forget(r);
    }
}
