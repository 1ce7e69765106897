//! The one place where rows become typed states. A row that does not fit is a
//! [`DbError::CorruptRow`] naming the table, the row and the rule; nothing is guessed.

use std::collections::BTreeMap;

use repro_core::file::{FileId, FileState, TmbFile};
use repro_core::job::{JobKey, JobState, JobSubject};
use repro_core::outage::Outage;
use repro_core::retry::Retry;
use repro_core::view::{GroupNo, GroupState, Job, MergeGroup, MergedFile, RawFile};
use repro_core::{Columns, DatasetName, SampleName, Status};

use sea_orm::DerivePartialModel;

use crate::entity::{dataset_status, file_status, merge_group, mergejob_status, recojob_status};
use crate::error::{DbError, Result};

/// The columns of a `file_status` row that a view is made of: a load reads only these (its
/// time stamp costs more to decode than the rest of the row).
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "file_status::Entity")]
pub struct FileRow {
    /// Row id.
    pub id: i64,
    /// Logical file name.
    pub lfn: String,
    /// Size in bytes.
    pub size: i64,
    /// State word.
    pub state: String,
    /// Attempts of its current step.
    pub attempts: i32,
    /// Attempts before the last re-arm.
    pub attempt_base: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Reconstruction output path.
    pub tmb_path: Option<String>,
    /// Reconstruction output size.
    pub tmb_size: Option<i64>,
    /// Merge group number.
    pub merge_group: Option<i32>,
    /// When its failing step may be tried again.
    pub retry_at: Option<i64>,
    /// Since when its step has been failing.
    pub failing_since: Option<i64>,
}

impl From<&file_status::Model> for FileRow {
    fn from(m: &file_status::Model) -> Self {
        FileRow {
            id: m.id,
            lfn: m.lfn.clone(),
            size: m.size,
            state: m.state.clone(),
            attempts: m.attempts,
            attempt_base: m.attempt_base,
            last_error: m.last_error.clone(),
            tmb_path: m.tmb_path.clone(),
            tmb_size: m.tmb_size,
            merge_group: m.merge_group,
            retry_at: m.retry_at,
            failing_since: m.failing_since,
        }
    }
}

/// The columns of a `recojob_status` row that a view is made of (no names, paths or times).
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "recojob_status::Entity")]
pub struct RecoJobRow {
    /// Row id.
    pub id: i64,
    /// The raw file it reconstructs.
    pub file_id: i64,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// The batch system's id.
    pub batch_id: Option<String>,
    /// State word.
    pub state: String,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<&recojob_status::Model> for RecoJobRow {
    fn from(m: &recojob_status::Model) -> Self {
        RecoJobRow {
            id: m.id,
            file_id: m.file_id,
            attempt: m.attempt,
            batch_id: m.batch_id.clone(),
            state: m.state.clone(),
            exit_code: m.exit_code,
            error: m.error.clone(),
        }
    }
}

/// The columns of a `mergejob_status` row that a view is made of.
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "mergejob_status::Entity")]
pub struct MergeJobRow {
    /// Row id.
    pub id: i64,
    /// The merge group row it merges.
    pub group_id: i64,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// The batch system's id.
    pub batch_id: Option<String>,
    /// State word.
    pub state: String,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<&mergejob_status::Model> for MergeJobRow {
    fn from(m: &mergejob_status::Model) -> Self {
        MergeJobRow {
            id: m.id,
            group_id: m.group_id,
            attempt: m.attempt,
            batch_id: m.batch_id.clone(),
            state: m.state.clone(),
            exit_code: m.exit_code,
            error: m.error.clone(),
        }
    }
}

pub(crate) fn corrupt(table: &'static str, id: i64, why: impl ToString) -> DbError {
    DbError::CorruptRow {
        table,
        id,
        why: why.to_string(),
    }
}

fn count(table: &'static str, id: i64, what: &str, v: i32) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(table, id, format!("{what} is negative ({v})")))
}

fn size(table: &'static str, id: i64, what: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(table, id, format!("{what} is negative ({v})")))
}

/// A file named in two columns, its name and its size, which are set together or not at all.
fn sized_file(
    table: &'static str,
    id: i64,
    (name_col, size_col): (&str, &str),
    name: &Option<String>,
    bytes: Option<i64>,
) -> Result<Option<(String, u64)>> {
    match (name, bytes) {
        (Some(n), Some(b)) => Ok(Some((n.clone(), size(table, id, size_col, b)?))),
        (None, None) => Ok(None),
        _ => Err(corrupt(
            table,
            id,
            format!("{name_col} and {size_col} must be set together"),
        )),
    }
}

/// A stored id as a core id.
pub(crate) fn file_id(table: &'static str, row: i64, id: i64) -> Result<FileId> {
    u64::try_from(id)
        .map(FileId)
        .map_err(|_| corrupt(table, row, format!("file id {id} is negative")))
}

/// A core id as a stored id.
pub(crate) fn db_id(id: FileId) -> Result<i64> {
    i64::try_from(id.0).map_err(|_| DbError::OutOfRange {
        what: "file id",
        value: id.0.to_string(),
    })
}

/// A dataset row's name and status.
pub fn dataset(row: &dataset_status::Model) -> Result<(DatasetName, Status)> {
    const T: &str = "dataset_status";
    let name = DatasetName::new(row.name.clone()).map_err(|e| corrupt(T, row.id, e))?;
    let columns = Columns {
        lock: row.lock_state.parse().map_err(|e| corrupt(T, row.id, e))?,
        prestage: row
            .prestage_state
            .parse()
            .map_err(|e| corrupt(T, row.id, e))?,
        reco: row.reco_state.parse().map_err(|e| corrupt(T, row.id, e))?,
        merge: row.merge_state.parse().map_err(|e| corrupt(T, row.id, e))?,
        cleanup: row
            .cleanup_state
            .parse()
            .map_err(|e| corrupt(T, row.id, e))?,
    };
    let status = Status::from_columns(columns).map_err(|e| corrupt(T, row.id, e))?;
    Ok((name, status))
}

/// A dataset row's sample, if it has one.
pub fn sample(row: &dataset_status::Model) -> Result<Option<SampleName>> {
    row.sample
        .as_deref()
        .map(|s| SampleName::new(s).map_err(|e| corrupt("dataset_status", row.id, e)))
        .transpose()
}

/// A dataset row's outages (`repro_core::outage`).
pub fn outages(row: &dataset_status::Model) -> Result<Vec<Outage>> {
    row.outages.as_deref().map_or(Ok(Vec::new()), |text| {
        Outage::parse_stored(text)
            .map_err(|e| corrupt("dataset_status", row.id, format!("outages: {e}")))
    })
}

/// A file row.
pub fn file(row: &FileRow) -> Result<RawFile> {
    const T: &str = "file_status";
    let state: FileState = row.state.parse().map_err(|e| corrupt(T, row.id, e))?;
    let tmb = sized_file(
        T,
        row.id,
        ("tmb_path", "tmb_size"),
        &row.tmb_path,
        row.tmb_size,
    )?
    .map(|(path, size)| TmbFile { path, size });
    if state.has_tmb() && tmb.is_none() {
        return Err(corrupt(
            T,
            row.id,
            format!("state {state} but no TMB file recorded"),
        ));
    }
    let attempts = count(T, row.id, "attempts", row.attempts)?;
    let attempt_base = count(T, row.id, "attempt_base", row.attempt_base)?;
    if attempt_base > attempts {
        return Err(corrupt(
            T,
            row.id,
            format!("attempt_base {attempt_base} exceeds attempts {attempts}"),
        ));
    }
    let group = match row.merge_group {
        None => None,
        Some(g) if g >= 1 => Some(GroupNo(g as u32)),
        Some(g) => {
            return Err(corrupt(
                T,
                row.id,
                format!("merge_group {g} is not a group number"),
            ));
        }
    };
    Ok(RawFile {
        id: file_id(T, row.id, row.id)?,
        lfn: row.lfn.clone(),
        size: size(T, row.id, "size", row.size)?,
        state,
        attempts,
        attempt_base,
        last_error: row.last_error.clone(),
        tmb,
        group,
        retry: retry(T, row.id, row.retry_at, row.failing_since)?,
    })
}

/// A row's retry times: both or neither.
fn retry(
    table: &'static str,
    id: i64,
    at: Option<i64>,
    since: Option<i64>,
) -> Result<Option<Retry>> {
    match (at, since) {
        (None, None) => Ok(None),
        (Some(at), Some(since)) => Ok(Some(Retry { at, since })),
        _ => Err(corrupt(
            table,
            id,
            "retry_at and failing_since are set together or not at all",
        )),
    }
}

/// A merge group row, with its member files gathered from the file rows.
pub fn group(
    row: &merge_group::Model,
    members: &BTreeMap<GroupNo, Vec<FileId>>,
) -> Result<MergeGroup> {
    const T: &str = "merge_group";
    let (mut g, n_files) = group_alone(row)?;
    g.files = members.get(&g.no).cloned().unwrap_or_default();
    if g.files.len() != n_files as usize {
        return Err(corrupt(
            T,
            row.id,
            format!(
                "n_files is {n_files} but {} files name this group",
                g.files.len()
            ),
        ));
    }
    Ok(g)
}

/// A merge group row without its files (an empty list), and how many it has.
pub fn group_alone(row: &merge_group::Model) -> Result<(MergeGroup, u32)> {
    const T: &str = "merge_group";
    let no = u32::try_from(row.group_no)
        .ok()
        .filter(|n| *n >= 1)
        .map(GroupNo)
        .ok_or_else(|| {
            corrupt(
                T,
                row.id,
                format!("group_no {} is not a group number", row.group_no),
            )
        })?;
    let state: GroupState = row.state.parse().map_err(|e| corrupt(T, row.id, e))?;
    let output = sized_file(
        T,
        row.id,
        ("merged_file", "merged_size"),
        &row.merged_file,
        row.merged_size,
    )?
    .map(|(name, size)| MergedFile { name, size });
    if matches!(
        state,
        GroupState::Merged | GroupState::Declaring | GroupState::Declared
    ) && output.is_none()
    {
        return Err(corrupt(
            T,
            row.id,
            format!("state {state} but no merged file recorded"),
        ));
    }
    let n_files = count(T, row.id, "n_files", row.n_files)?;
    let attempts = count(T, row.id, "attempts", row.attempts)?;
    let g = MergeGroup {
        no,
        files: Vec::new(),
        bytes: size(T, row.id, "bytes", row.bytes)?,
        state,
        attempts,
        attempt_base: count(T, row.id, "attempt_base", row.attempt_base)?,
        last_error: row.last_error.clone(),
        output,
        retry: retry(T, row.id, row.retry_at, row.failing_since)?,
    };
    Ok((g, n_files))
}

/// The columns both job tables share.
struct JobRow<'a> {
    table: &'static str,
    id: i64,
    attempt: i32,
    state: &'a str,
    batch_id: &'a Option<String>,
    exit_code: Option<i32>,
    error: &'a Option<String>,
}

fn job(row: JobRow<'_>, subject: JobSubject) -> Result<Job> {
    let attempt = count(row.table, row.id, "attempt", row.attempt)?;
    if attempt == 0 {
        return Err(corrupt(row.table, row.id, "attempt numbers start at 1"));
    }
    let state: JobState = row
        .state
        .parse()
        .map_err(|e| corrupt(row.table, row.id, e))?;
    Ok(Job {
        key: JobKey { subject, attempt },
        state,
        batch_id: row.batch_id.clone(),
        exit_code: row.exit_code,
        error: row.error.clone(),
    })
}

/// A reco job row.
pub fn reco_job(row: &RecoJobRow) -> Result<Job> {
    const T: &str = "recojob_status";
    let file = file_id(T, row.id, row.file_id)?;
    job(
        JobRow {
            table: T,
            id: row.id,
            attempt: row.attempt,
            state: &row.state,
            batch_id: &row.batch_id,
            exit_code: row.exit_code,
            error: &row.error,
        },
        JobSubject::Reco(file),
    )
}

/// A merge job row; `groups` maps group row ids to group numbers.
pub fn merge_job(row: &MergeJobRow, groups: &BTreeMap<i64, GroupNo>) -> Result<Job> {
    const T: &str = "mergejob_status";
    let no = *groups.get(&row.group_id).ok_or_else(|| {
        corrupt(
            T,
            row.id,
            format!(
                "group_id {} names no merge group of its dataset",
                row.group_id
            ),
        )
    })?;
    job(
        JobRow {
            table: T,
            id: row.id,
            attempt: row.attempt,
            state: &row.state,
            batch_id: &row.batch_id,
            exit_code: row.exit_code,
            error: &row.error,
        },
        JobSubject::Merge(no),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_row(merge_group: Option<i32>) -> FileRow {
        FileRow {
            id: 7,
            lfn: "raw7".into(),
            size: 10,
            state: "reconstructed".into(),
            attempts: 0,
            attempt_base: 0,
            last_error: None,
            tmb_path: Some("tmb7".into()),
            tmb_size: Some(4),
            merge_group,
            retry_at: None,
            failing_since: None,
        }
    }

    #[test]
    fn retry_times_come_together_or_the_row_is_corrupt() {
        let waiting = FileRow {
            retry_at: Some(200),
            failing_since: Some(100),
            ..file_row(None)
        };
        let r = file(&waiting).unwrap().retry;
        assert_eq!(
            r,
            Some(Retry {
                at: 200,
                since: 100
            })
        );
        let half = FileRow {
            retry_at: Some(200),
            ..file_row(None)
        };
        let e = file(&half).unwrap_err().to_string();
        assert!(e.contains("retry_at and failing_since"), "{e}");
    }

    #[test]
    fn a_merge_group_number_below_one_is_a_corrupt_row() {
        assert_eq!(file(&file_row(Some(2))).unwrap().group, Some(GroupNo(2)));
        assert_eq!(file(&file_row(None)).unwrap().group, None);
        for g in [0, -1] {
            match file(&file_row(Some(g))) {
                Err(DbError::CorruptRow { table, id, why }) => {
                    assert_eq!((table, id), ("file_status", 7));
                    assert!(why.contains(&format!("merge_group {g}")), "{why}");
                }
                other => panic!("merge_group {g} gave {other:?}"),
            }
        }
    }
}
