//! Views kept between the runs of one long-lived process.
//!
//! A run loads its dataset whole (files, groups, jobs) before it decides anything: at
//! 50,000 files that is the largest part of a run that finds little to do. A process that
//! ticks the same datasets again and again (`repro simulate`, a service linking this
//! crate) can keep each dataset's view as its last run left it, with the
//! [`Stamp`] its own last write led to, and use it next time instead of loading, if the
//! dataset's row still has that stamp: every write to a dataset, by any process, counts
//! in its revision, so an equal stamp means nobody else wrote since. Anything else (a write
//! by another process or an operator, a run that failed, a dataset deleted and registered
//! again) and the next run loads it afresh. A cron tick, a process of its own each time,
//! has no use for one; `repro demo` keeps none either, since it plays a campaign as cron
//! would, and views of all its datasets would not fit its memory budget.
//!
//! Only a hand edit of the rows that does not go through `repro` (one that does not count
//! in the revision, which also leaves settled datasets alone; see `repro recount`) is not
//! seen by a process keeping views; it is by the next one.

use std::collections::HashMap;
use std::sync::Mutex;

use repro_core::DatasetName;
use repro_core::plan::at_rest;
use repro_core::view::DatasetView;
use repro_db::Stamp;

/// Dataset views kept between runs, up to a number of raw files in all
/// ([`Driver::with_view_cache`](crate::Driver::with_view_cache)).
///
/// A run takes its dataset's view out while it works on it (workers never share one) and
/// puts it back when it ends well with its own write the last one, unless the dataset is
/// at rest (`CLEANED`, or `FAILED` somewhere: no tick works on it) or the views kept would
/// then hold more than the limit of raw files. When full, the views already kept stay
/// and the new one goes: a tick visits its datasets in the same order every time, so
/// replacing one kept view with the next would leave every view replaced before it is
/// used again.
#[derive(Debug)]
pub struct ViewCache {
    max_files: usize,
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    views: HashMap<DatasetName, (Stamp, DatasetView)>,
    files: usize,
    hits: u64,
    misses: u64,
}

impl ViewCache {
    /// A cache holding views of up to `max_files` raw files in all (about 400 bytes of
    /// memory a file, jobs included). `usize::MAX`: every view.
    pub fn new(max_files: usize) -> ViewCache {
        ViewCache {
            max_files,
            inner: Mutex::new(Kept::default()),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock left the map as it was between two calls.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes out the view kept of `name`, if any, with the stamp it is at.
    pub(crate) fn take(&self, name: &DatasetName) -> Option<(Stamp, DatasetView)> {
        let mut k = self.kept();
        let taken = k.views.remove(name);
        if let Some((_, v)) = &taken {
            k.files -= v.files.len();
        }
        taken
    }

    /// Counts whether a run found its view here (and still the dataset's).
    pub(crate) fn count(&self, hit: bool) {
        let mut k = self.kept();
        if hit {
            k.hits += 1;
        } else {
            k.misses += 1;
        }
    }

    /// Keeps `view`, the dataset as it is at `stamp`, if there is room for it and a
    /// tick would work on it again.
    pub(crate) fn put(&self, stamp: Stamp, view: DatasetView) {
        if at_rest(view.status.state) {
            return;
        }
        let mut k = self.kept();
        let n = view.files.len();
        if k.files.saturating_add(n) > self.max_files {
            return;
        }
        k.files += n;
        k.views.insert(view.name.clone(), (stamp, view));
    }

    /// A copy of the view kept of `name`, if any (for tests and tools: a run takes it out
    /// instead).
    pub fn view(&self, name: &DatasetName) -> Option<DatasetView> {
        self.kept().views.get(name).map(|(_, v)| v.clone())
    }

    /// How many runs used a kept view, and how many loaded theirs.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        let k = self.kept();
        (k.hits, k.misses)
    }

    /// The datasets whose views are kept, and their raw files in all.
    pub fn len_and_files(&self) -> (usize, usize) {
        let k = self.kept();
        (k.views.len(), k.files)
    }
}
