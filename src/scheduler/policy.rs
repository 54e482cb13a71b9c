//! Batching and queue policies, read once from a model config.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{ConfigExt, ModelConfig};
use crate::proto::inference::{ModelQueuePolicy, model_queue_policy::TimeoutAction};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTimeout {
    Reject,
    Delay,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePolicy {
    pub on_timeout: OnTimeout,
    /// 0 means no timeout.
    pub default_timeout_us: u64,
    pub allow_override: bool,
    /// 0 means unbounded.
    pub max_queue_size: usize,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            on_timeout: OnTimeout::Reject,
            default_timeout_us: 0,
            allow_override: false,
            max_queue_size: 0,
        }
    }
}

impl From<&ModelQueuePolicy> for QueuePolicy {
    fn from(p: &ModelQueuePolicy) -> Self {
        QueuePolicy {
            on_timeout: if p.timeout_action == TimeoutAction::Delay as i32 {
                OnTimeout::Delay
            } else {
                OnTimeout::Reject
            },
            default_timeout_us: p.default_timeout_microseconds,
            allow_override: p.allow_timeout_override,
            max_queue_size: p.max_queue_size as usize,
        }
    }
}

/// How requests are grouped into executions.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPolicy {
    /// 0: the model does not batch; every execution gets one request.
    pub max_batch_size: usize,
    /// `None`: no dynamic batcher; every execution gets one request.
    pub dynamic: Option<DynamicPolicy>,
    /// Number of priority levels (at least 1); level 1 is served first.
    pub levels: usize,
    pub default_level: usize,
    /// Per level, index 0 = level 1.
    pub queue: Vec<QueuePolicy>,
    /// Inputs with `allow_ragged_batch`: requests may share a batch whatever their shapes.
    pub ragged: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DynamicPolicy {
    /// Ascending.
    pub preferred: Vec<usize>,
    pub max_delay: Duration,
    pub preserve_ordering: bool,
}

impl BatchPolicy {
    pub fn from_config(cfg: &ModelConfig) -> BatchPolicy {
        let max_batch_size = cfg.max_batch_size.max(0) as usize;
        let ragged: Vec<String> = cfg
            .input
            .iter()
            .filter(|i| i.allow_ragged_batch)
            .map(|i| i.name.clone())
            .collect();
        let Some(db) = cfg.dynamic_batching() else {
            return BatchPolicy {
                max_batch_size,
                dynamic: None,
                levels: 1,
                default_level: 1,
                queue: vec![QueuePolicy::default()],
                ragged,
            };
        };
        let mut preferred: Vec<usize> = db
            .preferred_batch_size
            .iter()
            .map(|&p| p.max(1) as usize)
            .collect();
        preferred.sort_unstable();
        preferred.dedup();
        let levels = (db.priority_levels as usize).max(1);
        let default_level = if db.priority_levels == 0 {
            1
        } else {
            (db.default_priority_level as usize).clamp(1, levels)
        };
        let base = db
            .default_queue_policy
            .as_ref()
            .map(QueuePolicy::from)
            .unwrap_or_default();
        let overrides: HashMap<u64, QueuePolicy> = db
            .priority_queue_policy
            .iter()
            .map(|(k, v)| (*k, QueuePolicy::from(v)))
            .collect();
        let queue = (1..=levels as u64)
            .map(|l| overrides.get(&l).cloned().unwrap_or_else(|| base.clone()))
            .collect();
        BatchPolicy {
            max_batch_size,
            dynamic: (max_batch_size > 0).then(|| DynamicPolicy {
                preferred,
                max_delay: Duration::from_micros(db.max_queue_delay_microseconds),
                preserve_ordering: db.preserve_ordering,
            }),
            levels,
            default_level,
            queue,
            ragged,
        }
    }
}
