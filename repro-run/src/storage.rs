//! What the [`Driver`](crate::Driver) needs of a store: leases, the dataset's view and
//! revision, the guarded write, the budgets in flight and the settled marker.
//!
//! [`repro_db::Store`] is the store of every real run: the rows in SQLite, MariaDB or
//! PostgreSQL, shared by every process and host. [`MemoryStore`](crate::memory::MemoryStore)
//! is a copy held in one process's memory, for `repro simulate`: the same rules (every
//! change goes through [`DatasetView::apply_undoable`], every budget through
//! [`Limits::breach`](repro_core::Limits::breach)), none of the rows' cost.
//!
//! Each method is the [`Store`] method of the same name; its documentation says what it
//! promises. Errors are [`DbError`]s whichever store gives them, so the driver tells a lost
//! race ([`DbError::Conflict`]), a refusal and a spent budget ([`DbError::OverBudget`])
//! apart the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::NaiveDateTime;
use repro_core::{Change, DatasetName, DatasetView, SiteLimits, Usage};
use repro_db::{DbError, Lease, Revision, Stamp, Store};

type Result<T> = std::result::Result<T, DbError>;

/// A store the [`Driver`](crate::Driver) can run on. Clones share the same data (a lease
/// is renewed from a task of its own, with a clone).
pub trait Storage: Clone + Send + Sync + 'static {
    /// The limits every write that spends budget is checked against.
    fn limits(&self) -> &SiteLimits;

    /// Each dataset with a site, and its site ([`Store::dataset_sites`]).
    fn dataset_sites(&self) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;

    /// What the datasets of `site` (`None`: of no site) have in flight ([`Store::usage`]).
    fn usage(&self, site: Option<&str>) -> impl Future<Output = Result<Usage>> + Send;

    /// What every dataset has in flight ([`Store::usage_total`]).
    fn usage_total(&self) -> impl Future<Output = Result<Usage>> + Send;

    /// The token a tick settled `name` under, if nothing was written to it since
    /// ([`Store::settled_token`]).
    fn settled_token(
        &self,
        name: &DatasetName,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Whether a tick settled `name` under `token` with nothing written to it since.
    fn is_settled(
        &self,
        name: &DatasetName,
        token: &str,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(self.settled_token(name).await?.as_deref() == Some(token)) }
    }

    /// Records that a tick found nothing to do for `name` at `revision` under `token`;
    /// `false` if the dataset is at another revision by now ([`Store::settle`]).
    fn settle(
        &self,
        name: &DatasetName,
        revision: Revision,
        token: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Takes `name`'s lease for `owner` until `now + ttl`, or renews it
    /// ([`Store::claim`]).
    fn claim(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// [`Storage::claim`], taking over a lease whose holder `gone` says is gone
    /// ([`Store::claim_or_take_over`]).
    fn claim_or_take_over(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: fn(&str) -> bool,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Gives `lease` back, recording what waited for budget when `waiting` says
    /// ([`Store::release_noting`]).
    fn release_noting(
        &self,
        lease: &Lease,
        waiting: Option<Option<&str>>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The dataset's row and revision now ([`Store::stamp`]).
    fn stamp(&self, name: &DatasetName) -> impl Future<Output = Result<Stamp>> + Send;

    /// The dataset's view and the stamp it is at ([`Store::load_stamped`]).
    fn load_stamped(
        &self,
        name: &DatasetName,
    ) -> impl Future<Output = Result<(DatasetView, Stamp)>> + Send;

    /// The dataset's view ([`Store::load`]).
    fn load(&self, name: &DatasetName) -> impl Future<Output = Result<DatasetView>> + Send {
        async move { Ok(self.load_stamped(name).await?.0) }
    }

    /// Writes `changes`, all or nothing, each guarded by what it expects and the whole
    /// within the limits; the revision the write led to, `None` when there was nothing
    /// to write ([`Store::apply_revised`]).
    fn apply_revised(
        &self,
        name: &DatasetName,
        changes: &[Change],
        actor: &str,
    ) -> impl Future<Output = Result<Option<Revision>>> + Send;

    /// Who locked `name`, when and why, for the error a run on a locked dataset gives
    /// (` by alice at 2026-12-01 10:00:00 UTC (why)`); empty when the store cannot say.
    fn locked_by(&self, name: &DatasetName) -> impl Future<Output = String> + Send;
}

impl Storage for Store {
    fn limits(&self) -> &SiteLimits {
        Store::limits(self)
    }

    fn dataset_sites(&self) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send {
        Store::dataset_sites(self)
    }

    fn usage(&self, site: Option<&str>) -> impl Future<Output = Result<Usage>> + Send {
        Store::usage(self, site)
    }

    fn usage_total(&self) -> impl Future<Output = Result<Usage>> + Send {
        Store::usage_total(self)
    }

    fn settled_token(
        &self,
        name: &DatasetName,
    ) -> impl Future<Output = Result<Option<String>>> + Send {
        Store::settled_token(self, name)
    }

    fn settle(
        &self,
        name: &DatasetName,
        revision: Revision,
        token: &str,
    ) -> impl Future<Output = Result<bool>> + Send {
        Store::settle(self, name, revision, token)
    }

    fn claim(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> impl Future<Output = Result<Lease>> + Send {
        Store::claim(self, name, owner, ttl, now)
    }

    fn claim_or_take_over(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: fn(&str) -> bool,
    ) -> impl Future<Output = Result<Lease>> + Send {
        Store::claim_or_take_over(self, name, owner, ttl, now, gone)
    }

    fn release_noting(
        &self,
        lease: &Lease,
        waiting: Option<Option<&str>>,
    ) -> impl Future<Output = Result<()>> + Send {
        Store::release_noting(self, lease, waiting)
    }

    fn stamp(&self, name: &DatasetName) -> impl Future<Output = Result<Stamp>> + Send {
        Store::stamp(self, name)
    }

    fn load_stamped(
        &self,
        name: &DatasetName,
    ) -> impl Future<Output = Result<(DatasetView, Stamp)>> + Send {
        Store::load_stamped(self, name)
    }

    fn load(&self, name: &DatasetName) -> impl Future<Output = Result<DatasetView>> + Send {
        Store::load(self, name)
    }

    fn apply_revised(
        &self,
        name: &DatasetName,
        changes: &[Change],
        actor: &str,
    ) -> impl Future<Output = Result<Option<Revision>>> + Send {
        Store::apply_revised(self, name, changes, actor)
    }

    async fn locked_by(&self, name: &DatasetName) -> String {
        let Ok(history) = self.history(name, Some("dataset")).await else {
            return String::new();
        };
        let Some(h) = history
            .iter()
            .rev()
            .find(|h| h.via == "lock" || h.via == "register")
        else {
            return String::new();
        };
        let since = if h.via == "register" {
            " since it was registered"
        } else {
            ""
        };
        let why = h
            .reason
            .as_deref()
            .filter(|r| h.via == "lock" && !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "{since} by {} at {} UTC{why}",
            h.actor,
            h.at.format("%Y-%m-%d %H:%M:%S")
        )
    }
}
