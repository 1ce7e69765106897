//! A copy of a campaign held in one process's memory: what `repro simulate` plays on.
//!
//! A [`MemoryStore`] keeps each dataset as the core's [`DatasetView`] with the few things
//! of its row a run needs (revision, lease, settled marker, what waited), and follows the
//! same rules as the database: every write goes through [`DatasetView::apply_undoable`]
//! (each change legal by its table, finding what it expects, a closing transition founded
//! on the files), and one that spends budget is checked with [`Limits::breach`] against
//! what its site (and all sites) then hold, and undone if it goes past. What it does not
//! keep is history: nothing reads it during a simulation. One process's alone: its leases
//! keep that process's own workers apart, no other host's.
//!
//! It is made from a [`Store`] ([`MemoryStore::copy_of`]) and never written back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDateTime;
use repro_core::budget::Spends;
use repro_core::{Change, DatasetName, DatasetView, Limits, SiteLimits, Usage};
use repro_db::{DatasetSummary, DbError, FileCounts, Lease, ListFilter, Revision, Stamp, Store};

use crate::storage::Storage;

type Result<T> = std::result::Result<T, DbError>;

/// Datasets held in memory, with the database's rules (see the [module](self)). Clones
/// share the datasets.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    limits: Arc<SiteLimits>,
    datasets: Arc<Mutex<BTreeMap<DatasetName, Entry>>>,
}

/// One dataset: its view and what of its row a run reads or writes.
#[derive(Debug)]
struct Entry {
    /// The row as [`Store::list`] gives it; its status, counts and lease are kept
    /// up to date from `view` and the fields below when asked for.
    row: DatasetSummary,
    view: DatasetView,
    revision: i64,
    /// The revision and token a tick settled it at.
    settled: Option<(i64, String)>,
    lease: Option<(String, NaiveDateTime)>,
    /// What it has in flight, once counted since its last write.
    usage: Option<Usage>,
    /// Its files per state, once counted since its last write.
    counts: Option<FileCounts>,
}

impl Entry {
    fn usage(&mut self) -> Usage {
        *self.usage.get_or_insert_with(|| Usage::of(&self.view))
    }

    /// Its view changed: what was counted of it no longer holds.
    fn changed(&mut self) {
        self.usage = None;
        self.counts = None;
    }
}

impl MemoryStore {
    /// A copy of every dataset of `store` as it stands, with its limits.
    pub async fn copy_of(store: &Store) -> Result<MemoryStore> {
        let mut datasets = BTreeMap::new();
        for row in store.list(&ListFilter::default()).await? {
            let (view, stamp) = store.load_stamped(&row.name).await?;
            datasets.insert(
                row.name.clone(),
                Entry {
                    revision: stamp.revision.0,
                    lease: None,
                    settled: None,
                    usage: None,
                    counts: None,
                    view,
                    row,
                },
            );
        }
        Ok(MemoryStore {
            limits: Arc::new(store.limits().clone()),
            datasets: Arc::new(Mutex::new(datasets)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<DatasetName, Entry>> {
        // A panic while holding it left every entry as it was between two calls.
        self.datasets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every dataset's row with its file counts now: highest priority first, then the
    /// oldest (the order of [`ListFilter::by_priority`]), with `by_priority`; else by name.
    pub fn list(&self, by_priority: bool) -> Vec<DatasetSummary> {
        let mut rows: Vec<DatasetSummary> = self
            .lock()
            .values_mut()
            .map(|e| {
                let mut row = e.row.clone();
                row.status = e.view.status;
                row.files = e.counts.get_or_insert_with(|| counts(&e.view)).clone();
                row.lease = e.lease.clone();
                row
            })
            .collect();
        if by_priority {
            rows.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then(a.created_at.cmp(&b.created_at))
                    .then(a.id.cmp(&b.id))
                    .then(a.name.cmp(&b.name))
            });
        }
        rows
    }

    /// What the datasets for which `of` holds have in flight.
    fn usage_where(&self, of: impl Fn(&Entry) -> bool) -> Usage {
        self.lock()
            .values_mut()
            .filter(|e| of(e))
            .fold(Usage::default(), |u, e| u.plus(e.usage()))
    }

    fn with<T>(&self, name: &DatasetName, f: impl FnOnce(&mut Entry) -> Result<T>) -> Result<T> {
        let mut all = self.lock();
        let e = all
            .get_mut(name)
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        f(e)
    }

    fn claim_now(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: impl Fn(&str) -> bool,
    ) -> Result<Lease> {
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.with(name, |e| {
            let held = e.lease.as_ref().map(|(h, u)| (h.as_str(), Some(*u)));
            repro_db::may_claim(name, held, owner, now, gone)?;
            e.lease = Some((owner.to_owned(), until));
            Ok(Lease {
                dataset: name.to_string(),
                owner: owner.to_owned(),
                until,
                site: e.row.site.clone(),
            })
        })
    }

    /// Writes `changes` to `name` if they are legal, find what they expect and keep the
    /// budgets; else changes nothing.
    fn write(&self, name: &DatasetName, changes: &[Change]) -> Result<Revision> {
        let mut all = self.lock();
        let entry = all
            .get_mut(name)
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        let undo = entry.view.apply_undoable(changes)?;
        entry.changed();
        let spends = Spends::of(changes);
        let site = entry.row.site.clone();
        let id = entry.row.id;
        let mut breach = None;
        if spends.any() && !self.limits.is_none() {
            let mut check = |limits: Limits, of: &dyn Fn(&Entry) -> bool, named: String| {
                if breach.is_some() || limits.is_none() {
                    return;
                }
                let (mut used, mut others) = (Usage::default(), Usage::default());
                for e in all.values_mut().filter(|e| of(e)) {
                    let u = e.usage();
                    used = used.plus(u);
                    if e.row.id != id {
                        others = others.plus(u);
                    }
                }
                breach = limits
                    .breach(spends, &used, Some(&others))
                    .map(|b| (named, b));
            };
            let at_site = |e: &Entry| e.row.site == site;
            check(
                self.limits.of(site.as_deref()),
                &at_site,
                site.clone().unwrap_or_else(|| "-".into()),
            );
            check(self.limits.total, &|_| true, "all sites together".into());
        }
        // Looked up again: the check went over every entry.
        let entry = all.get_mut(name).expect("the entry written to is there");
        if let Some((site, (limit, used, max))) = breach {
            entry.view.undo(undo);
            entry.changed();
            return Err(DbError::OverBudget {
                site,
                limit,
                used,
                max,
            });
        }
        drop(undo);
        entry.revision += 1;
        entry.row.updated_at = repro_db::now();
        Ok(Revision(entry.revision))
    }
}

/// Files per state of `view`. Files of neighbouring ids are mostly in the same state, so
/// each run of alike ones is counted before it is added up.
fn counts(view: &DatasetView) -> FileCounts {
    let mut c = FileCounts::default();
    let mut add = |state, n| *c.by_state.entry(state).or_default() += n;
    let mut run = None;
    for f in view.files.values() {
        run = match run {
            Some((state, n)) if state == f.state => Some((state, n + 1)),
            Some((state, n)) => {
                add(state, n);
                Some((f.state, 1))
            }
            None => Some((f.state, 1)),
        };
    }
    if let Some((state, n)) = run {
        add(state, n);
    }
    c.total = view.files.len() as u64;
    c
}

impl Storage for MemoryStore {
    fn limits(&self) -> &SiteLimits {
        &self.limits
    }

    async fn dataset_sites(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .lock()
            .iter()
            .filter_map(|(n, e)| Some((n.to_string(), e.row.site.clone()?)))
            .collect())
    }

    async fn usage(&self, site: Option<&str>) -> Result<Usage> {
        Ok(self.usage_where(|e| e.row.site.as_deref() == site))
    }

    async fn usage_total(&self) -> Result<Usage> {
        Ok(self.usage_where(|_| true))
    }

    async fn settled_token(&self, name: &DatasetName) -> Result<Option<String>> {
        self.with(name, |e| {
            Ok(e.settled
                .as_ref()
                .filter(|(r, _)| *r == e.revision)
                .map(|(_, t)| t.clone()))
        })
    }

    async fn settle(&self, name: &DatasetName, revision: Revision, token: &str) -> Result<bool> {
        self.with(name, |e| {
            let now = e.revision == revision.0;
            if now {
                e.settled = Some((revision.0, token.to_owned()));
            }
            Ok(now)
        })
    }

    async fn claim(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> Result<Lease> {
        self.claim_now(name, owner, ttl, now, |_| false)
    }

    async fn claim_or_take_over(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: fn(&str) -> bool,
    ) -> Result<Lease> {
        self.claim_now(name, owner, ttl, now, gone)
    }

    async fn release_noting(&self, lease: &Lease, waiting: Option<Option<&str>>) -> Result<()> {
        // As the database's release: a lease of a dataset that is gone, or that was taken
        // over since (its new holder's, with what it records), is left alone.
        let Ok(name) = DatasetName::new(lease.dataset.as_str()) else {
            return Ok(());
        };
        let mut all = self.lock();
        let held = all
            .get_mut(&name)
            .filter(|e| e.lease.as_ref().is_some_and(|(o, _)| *o == lease.owner));
        if let Some(e) = held {
            e.lease = None;
            if let Some(w) = waiting {
                e.row.waiting = w.map(str::to_owned);
            }
        }
        Ok(())
    }

    async fn stamp(&self, name: &DatasetName) -> Result<Stamp> {
        self.with(name, |e| {
            Ok(Stamp {
                id: e.row.id,
                revision: Revision(e.revision),
            })
        })
    }

    async fn load_stamped(&self, name: &DatasetName) -> Result<(DatasetView, Stamp)> {
        self.with(name, |e| {
            Ok((
                e.view.clone(),
                Stamp {
                    id: e.row.id,
                    revision: Revision(e.revision),
                },
            ))
        })
    }

    async fn apply_revised(
        &self,
        name: &DatasetName,
        changes: &[Change],
        _actor: &str,
    ) -> Result<Option<Revision>> {
        if changes.is_empty() {
            return Ok(None);
        }
        self.write(name, changes).map(Some)
    }

    async fn locked_by(&self, _name: &DatasetName) -> String {
        // The copy keeps no history to say it from.
        String::new()
    }
}
