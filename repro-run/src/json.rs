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
    /// Last change, RFC 3339 in UTC.
    pub updated_at: String,
    /// `total` and one count per file state.
    pub files: BTreeMap<String, u64>,
}

impl From<&DatasetSummary> for DatasetJson {
    fn from(d: &DatasetSummary) -> Self {
        let c = d.status.columns();
        let mut files = BTreeMap::new();
        files.insert("total".to_owned(), d.files.total);
        for s in FileState::ALL {
            files.insert(s.as_str().to_owned(), d.files.get(*s));
        }
        DatasetJson {
            name: d.name.to_string(),
            lock: c.lock.to_string(),
            prestage: c.prestage.to_string(),
            reco: c.reco.to_string(),
            merge: c.merge.to_string(),
            cleanup: c.cleanup.to_string(),
            site: d.site.clone(),
            updated_at: rfc3339(d.updated_at),
            files,
        }
    }
}

/// A stored time (UTC, without a zone) as RFC 3339 with its zone: `2026-12-01T16:00:00Z`.
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
