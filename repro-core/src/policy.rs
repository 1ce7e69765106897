//! The knobs the decisions obey.

use crate::outage::Breaker;
use crate::retry::{Backoffs, Due, Retry};
use crate::state::Phase;

/// How the decisions retry and group work.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// Attempts per step (staging a file, its reco job, a merge job, a declaration, a
    /// deletion) before it is failed for good. At least 1.
    pub max_attempts: u32,
    /// At most this many TMB files per merge group. At least 1.
    pub merge_group_files: u32,
    /// At most this many TMB bytes per merge group, if set; a single TMB file larger than
    /// this forms a group of its own.
    pub merge_group_bytes: Option<u64>,
    /// Whether automation merges a dataset whose reco ended `PARTIAL` (the predecessor scripts'
    /// `merge_partial` cron job). When false, such datasets wait for an explicit partial merge.
    pub merge_partial: bool,
    /// How failed attempts are retried, per phase.
    pub retry: Backoffs,
    /// When a step failing as a whole is an outage of its service ([`crate::outage`]).
    pub outage: Breaker,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            merge_group_files: 50,
            merge_group_bytes: None,
            merge_partial: true,
            retry: Backoffs::default(),
            outage: Breaker::default(),
        }
    }
}

/// A policy value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy key `{key}` = {value}: {why}")]
pub struct PolicyError {
    /// The offending key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Policy {
    /// Checks that every value can work.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(PolicyError {
                key: "max_attempts".into(),
                value: "0".into(),
                why: "at least one attempt is needed",
            });
        }
        if self.merge_group_files == 0 {
            return Err(PolicyError {
                key: "merge_group_files".into(),
                value: "0".into(),
                why: "a merge group needs at least one file",
            });
        }
        if self.merge_group_bytes == Some(0) {
            return Err(PolicyError {
                key: "merge_group_bytes".into(),
                value: "0".into(),
                why: "a merge group needs room for at least one byte",
            });
        }
        let phases = self
            .retry
            .phase
            .iter()
            .map(|(p, b)| (format!("retry.{p}."), b));
        for (table, b) in std::iter::once(("retry.".to_owned(), &self.retry.all)).chain(phases) {
            let bad = |key: &str, value: String, why| PolicyError {
                key: format!("{table}{key}"),
                value,
                why,
            };
            if b.attempts == Some(0) {
                return Err(bad(
                    "attempts",
                    "0".into(),
                    "at least one attempt is needed",
                ));
            }
            if b.factor == 0 {
                return Err(bad(
                    "factor",
                    "0".into(),
                    "a delay grows by a factor of at least 1",
                ));
            }
            if b.jitter_percent > 100 {
                let v = b.jitter_percent.to_string();
                return Err(bad(
                    "jitter_percent",
                    v,
                    "jitter is 0 to 100 percent of a delay",
                ));
            }
        }
        if self.outage.failures > 0 && self.outage.first_delay_s == 0 {
            return Err(PolicyError {
                key: "outage.first_delay_s".into(),
                value: "0".into(),
                why: "an outage waits before its next try",
            });
        }
        Ok(())
    }

    /// Attempts per step of `phase`.
    pub fn attempts(&self, phase: Phase) -> u32 {
        self.retry.of(phase).attempts.unwrap_or(self.max_attempts)
    }

    /// What a step of `phase` that made `tried` attempts since the last re-arm, and
    /// recorded `retry` with its last failure, may do at `now`.
    pub fn due(&self, phase: Phase, tried: u32, retry: Option<Retry>, now: i64) -> Due {
        self.retry
            .of(phase)
            .due(self.attempts(phase), tried, retry, now)
    }
}
