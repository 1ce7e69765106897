//! What users see: tables in the seed's column words, or JSON with the same fields.

use std::fmt::Write;

use repro_core::{DatasetView, FileState};
use repro_db::{DatasetSummary, HistoryEntry};
use serde::Serialize;

pub use repro_run::json::DatasetJson;

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// A plain text table: columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Files done (cleaned) of all, and failed for good.
fn progress(d: &DatasetSummary) -> (String, String) {
    let f = &d.files;
    let staged = f.total
        - f.get(FileState::Registered)
        - f.get(FileState::Staging)
        - f.get(FileState::StageFailed)
        - f.get(FileState::StageFailedForGood);
    let reco = f.get(FileState::Reconstructed)
        + f.get(FileState::Merged)
        + f.get(FileState::Deleting)
        + f.get(FileState::Cleaned);
    let merged = f.get(FileState::Merged) + f.get(FileState::Deleting) + f.get(FileState::Cleaned);
    let failed = f.get(FileState::StageFailedForGood) + f.get(FileState::RecoFailedForGood);
    (
        format!(
            "{staged}/{reco}/{merged}/{} of {}",
            f.get(FileState::Cleaned),
            f.total
        ),
        failed.to_string(),
    )
}

/// The dataset table: the seed's columns plus file progress.
pub fn datasets(list: &[DatasetSummary]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let c = d.status.columns();
            let (p, failed) = progress(d);
            vec![
                d.name.to_string(),
                c.lock.to_string(),
                c.prestage.to_string(),
                c.reco.to_string(),
                c.merge.to_string(),
                c.cleanup.to_string(),
                p,
                failed,
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "LOCK",
            "PRESTAGE",
            "RECO",
            "MERGE",
            "CLEANUP",
            "FILES staged/reco/merged/cleaned",
            "FAILED",
        ],
        &rows,
    )
}

/// One dataset in detail.
pub fn dataset(d: &DatasetSummary) -> String {
    let c = d.status.columns();
    let mut out = String::new();
    let _ = writeln!(out, "name      {}", d.name);
    let _ = writeln!(out, "lock      {}", c.lock);
    let _ = writeln!(out, "prestage  {}", c.prestage);
    let _ = writeln!(out, "reco      {}", c.reco);
    let _ = writeln!(out, "merge     {}", c.merge);
    let _ = writeln!(out, "cleanup   {}", c.cleanup);
    let _ = writeln!(out, "site      {}", d.site.as_deref().unwrap_or("-"));
    let _ = writeln!(
        out,
        "updated   {} UTC",
        d.updated_at.format("%Y-%m-%d %H:%M:%S")
    );
    if let Some((owner, until)) = &d.lease {
        let _ = writeln!(
            out,
            "lease     {owner} until {} UTC",
            until.format("%Y-%m-%d %H:%M:%S")
        );
    }
    let _ = writeln!(out, "files     {}", d.files.total);
    for s in FileState::ALL {
        let n = d.files.get(*s);
        if n > 0 {
            let _ = writeln!(out, "  {:<22}{n}", s.as_str());
        }
    }
    out
}

/// A dataset's files.
pub fn files(view: &DatasetView, state: Option<FileState>) -> String {
    let rows: Vec<Vec<String>> = view
        .files
        .values()
        .filter(|f| state.is_none_or(|s| f.state == s))
        .map(|f| {
            vec![
                f.id.0.to_string(),
                f.lfn.clone(),
                f.state.to_string(),
                f.attempts.to_string(),
                f.tmb.as_ref().map_or("-".into(), |t| t.path.clone()),
                f.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["ID", "LFN", "STATE", "ATTEMPTS", "TMB", "LAST ERROR"],
        &rows,
    )
}

/// History entries.
pub fn history(entries: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                format!("{} {}", e.entity, e.entity_id),
                e.via.clone(),
                e.from.clone(),
                e.to.clone(),
                e.actor.clone(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["AT (UTC)", "ENTITY", "VIA", "FROM", "TO", "ACTOR", "REASON"],
        &rows,
    )
}
