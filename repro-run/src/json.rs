//! The JSON shapes shared by the command line and the web API.

use std::collections::BTreeMap;

use repro_core::FileState;
use repro_db::DatasetSummary;
use serde::Serialize;

/// The JSON shape of a dataset, shared with the web API.
#[derive(Debug, Serialize)]
pub struct DatasetJson {
    /// Name.
    pub name: String,
    /// `LOCK` or `UNLOCK`.
    pub lock: String,
    /// Prestage column.
    pub prestage: String,
    /// Reco column.
    pub reco: String,
    /// Merge column.
    pub merge: String,
    /// Cleanup column.
    pub cleanup: String,
    /// Site, if set.
    pub site: Option<String>,
    /// Sample, if set.
    pub sample: Option<String>,
    /// Priority: higher gets budget first.
    pub priority: i32,
    /// What waited for budget in its last run, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Last change, RFC 3339 in UTC.
    pub updated_at: String,
    /// `total` and one count per file state.
    pub files: BTreeMap<String, u64>,
    /// How many raw files failed for good an operator accepted losing.
    pub accepted_lost: u64,
    /// What needs a person, with the command that answers it; absent when nothing does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_a_person: Option<String>,
}

impl From<&DatasetSummary> for DatasetJson {
    fn from(d: &DatasetSummary) -> Self {
        let c = d.status.columns();
        let files = file_counts(&d.files);
        DatasetJson {
            name: d.name.to_string(),
            lock: c.lock.to_string(),
            prestage: c.prestage.to_string(),
            reco: c.reco.to_string(),
            merge: c.merge.to_string(),
            cleanup: c.cleanup.to_string(),
            site: d.site.clone(),
            sample: d.sample.as_ref().map(ToString::to_string),
            priority: d.priority,
            waiting: d.waiting.clone(),
            updated_at: rfc3339(d.updated_at),
            files,
            accepted_lost: d.accepted_lost,
            needs_a_person: crate::attention::from_counts(d),
        }
    }
}

/// `files` as JSON: `total` and one count per file state.
fn file_counts(f: &repro_db::FileCounts) -> BTreeMap<String, u64> {
    let mut files = BTreeMap::new();
    files.insert("total".to_owned(), f.total);
    for s in FileState::ALL {
        files.insert(s.as_str().to_owned(), f.get(*s));
    }
    files
}

/// A sample's progress as JSON (`repro sample list --json`, `/api/samples`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleJson {
    /// The sample; `null` for the datasets in none.
    pub sample: Option<String>,
    /// Its datasets.
    pub datasets: u64,
    /// Of them, `CLEANED`.
    pub cleaned: u64,
    /// Of them, with `FAILED` in a column.
    pub failed: u64,
    /// Of them, `LOCK`ed.
    pub locked: u64,
    /// `total` and one count per file state, over its datasets.
    pub files: BTreeMap<String, u64>,
}

impl From<&repro_db::SampleSummary> for SampleJson {
    fn from(s: &repro_db::SampleSummary) -> Self {
        SampleJson {
            sample: s.sample.as_ref().map(ToString::to_string),
            datasets: s.datasets,
            cleaned: s.cleaned,
            failed: s.failed,
            locked: s.locked,
            files: file_counts(&s.files),
        }
    }
}

/// A stored time (UTC, without a zone) as RFC 3339 with its zone: `2026-12-01T16:00:00Z`.
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
