//! The sequence batcher: every request of a correlation id goes, in order, to the instance
//! that holds that sequence's state, with the control inputs (START, END, READY, CORRID)
//! the config asks for added as tensors. An instance batches requests of different
//! sequences, at most one of each sequence per execution, so each sequence stays in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::instance::BatchSource;
use super::state::{self, SequenceStates, StateSpec};
use crate::backend::BackendError;
use crate::config::ModelConfig;
use crate::proto::inference::ModelSequenceBatching;
use crate::proto::inference::model_sequence_batching::{Control, StrategyChoice, control::Kind};
use crate::request::{CorrelationId, InferRequest, NamedTensor};
use crate::stats::ModelStats;
use crate::status::Status;
use crate::tensor::{DataType, Tensor};

/// One control input to add to every request.
struct ControlInput {
    name: String,
    kind: Kind,
    /// The false and true values, as one-element tensors.
    values: Option<[Tensor; 2]>,
    corrid_type: Option<DataType>,
}

struct Slot {
    instance: usize,
    last_seen: Instant,
    /// Implicit state values (None when the config keeps no state).
    states: Option<Arc<SequenceStates>>,
}

#[derive(Default)]
struct InstanceQueue {
    items: VecDeque<Waiting>,
}

/// A queued request, when it was queued, and its sequence's implicit state.
struct Waiting {
    req: InferRequest,
    at: Instant,
    states: Option<Arc<SequenceStates>>,
}

struct State {
    queues: Vec<InstanceQueue>,
    sequences: HashMap<CorrelationId, Slot>,
    /// Active sequences per instance, to place new ones on the least loaded.
    load: Vec<usize>,
    live: Vec<bool>,
    closed: bool,
    last_reap: Instant,
}

pub struct SequenceScheduler {
    model: String,
    batching: bool,
    max_batch_size: usize,
    /// The strategy's `max_queue_delay_microseconds`: how long a batch may wait to reach
    /// `target` sequences (0: run what is there).
    delay: Duration,
    target: usize,
    idle: Duration,
    controls: Vec<ControlInput>,
    /// `sequence_batching.state`; empty when the model keeps no implicit state.
    states: Arc<[StateSpec]>,
    /// Config outputs, for whether a client may ask for an output state.
    outputs: Vec<String>,
    stats: Arc<ModelStats>,
    state: Mutex<State>,
    ready: Vec<Condvar>,
}

impl SequenceScheduler {
    pub fn new(
        cfg: &ModelConfig,
        seq: &ModelSequenceBatching,
        model_dir: &std::path::Path,
        instances: usize,
        stats: Arc<ModelStats>,
    ) -> Result<Self, BackendError> {
        let mut controls = Vec::new();
        for ci in &seq.control_input {
            for c in &ci.control {
                controls.push(control_input(&ci.name, c)?);
            }
        }
        let idle_us = if seq.max_sequence_idle_microseconds == 0 {
            1_000_000
        } else {
            seq.max_sequence_idle_microseconds
        };
        let max_batch_size = cfg.max_batch_size.max(1) as usize;
        let (delay_us, target) = match &seq.strategy_choice {
            Some(StrategyChoice::Oldest(o)) => (
                o.max_queue_delay_microseconds,
                // The largest preferred size that fits, as the dynamic batcher aims for.
                o.preferred_batch_size
                    .iter()
                    .map(|&p| p.max(1) as usize)
                    .filter(|&p| p <= max_batch_size)
                    .max()
                    .unwrap_or(max_batch_size),
            ),
            Some(StrategyChoice::Direct(d)) => (d.max_queue_delay_microseconds, max_batch_size),
            None => (0, max_batch_size),
        };
        Ok(SequenceScheduler {
            model: cfg.name.clone(),
            batching: cfg.max_batch_size > 0,
            max_batch_size,
            delay: Duration::from_micros(delay_us),
            target,
            idle: Duration::from_micros(idle_us),
            controls,
            states: state::specs(seq, model_dir)?.into(),
            outputs: cfg.output.iter().map(|o| o.name.clone()).collect(),
            stats,
            state: Mutex::new(State {
                queues: (0..instances).map(|_| InstanceQueue::default()).collect(),
                sequences: HashMap::new(),
                load: vec![0; instances],
                live: vec![true; instances],
                closed: false,
                last_reap: Instant::now(),
            }),
            ready: (0..instances).map(|_| Condvar::new()).collect(),
        })
    }

    pub fn push(&self, mut req: InferRequest) -> Result<(), (Status, InferRequest)> {
        let Some(seq) = req.sequence.clone() else {
            return Err((
                Status::invalid_arg(format!(
                    "inference request to model '{}' must specify a non-zero or non-empty correlation ID",
                    self.model
                )),
                req,
            ));
        };
        if matches!(&seq.id, CorrelationId::Int(0))
            || matches!(&seq.id, CorrelationId::Str(s) if s.is_empty())
        {
            return Err((
                Status::invalid_arg(format!(
                    "inference request to model '{}' must specify a non-zero or non-empty correlation ID",
                    self.model
                )),
                req,
            ));
        }
        if self.batching && req.batch_size != 1 {
            return Err((
                Status::invalid_arg(format!(
                    "inference request to model '{}' must specify batch-size 1 due to requirements of sequence batcher",
                    self.model
                )),
                req,
            ));
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            return Err((
                Status::unavailable("model is not accepting requests: it is being unloaded"),
                req,
            ));
        }
        self.reap(&mut st, now);
        let fresh = || (!self.states.is_empty()).then(|| SequenceStates::new(self.states.clone()));
        let instance = match st.sequences.get_mut(&seq.id) {
            Some(slot) if !seq.start => {
                slot.last_seen = now;
                slot.instance
            }
            existing => {
                if !seq.start {
                    let id = match &seq.id {
                        CorrelationId::Int(i) => i.to_string(),
                        CorrelationId::Str(s) => s.clone(),
                    };
                    drop(st);
                    return Err((
                        Status::invalid_arg(format!(
                            "inference request for sequence {id} to model '{}' must specify the START flag on the first request of the sequence",
                            self.model
                        )),
                        req,
                    ));
                }
                // A new START on a live sequence restarts it where it lives, state and all.
                match existing {
                    Some(slot) => {
                        slot.last_seen = now;
                        slot.states = fresh();
                        slot.instance
                    }
                    None => {
                        let Some(i) = (0..st.load.len())
                            .filter(|&i| st.live[i])
                            .min_by_key(|&i| st.load[i])
                        else {
                            drop(st);
                            return Err((Status::unavailable("model has no live instance"), req));
                        };
                        st.load[i] += 1;
                        st.sequences.insert(
                            seq.id.clone(),
                            Slot {
                                instance: i,
                                last_seen: now,
                                states: fresh(),
                            },
                        );
                        i
                    }
                }
            }
        };
        let states = st.sequences.get(&seq.id).and_then(|s| s.states.clone());
        if let Some(states) = &states {
            let strip = states.strip_for(&req, &self.outputs);
            req.responder.on_final(states.capture_on_final(strip));
        }
        if seq.end && st.sequences.remove(&seq.id).is_some() {
            st.load[instance] -= 1;
        }
        self.add_controls(&mut req, &seq.id, seq.start, seq.end);
        req.responder.attach_stats(self.stats.clone(), req.arrival);
        st.queues[instance].items.push_back(Waiting {
            req,
            at: now,
            states,
        });
        self.stats.pending_inc();
        drop(st);
        self.ready[instance].notify_one();
        Ok(())
    }

    /// Forgets sequences idle for longer than `max_sequence_idle_microseconds`.
    fn reap(&self, st: &mut State, now: Instant) {
        if now.duration_since(st.last_reap) < Duration::from_millis(50) {
            return;
        }
        st.last_reap = now;
        let idle = self.idle;
        let mut freed = Vec::new();
        st.sequences.retain(|_, s| {
            let keep = now.duration_since(s.last_seen) < idle;
            if !keep {
                freed.push(s.instance);
            }
            keep
        });
        for i in freed {
            st.load[i] -= 1;
        }
    }

    fn add_controls(&self, req: &mut InferRequest, id: &CorrelationId, start: bool, end: bool) {
        let shape = if self.batching { vec![1, 1] } else { vec![1] };
        for c in &self.controls {
            let t = match c.kind {
                Kind::ControlSequenceStart => {
                    c.values.as_ref().map(|v| v[usize::from(start)].clone())
                }
                Kind::ControlSequenceEnd => c.values.as_ref().map(|v| v[usize::from(end)].clone()),
                Kind::ControlSequenceReady => c.values.as_ref().map(|v| v[1].clone()),
                Kind::ControlSequenceCorrid => {
                    Some(corrid_tensor(id, c.corrid_type.unwrap_or(DataType::Uint64)))
                }
            };
            if let Some(mut t) = t {
                t.shape = shape.clone();
                req.inputs.push(NamedTensor::new(c.name.clone(), t));
            }
        }
    }

    /// How many sequences have a request waiting, at most `target` counted.
    fn distinct_sequences(&self, q: &VecDeque<Waiting>) -> usize {
        let mut seen: Vec<&CorrelationId> = Vec::new();
        for w in q {
            if let Some(s) = &w.req.sequence
                && !seen.contains(&&s.id)
            {
                seen.push(&s.id);
                if seen.len() >= self.target {
                    break;
                }
            }
        }
        seen.len()
    }

    pub fn queued(&self) -> usize {
        self.state.lock().queues.iter().map(|q| q.items.len()).sum()
    }

    pub fn close(&self) {
        self.state.lock().closed = true;
        for c in &self.ready {
            c.notify_all();
        }
    }
}

impl BatchSource for SequenceScheduler {
    fn next_batch(&self, index: usize) -> Option<Vec<InferRequest>> {
        let mut st = self.state.lock();
        loop {
            let q = &mut st.queues[index].items;
            if !q.is_empty() {
                let now = Instant::now();
                // Give other sequences until the oldest request's delay is up to join.
                if !self.delay.is_zero() && !st.closed {
                    let q = &st.queues[index].items;
                    let deadline = q.iter().map(|w| w.at).min().unwrap_or(now) + self.delay;
                    if now < deadline && self.distinct_sequences(q) < self.target {
                        self.ready[index].wait_until(&mut st, deadline);
                        continue;
                    }
                }
                let q = &mut st.queues[index].items;
                let mut batch = Vec::new();
                let mut taken: Vec<CorrelationId> = Vec::new();
                let mut rest = VecDeque::with_capacity(q.len());
                while let Some(mut w) = q.pop_front() {
                    if w.req.cancel.is_cancelled() || w.req.responder.is_closed() {
                        w.req
                            .responder
                            .fail(Status::cancelled("request was cancelled"));
                        self.stats.pending_dec(1);
                        continue;
                    }
                    let id = w.req.sequence.as_ref().map(|s| s.id.clone());
                    let dup = id.as_ref().is_some_and(|id| taken.contains(id));
                    if dup || batch.len() >= self.max_batch_size {
                        rest.push_back(w);
                    } else {
                        self.stats
                            .record_queue(now.saturating_duration_since(w.at), now);
                        // The state is read now: the sequence's previous request is done.
                        if let Some(states) = &w.states {
                            states.feed(&mut w.req, self.batching);
                        }
                        taken.extend(id);
                        batch.push(w.req);
                    }
                }
                *q = rest;
                self.stats.pending_dec(batch.len());
                if !batch.is_empty() {
                    return Some(batch);
                }
                continue;
            }
            if st.closed {
                return None;
            }
            self.ready[index].wait(&mut st);
        }
    }

    fn instance_lost(&self, index: usize, reason: &str) {
        let mut st = self.state.lock();
        st.live[index] = false;
        let items: Vec<_> = st.queues[index].items.drain(..).collect();
        st.sequences.retain(|_, s| s.instance != index);
        st.load[index] = 0;
        drop(st);
        self.stats.pending_dec(items.len());
        for Waiting { req: mut r, .. } in items {
            r.responder.fail(Status::unavailable(format!(
                "the instance holding this sequence failed: {reason}"
            )));
        }
    }
}

fn control_input(name: &str, c: &Control) -> Result<ControlInput, BackendError> {
    let kind = Kind::try_from(c.kind)
        .map_err(|_| BackendError::Load(format!("control input '{name}' has an unknown kind")))?;
    let values = if !c.int32_false_true.is_empty() {
        Some(pair(name, &c.int32_false_true, |v| {
            Tensor::from_values(vec![1], &[v])
        })?)
    } else if !c.fp32_false_true.is_empty() {
        Some(pair(name, &c.fp32_false_true, |v| {
            Tensor::from_values(vec![1], &[v])
        })?)
    } else if !c.bool_false_true.is_empty() {
        Some(pair(name, &c.bool_false_true, |v| {
            Tensor::from_values(vec![1], &[v])
        })?)
    } else {
        None
    };
    if kind != Kind::ControlSequenceCorrid && values.is_none() {
        return Err(BackendError::Load(format!(
            "control input '{name}' needs int32_false_true, fp32_false_true or bool_false_true"
        )));
    }
    let corrid_type = (kind == Kind::ControlSequenceCorrid)
        .then(|| DataType::from_config(c.data_type))
        .flatten();
    Ok(ControlInput {
        name: name.to_string(),
        kind,
        values,
        corrid_type,
    })
}

fn pair<T: Copy>(
    name: &str,
    v: &[T],
    make: impl Fn(T) -> Tensor,
) -> Result<[Tensor; 2], BackendError> {
    match v {
        [f, t] => Ok([make(*f), make(*t)]),
        _ => Err(BackendError::Load(format!(
            "control input '{name}' needs exactly two values (false, true)"
        ))),
    }
}

fn corrid_tensor(id: &CorrelationId, dt: DataType) -> Tensor {
    match (id, dt) {
        (CorrelationId::Str(s), _) => Tensor::from_strings(vec![1], &[s.as_bytes()]),
        (CorrelationId::Int(i), DataType::Int64) => Tensor::from_values(vec![1], &[*i as i64]),
        (CorrelationId::Int(i), DataType::Uint32) => Tensor::from_values(vec![1], &[*i as u32]),
        (CorrelationId::Int(i), DataType::Int32) => Tensor::from_values(vec![1], &[*i as i32]),
        (CorrelationId::Int(i), DataType::Bytes) => Tensor::from_strings(vec![1], &[i.to_string()]),
        (CorrelationId::Int(i), _) => Tensor::from_values(vec![1], &[*i]),
    }
}
