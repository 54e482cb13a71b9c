//! Scheduling: turning queued requests into executions on backend instances.
//!
//! `pool`: one shared queue (with the dynamic batcher, priorities and queue policies) served
//! by every instance of the model. `sequence`: requests of one correlation id go, in order,
//! to the instance that holds the sequence's state, with the control inputs added. Compute
//! runs on the instance threads only, never on the async runtime.

// A refused request goes back to the caller by value, so it can be failed there; refusals
// are rare, so the size of that error path does not matter.
#![allow(clippy::result_large_err)]

pub mod ensemble;
pub mod instance;
pub mod policy;
pub mod queue;
pub mod rate_limit;
pub mod sequence;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::backend::{Backend, BackendError, InstanceSpec};
use crate::config::ConfigExt;
use crate::request::InferRequest;
use crate::stats::ModelStats;
use crate::status::Status;
use instance::{BatchSource, ModelFiles};
use policy::BatchPolicy;
use queue::Queue;

/// The scheduler of one loaded model version.
pub struct Scheduler {
    kind: Kind,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Where refusals are counted.
    stats: Arc<ModelStats>,
}

enum Kind {
    Pool(Arc<PoolSource>),
    Sequence(Arc<sequence::SequenceScheduler>),
    Ensemble(ensemble::Ensemble, Arc<ModelStats>),
}

impl Scheduler {
    /// Creates the model's instances (each on its own thread) and the scheduler feeding them.
    pub fn start(
        backend: Arc<dyn Backend>,
        files: &ModelFiles,
        specs: Vec<(InstanceSpec, Option<rate_limit::Limit>)>,
        stats: Arc<ModelStats>,
    ) -> Result<Scheduler, BackendError> {
        let instances = specs.len();
        let (kind, source): (Kind, Arc<dyn BatchSource>) = match files.config.sequence_batching() {
            Some(seq) => {
                let s = Arc::new(sequence::SequenceScheduler::new(
                    &files.config,
                    seq,
                    &files.model_dir,
                    instances,
                    stats.clone(),
                )?);
                (Kind::Sequence(s.clone()), s)
            }
            None => {
                let policy = BatchPolicy::from_config(&files.config);
                let q = Arc::new(PoolSource {
                    queue: Queue::new(policy, stats.clone()),
                    alive: AtomicUsize::new(instances),
                    lost: Mutex::new(None),
                });
                (Kind::Pool(q.clone()), q)
            }
        };
        let (threads, result) = instance::start(backend, files, specs, source, stats.clone());
        let sched = Scheduler {
            kind,
            threads: Mutex::new(threads),
            stats,
        };
        if let Err(e) = result {
            sched.stop();
            return Err(e);
        }
        Ok(sched)
    }

    /// The scheduler of an ensemble: requests flow through its steps via `submit`.
    pub fn ensemble(
        config: &crate::config::ModelConfig,
        submit: ensemble::Submit,
        stats: Arc<ModelStats>,
    ) -> Result<Scheduler, Status> {
        let e = ensemble::Ensemble::start(config, submit)?;
        Ok(Scheduler {
            kind: Kind::Ensemble(e, stats.clone()),
            threads: Mutex::new(Vec::new()),
            stats,
        })
    }

    /// Queues a request. A refused request is failed (and counted) before the error returns.
    pub fn enqueue(&self, mut req: InferRequest) -> Result<(), Status> {
        if let Some(t) = req.trace.clone() {
            t.mark("QUEUE_START");
            req.responder.attach_trace(t);
        }
        let refused = match &self.kind {
            Kind::Pool(p) => p.push(req),
            Kind::Sequence(s) => s.push(req),
            Kind::Ensemble(e, stats) => {
                req.responder.attach_stats(stats.clone(), req.arrival);
                e.enqueue(req)
            }
        };
        match refused {
            Ok(()) => Ok(()),
            Err((status, mut req)) => {
                // Refused by the scheduler (full queue, unloading, bad priority): a failure
                // of this model, unlike requests refused by validation before it.
                req.responder.attach_stats(self.stats.clone(), req.arrival);
                req.responder.fail(status.clone());
                Err(status)
            }
        }
    }

    /// Requests queued and not yet executing.
    pub fn queued(&self) -> usize {
        match &self.kind {
            Kind::Pool(p) => p.queue.len(),
            Kind::Sequence(s) => s.queued(),
            Kind::Ensemble(..) => 0,
        }
    }

    /// Stops accepting requests and lets the instances finish what is queued, then exit.
    pub fn close(&self) {
        match &self.kind {
            Kind::Pool(p) => p.queue.close(),
            Kind::Sequence(s) => s.close(),
            Kind::Ensemble(e, _) => e.close(),
        }
    }

    /// Closes the scheduler and waits for every instance thread to finish its work.
    pub fn stop(&self) {
        self.close();
        if let Kind::Ensemble(e, _) = &self.kind {
            e.stop();
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Scheduler {
    /// Closes without joining: the last reference may drop on an async worker, which must
    /// not block. The threads exit on their own once the queue drains; `stop` joins them.
    fn drop(&mut self) {
        self.close();
    }
}

/// The shared queue of a pool of identical instances.
struct PoolSource {
    queue: Queue,
    alive: AtomicUsize,
    lost: Mutex<Option<String>>,
}

impl PoolSource {
    fn push(&self, req: InferRequest) -> Result<(), (Status, InferRequest)> {
        if let Some(reason) = self.lost.lock().as_ref() {
            return Err((
                Status::unavailable(format!("model has no live instance: {reason}")),
                req,
            ));
        }
        self.queue.push(req)
    }
}

impl BatchSource for PoolSource {
    fn next_batch(&self, _index: usize) -> Option<Vec<InferRequest>> {
        self.queue.next_batch()
    }

    fn instance_lost(&self, _index: usize, reason: &str) {
        if self.alive.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last instance is gone: fail what waits rather than let it hang.
            *self.lost.lock() = Some(reason.to_string());
            self.queue.close();
            while let Some(batch) = self.queue.next_batch() {
                for mut r in batch {
                    r.responder.fail(Status::unavailable(format!(
                        "model has no live instance: {reason}"
                    )));
                }
            }
        }
    }
}
