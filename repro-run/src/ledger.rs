//! What is left of each budget during one run: every site's and the total over all sites,
//! each read from the store (limits minus what is in flight) when a dataset first needs it,
//! then taken by the datasets in the order they are planned.

use std::collections::BTreeMap;
use std::sync::Mutex;

use repro_core::budget::describe_where;
use repro_core::plan::plan_within;
use repro_core::{Budget, DatasetView, Limit, Plan, Policy, StageKind};
use repro_db::Store;

use crate::Result;

/// The budgets of one run. A tick's [`Driver`](crate::Driver) keeps one; `repro plan` keeps
/// one to show what a tick would do. Safe to share between a run's workers.
#[derive(Debug, Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// Per site (`None`: datasets at no site).
    sites: BTreeMap<Option<String>, Budget>,
    /// Over all sites, once read (only with a total limit).
    total: Option<Budget>,
}

impl Ledger {
    /// A fresh ledger: every budget is read again when first needed.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Forgets every budget, for the next run.
    pub fn clear(&self) {
        *self.lock() = Book::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is due for `view` (at `site`) within what is left of its site's budget and of
    /// the total, taking what it plans from both, and what of it waits, for which limit
    /// and where ("waiting: 9 files for stage requests at fnal"; "... over all sites" when
    /// the total held it). Without limits this is the whole plan.
    pub async fn plan(
        &self,
        store: &Store,
        view: &DatasetView,
        site: Option<&str>,
        policy: &Policy,
        at: impl Fn(StageKind) -> bool,
    ) -> Result<Planned> {
        let limits = store.limits();
        if limits.is_none() {
            return Ok(Planned::new(repro_core::plan_for(view, policy, at), |_| {
                None
            }));
        }
        let key = site.map(str::to_owned);
        // Read outside the lock (a worker must not hold it across a query); the first
        // reading stands if two workers read at once.
        if !self.lock().sites.contains_key(&key) {
            let free = limits.of(site).free(&store.usage(site).await?);
            self.lock().sites.entry(key.clone()).or_insert(free);
        }
        let total_limited = !limits.total.is_none();
        if total_limited && self.lock().total.is_none() {
            let free = limits.total.free(&store.usage_total().await?);
            self.lock().total.get_or_insert(free);
        }
        let mut book = self.lock();
        let site_budget = book.sites.get(&key).copied().unwrap_or_default();
        let at_site = |site_after: &Budget, limit: Limit| {
            site_after
                .is_spent(limit)
                .then(|| site.map(|s| format!("at {s}")))
                .flatten()
        };
        Ok(match book.total {
            Some(total) if total_limited => {
                let mut both = [site_budget, total];
                let plan = plan_within(view, policy, at, &mut both[..]);
                book.sites.insert(key, both[0]);
                book.total = Some(both[1]);
                Planned::new(plan, |l| {
                    if both[0].is_spent(l) {
                        at_site(&both[0], l)
                    } else {
                        Some("over all sites".to_owned())
                    }
                })
            }
            _ => {
                let mut one = site_budget;
                let plan = plan_within(view, policy, at, &mut one);
                book.sites.insert(key, one);
                Planned::new(plan, |l| at_site(&one, l))
            }
        })
    }
}

/// A plan made within a run's budgets.
#[derive(Debug, Clone)]
pub struct Planned {
    /// What is due.
    pub plan: Plan,
    /// What of it waits, for which limit and where, as a sentence.
    pub waiting: Option<String>,
}

impl Planned {
    fn new(plan: Plan, scope: impl Fn(Limit) -> Option<String>) -> Planned {
        let waiting = describe_where(&plan.waiting, scope);
        Planned { plan, waiting }
    }
}
