//! Version policies: which of the versions on disk a model serves.

use crate::proto::inference::ModelVersionPolicy;
use crate::proto::inference::model_version_policy::PolicyChoice;

/// The versions to serve, ascending. `available` is ascending too.
pub fn select(policy: Option<&ModelVersionPolicy>, available: &[i64]) -> Vec<i64> {
    match policy.and_then(|p| p.policy_choice.as_ref()) {
        Some(PolicyChoice::All(_)) => available.to_vec(),
        Some(PolicyChoice::Specific(s)) => available
            .iter()
            .copied()
            .filter(|v| s.versions.contains(v))
            .collect(),
        Some(PolicyChoice::Latest(l)) => latest(available, l.num_versions.max(1) as usize),
        None => latest(available, 1),
    }
}

fn latest(available: &[i64], n: usize) -> Vec<i64> {
    available[available.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::model_version_policy::{All, Latest, Specific};

    fn p(c: PolicyChoice) -> ModelVersionPolicy {
        ModelVersionPolicy {
            policy_choice: Some(c),
        }
    }

    #[test]
    fn policies() {
        let av = [1, 2, 3, 7];
        assert_eq!(select(None, &av), vec![7]);
        assert_eq!(
            select(
                Some(&p(PolicyChoice::Latest(Latest { num_versions: 2 }))),
                &av
            ),
            vec![3, 7]
        );
        assert_eq!(
            select(
                Some(&p(PolicyChoice::Latest(Latest { num_versions: 9 }))),
                &av
            ),
            vec![1, 2, 3, 7]
        );
        assert_eq!(
            select(Some(&p(PolicyChoice::All(All {}))), &av),
            vec![1, 2, 3, 7]
        );
        assert_eq!(
            select(
                Some(&p(PolicyChoice::Specific(Specific {
                    versions: vec![2, 5, 1]
                }))),
                &av
            ),
            vec![1, 2]
        );
        assert_eq!(select(None, &[]), Vec::<i64>::new());
    }
}
