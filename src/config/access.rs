//! Convenience accessors for `ModelConfig` fields that live inside oneofs.

use crate::proto::inference::model_config::SchedulingChoice;
use crate::proto::inference::{
    ModelConfig, ModelDynamicBatching, ModelEnsembling, ModelSequenceBatching,
};

pub trait ConfigExt {
    fn dynamic_batching(&self) -> Option<&ModelDynamicBatching>;
    fn sequence_batching(&self) -> Option<&ModelSequenceBatching>;
    fn ensemble_scheduling(&self) -> Option<&ModelEnsembling>;
    fn is_decoupled(&self) -> bool;
}

impl ConfigExt for ModelConfig {
    fn dynamic_batching(&self) -> Option<&ModelDynamicBatching> {
        match &self.scheduling_choice {
            Some(SchedulingChoice::DynamicBatching(d)) => Some(d),
            _ => None,
        }
    }
    fn sequence_batching(&self) -> Option<&ModelSequenceBatching> {
        match &self.scheduling_choice {
            Some(SchedulingChoice::SequenceBatching(s)) => Some(s),
            _ => None,
        }
    }
    fn ensemble_scheduling(&self) -> Option<&ModelEnsembling> {
        match &self.scheduling_choice {
            Some(SchedulingChoice::EnsembleScheduling(e)) => Some(e),
            _ => None,
        }
    }
    fn is_decoupled(&self) -> bool {
        self.model_transaction_policy
            .as_ref()
            .is_some_and(|p| p.decoupled)
    }
}
