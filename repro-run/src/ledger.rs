//! What is left of each budget during one run: every site's and the total over all sites,
//! each read from the store (limits minus what is in flight) before the run (or when a
//! dataset first needs it), then taken by the datasets in the order they are planned, in
//! turns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use repro_core::budget::describe_where;
use repro_core::plan::plan_within;
use repro_core::{Budget, DatasetView, Limit, Plan, Policy, StageKind, Usage};

use crate::Result;
use repro_db::Store;

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
    /// The sites some dataset has planned at in this run.
    planned: BTreeSet<Option<String>>,
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

    /// Reads, now, the budget left at each of `sites` (and over all sites, under a total
    /// limit): a run that works on several datasets at once takes this reading before
    /// any of them starts, so what each is given does not depend on which of the others
    /// got further first.
    pub async fn read(
        &self,
        store: &Store,
        sites: impl IntoIterator<Item = Option<String>>,
    ) -> Result<()> {
        let limits = store.limits();
        if limits.is_none() {
            return Ok(());
        }
        for site in sites {
            if !self.lock().sites.contains_key(&site) {
                let free = limits
                    .of(site.as_deref())
                    .free(&store.usage(site.as_deref()).await?);
                self.lock().sites.entry(site).or_insert(free);
            }
        }
        if !limits.total.is_none() && self.lock().total.is_none() {
            let free = limits.total.free(&store.usage_total().await?);
            self.lock().total.get_or_insert(free);
        }
        Ok(())
    }

    /// Gives back what a dataset at `site` freed since the budgets were [`read`](Ledger::read)
    /// (its staging done, its jobs ended, its disk cleaned) to its site's budget as long
    /// as no dataset has planned at that site in this run, and to the total as long as no
    /// dataset has planned at all: the budgets are then what they would be if read when
    /// first planned against, after what the datasets before freed. Budget freed after
    /// that goes out in the next run, to the datasets in their order.
    pub fn credit(&self, site: Option<&str>, freed: &Usage) {
        let mut book = self.lock();
        let key = site.map(str::to_owned);
        if !book.planned.contains(&key)
            && let Some(b) = book.sites.get_mut(&key)
        {
            b.credit(freed);
        }
        if book.planned.is_empty()
            && let Some(total) = book.total.as_mut()
        {
            total.credit(freed);
        }
    }

    /// Whether [`Ledger::credit`] would still give anything back at `site`: no dataset
    /// has planned there in this run (once one has, none will again).
    pub fn may_credit(&self, site: Option<&str>) -> bool {
        !self.lock().planned.contains(&site.map(str::to_owned))
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
        now: i64,
        at: impl Fn(StageKind) -> bool,
    ) -> Result<Planned> {
        let limits = store.limits();
        if limits.is_none() {
            return Ok(Planned::new(
                repro_core::plan_for(view, policy, now, at),
                |_| None,
            ));
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
        book.planned.insert(key.clone());
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
                let plan = plan_within(view, policy, now, at, &mut both[..]);
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
                let plan = plan_within(view, policy, now, at, &mut one);
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

/// The order in which one run's datasets take budget: the run's order (highest priority
/// first), however its workers are scheduled. A dataset's [`Turn`] comes once every
/// dataset before it has finished planning (or ended its run), so a worker polls and
/// records one dataset while another plans.
#[derive(Debug)]
pub(crate) struct Turns {
    /// The first dataset not yet done, and those after it already done.
    done: Mutex<(usize, BTreeSet<usize>)>,
    next: tokio::sync::watch::Sender<usize>,
}

impl Turns {
    pub(crate) fn new() -> Turns {
        Turns {
            done: Mutex::default(),
            next: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The turn of the run's `i`th dataset. Dropping it says the dataset is done taking
    /// budget in this run.
    pub(crate) fn ticket(&self, i: usize) -> Turn<'_> {
        Turn { turns: self, i }
    }

    fn done(&self, i: usize) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (next, later) = &mut *done;
        later.insert(i);
        while later.remove(next) {
            *next += 1;
        }
        self.next.send_replace(*next);
    }
}

/// One dataset's place in [`Turns`].
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    i: usize,
}

impl Turn<'_> {
    /// Waits until every dataset before this one is done taking budget.
    pub(crate) async fn wait(&self) {
        let mut next = self.turns.next.subscribe();
        // The sender lives as long as `turns`, which outlives this turn.
        let _ = next.wait_for(|n| *n >= self.i).await;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.done(self.i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn a_turn_comes_once_every_dataset_before_it_is_done_in_whatever_order() {
        let turns = Turns::new();
        let (t0, t1, t2) = (turns.ticket(0), turns.ticket(1), turns.ticket(2));
        // Whether the turn has come: its wait is ready when first polled.
        let now = |t: &Turn<'_>| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            std::pin::pin!(t.wait()).poll(&mut cx).is_ready()
        };
        assert!(now(&t0), "the first turn comes at once");
        assert!(!now(&t1) && !now(&t2));
        // The third dataset ends first (settled, say): the second still waits for the first.
        drop(t2);
        assert!(!now(&t1));
        drop(t0);
        assert!(now(&t1));
        drop(t1);
        assert_eq!(*turns.next.borrow(), 3, "all three done");
    }
}
