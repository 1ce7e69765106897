//! `repro cancel`: a dataset's live jobs killed through its backend, recorded as failed
//! attempts, and the dataset LOCKed with the reason.

use repro_core::operator;
use repro_core::{Change, DatasetName, Outcome, Phase, Poll};
use tracing::warn;

use crate::{Driver, Result, driver::Report, driver::holder_is_gone};

/// What a cancel did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Cancelled {
    /// The dataset.
    pub name: String,
    /// Jobs the backend was told to kill.
    pub killed: usize,
    /// Of those, jobs that had finished first: their output is recorded and kept.
    pub finished: usize,
    /// Jobs recorded as cancelled: a failed attempt each, with the reason.
    pub cancelled: usize,
    /// Whether this cancel locked the dataset (it was unlocked).
    pub locked: bool,
}

impl Driver<'_> {
    /// Cancels `name`'s live jobs of `phase` (reco or merge; both when `None`) under the
    /// dataset's lease, so no run works on it meanwhile (one that holds it makes this a
    /// conflict; try again): the backend kills them, what finished before it could is
    /// recorded as done, and the rest are recorded as failed attempts, `cancelled:
    /// REASON`, with the dataset LOCKed. After `unlock` (and `retry` to go at once) the
    /// dataset carries on: nothing done twice, nothing lost. If the backend cannot kill
    /// them, nothing is recorded.
    pub async fn cancel(
        &self,
        name: &DatasetName,
        phase: Option<Phase>,
        reason: &str,
    ) -> Result<Cancelled> {
        // Refuse a missing reason or a phase without jobs before anything is done.
        operator::check_cancel(phase, reason)?;
        let now = repro_db::now();
        let lease = self
            .store
            .claim_or_take_over(name, &self.owner, self.lease_ttl, now, holder_is_gone)
            .await?;
        let result = self.cancel_leased(name, phase, reason).await;
        if let Err(e) = self.store.release(&lease).await {
            warn!(dataset = %name, "cannot release lease: {e}");
        }
        result
    }

    async fn cancel_leased(
        &self,
        name: &DatasetName,
        phase: Option<Phase>,
        reason: &str,
    ) -> Result<Cancelled> {
        let mut view = self.store.load(name).await?;
        let jobs: Vec<Poll> = operator::live_jobs(&view, phase)?
            .map(|j| repro_core::plan::job_poll(&view, j))
            .collect();
        let mut finished = 0;
        if !jobs.is_empty() {
            self.backend.cancel(name, &jobs)?;
            // A job that ended before the kill reached it keeps its output.
            let done: Vec<Outcome> = self
                .backend
                .poll(name, &jobs)?
                .into_iter()
                .filter(|o| matches!(o, Outcome::RecoDone { .. } | Outcome::MergeDone { .. }))
                .collect();
            finished = self
                .record(&mut view, done, &mut None, &mut Report::default())
                .await?;
        }
        let changes = operator::cancel(&view, phase, reason)?;
        self.store.apply(name, &changes, &self.actor).await?;
        Ok(Cancelled {
            name: name.to_string(),
            killed: jobs.len(),
            finished,
            cancelled: changes
                .iter()
                .filter(|c| matches!(c, Change::Job { .. }))
                .count(),
            locked: changes.iter().any(|c| matches!(c, Change::Dataset(_))),
        })
    }
}
