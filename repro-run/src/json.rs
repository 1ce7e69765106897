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
    /// The state columns, one key each (`lock`, `prestage`, ...), in the stored words.
    #[serde(flatten)]
    pub columns: repro_core::Columns,
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
    /// Its steps whose service is out, each waiting for its next try.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<OutageJson>,
    /// Raw files and merge groups waiting to be tried again (only where the whole dataset
    /// was looked at: `dataset show`, `/api/datasets/NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrying: Option<RetryingJson>,
}

/// A step whose service is out (`repro_core::outage`).
#[derive(Debug, Serialize)]
pub struct OutageJson {
    /// `stage`, `reco`, `merge`, `declare` or `delete`.
    pub step: String,
    /// `tape system`, `batch system`, `catalog` or `storage system`.
    pub service: &'static str,
    /// First seen failing as a whole, RFC 3339.
    pub since: String,
    /// Its next try, RFC 3339.
    pub next_try: String,
    /// Tries in a row that found it out.
    pub tries: u32,
    /// Its last error, with its class.
    pub error: String,
}

/// What waits to be tried again.
#[derive(Debug, Serialize)]
pub struct RetryingJson {
    /// Raw files and merge groups.
    pub count: u64,
    /// When the first is due, RFC 3339.
    pub first_at: String,
}

impl DatasetJson {
    /// The same, with what waits to be tried again (`Glance::waiting`).
    pub fn with_retrying(mut self, waiting: Option<(u64, i64)>) -> Self {
        self.retrying = waiting.map(|(count, first)| RetryingJson {
            count,
            first_at: epoch_rfc3339(first),
        });
        self
    }
}

impl From<&DatasetSummary> for DatasetJson {
    fn from(d: &DatasetSummary) -> Self {
        let files = file_counts(&d.files);
        DatasetJson {
            name: d.name.to_string(),
            columns: d.status.columns(),
            site: d.site.clone(),
            sample: d.sample.as_ref().map(ToString::to_string),
            priority: d.priority,
            waiting: d.waiting.clone(),
            updated_at: rfc3339(d.updated_at),
            files,
            accepted_lost: d.accepted_lost,
            needs_a_person: crate::attention::from_counts(d),
            outages: d
                .outages
                .iter()
                .map(|o| OutageJson {
                    step: o.step.to_string(),
                    service: o.step.service(),
                    since: epoch_rfc3339(o.since),
                    next_try: epoch_rfc3339(o.until),
                    tries: o.trips,
                    error: o.error.clone(),
                })
                .collect(),
            retrying: None,
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

/// Seconds since the epoch as RFC 3339 in UTC (the number itself if out of range).
fn epoch_rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// A stored time (UTC, without a zone) as RFC 3339 with its zone: `2026-12-01T16:00:00Z`.
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
