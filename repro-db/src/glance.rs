//! What a person looks at first about one dataset, read without its files: `dataset show`
//! and the dataset's page at a million files answer from counts, the merge groups, what
//! failed for good, and a page of files or jobs, never the whole dataset.

use std::collections::BTreeMap;

use repro_core::file::{FileId, FileState};
use repro_core::job::JobState;
use repro_core::view::{DatasetView, GroupNo, Job};
use repro_core::{DatasetName, GroupState, StageKind};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use crate::entity::{file_status, merge_group, mergejob_status, prelude::*, recojob_status};
use crate::error::Result;
use crate::query::{DatasetSummary, dataset_row, summary};
use crate::snapshot;
use crate::{Store, convert};

/// One dataset as a person first looks at it ([`Store::glance`]).
#[derive(Debug, Clone)]
pub struct Glance {
    /// Its row and file counts.
    pub summary: DatasetSummary,
    /// The part of it a person looks at: its status and outages, every merge group (with
    /// no file list: see `group_files`), the raw files that failed for good (and, when its
    /// cleanup failed, those whose deletion did), and the newest live or failed jobs.
    pub view: DatasetView,
    /// Raw files per merge group.
    pub group_files: BTreeMap<GroupNo, u32>,
    /// Jobs per kind (`reco`, `merge`) and state.
    pub jobs: BTreeMap<(&'static str, JobState), u64>,
    /// Raw files and merge groups waiting to be tried again, and when the first is due.
    pub waiting: Option<(u64, i64)>,
}

/// Job states worth a person's look: live, failed or lost.
fn open_or_failed() -> Vec<&'static str> {
    JobState::ALL
        .iter()
        .filter(|s| **s != JobState::Done)
        .map(|s| s.as_str())
        .collect()
}

impl Store {
    /// `name` as a person first looks at it, with at most `jobs` of each kind of job
    /// listed and retries due against `now` (seconds since the epoch). A fixed number of
    /// statements, each reading counts, the merge groups or a bounded number of rows.
    pub async fn glance(&self, name: &DatasetName, now: i64, jobs: u64) -> Result<Glance> {
        let txn = snapshot(&self.db).await?;
        let summary = summary(&txn, name).await?;
        let ds = dataset_row(&txn, name).await?;
        let (_, status) = convert::dataset(&ds)?;
        let mut view = DatasetView::new(name.clone(), []);
        view.status = status;
        view.outages = summary.outages.clone();
        let mut group_files = BTreeMap::new();
        let mut group_ids = BTreeMap::new();
        for row in MergeGroup::find()
            .filter(merge_group::Column::DatasetId.eq(ds.id))
            .all(&txn)
            .await?
        {
            let (g, n) = convert::group_alone(&row)?;
            group_files.insert(g.no, n);
            group_ids.insert(row.id, g.no);
            view.groups.insert(g.no, g);
        }
        let mut states: Vec<&str> = FileState::ALL
            .iter()
            .filter(|s| s.failed_for_good())
            .map(|s| s.as_str())
            .collect();
        if status.state.kind() == StageKind::CleanupFailed {
            states.push(FileState::Merged.as_str());
        }
        view.files = files(&txn, ds.id, &states, 0, u64::MAX).await?;
        let open = open_or_failed();
        for row in RecojobStatus::find()
            .filter(recojob_status::Column::DatasetId.eq(ds.id))
            .filter(recojob_status::Column::State.is_in(open.iter().copied()))
            .order_by_desc(recojob_status::Column::Id)
            .limit(jobs)
            .into_partial_model::<convert::RecoJobRow>()
            .all(&txn)
            .await?
        {
            let j = convert::reco_job(&row)?;
            view.jobs.insert(j.key, j);
        }
        for row in MergejobStatus::find()
            .filter(mergejob_status::Column::DatasetId.eq(ds.id))
            .filter(mergejob_status::Column::State.is_in(open.iter().copied()))
            .order_by_desc(mergejob_status::Column::Id)
            .limit(jobs)
            .into_partial_model::<convert::MergeJobRow>()
            .all(&txn)
            .await?
        {
            let j = convert::merge_job(&row, &group_ids)?;
            view.jobs.insert(j.key, j);
        }
        let jobs = job_counts(&txn, ds.id).await?;
        let waiting = waiting(&txn, ds.id, now).await?;
        Ok(Glance {
            summary,
            view,
            group_files,
            jobs,
            waiting,
        })
    }

    /// Up to `limit` raw files of `name` from the `offset`-th on, in id order (only those
    /// in `state`, if given), with their reco jobs: a page of the dataset, as a view.
    pub async fn files_page(
        &self,
        name: &DatasetName,
        state: Option<FileState>,
        offset: u64,
        limit: u64,
    ) -> Result<DatasetView> {
        let txn = snapshot(&self.db).await?;
        let ds = dataset_row(&txn, name).await?;
        let all: Vec<&str> = FileState::ALL.iter().map(|s| s.as_str()).collect();
        let states = state.map_or(all, |s| vec![s.as_str()]);
        let mut view = DatasetView::new(name.clone(), []);
        view.files = files(&txn, ds.id, &states, offset, limit).await?;
        let ids = view
            .files
            .keys()
            .map(|id| convert::db_id(*id))
            .collect::<Result<Vec<i64>>>()?;
        for row in RecojobStatus::find()
            .filter(recojob_status::Column::FileId.is_in(ids))
            .into_partial_model::<convert::RecoJobRow>()
            .all(&txn)
            .await?
        {
            let j = convert::reco_job(&row)?;
            view.jobs.insert(j.key, j);
        }
        Ok(view)
    }

    /// Up to `limit` jobs of `name` from the `offset`-th on: its reco jobs in the order
    /// they were reserved, then its merge jobs.
    pub async fn jobs_page(&self, name: &DatasetName, offset: u64, limit: u64) -> Result<Vec<Job>> {
        let txn = snapshot(&self.db).await?;
        let ds = dataset_row(&txn, name).await?;
        let reco = RecojobStatus::find()
            .filter(recojob_status::Column::DatasetId.eq(ds.id))
            .count(&txn)
            .await?;
        let mut out = Vec::new();
        if offset < reco {
            for row in RecojobStatus::find()
                .filter(recojob_status::Column::DatasetId.eq(ds.id))
                .order_by_asc(recojob_status::Column::Id)
                .offset(offset)
                .limit(limit)
                .into_partial_model::<convert::RecoJobRow>()
                .all(&txn)
                .await?
            {
                out.push(convert::reco_job(&row)?);
            }
        }
        let left = limit.saturating_sub(out.len() as u64);
        if left > 0 {
            let group_ids: BTreeMap<i64, GroupNo> = MergeGroup::find()
                .filter(merge_group::Column::DatasetId.eq(ds.id))
                .all(&txn)
                .await?
                .iter()
                .map(|r| convert::group_alone(r).map(|(g, _)| (r.id, g.no)))
                .collect::<Result<_>>()?;
            for row in MergejobStatus::find()
                .filter(mergejob_status::Column::DatasetId.eq(ds.id))
                .order_by_asc(mergejob_status::Column::Id)
                .offset(offset.saturating_sub(reco))
                .limit(left)
                .into_partial_model::<convert::MergeJobRow>()
                .all(&txn)
                .await?
            {
                out.push(convert::merge_job(&row, &group_ids)?);
            }
        }
        Ok(out)
    }
}

/// The raw files of dataset `id` in `states`, in id order, from the `offset`-th, at most
/// `limit`.
async fn files<C: ConnectionTrait>(
    db: &C,
    id: i64,
    states: &[&str],
    offset: u64,
    limit: u64,
) -> Result<BTreeMap<FileId, repro_core::RawFile>> {
    let mut q = FileStatus::find()
        .filter(file_status::Column::DatasetId.eq(id))
        .filter(file_status::Column::State.is_in(states.iter().copied()))
        .order_by_asc(file_status::Column::Id);
    // SQLite takes an OFFSET only after a LIMIT.
    if limit != u64::MAX || offset > 0 {
        q = q.offset(offset).limit(Ord::min(limit, i64::MAX as u64));
    }
    let mut out = BTreeMap::new();
    for row in q.into_partial_model::<convert::FileRow>().all(db).await? {
        let f = convert::file(&row)?;
        out.insert(f.id, f);
    }
    Ok(out)
}

/// Jobs of dataset `id` per kind and state: a `GROUP BY` over each job table's
/// `(dataset_id, state)` index.
async fn job_counts<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<BTreeMap<(&'static str, JobState), u64>> {
    async fn per_state<C: ConnectionTrait, E: EntityTrait>(
        db: &C,
        q: Select<E>,
        state: E::Column,
    ) -> Result<Vec<(String, i64)>> {
        Ok(q.select_only()
            .column(state)
            .column_as(Expr::col(state).count(), "n")
            .group_by(state)
            .into_tuple()
            .all(db)
            .await?)
    }
    let reco = RecojobStatus::find().filter(recojob_status::Column::DatasetId.eq(id));
    let merge = MergejobStatus::find().filter(mergejob_status::Column::DatasetId.eq(id));
    let mut out = BTreeMap::new();
    for (kind, table, rows) in [
        (
            "reco",
            "recojob_status",
            per_state(db, reco, recojob_status::Column::State).await?,
        ),
        (
            "merge",
            "mergejob_status",
            per_state(db, merge, mergejob_status::Column::State).await?,
        ),
    ] {
        for (state, n) in rows {
            let s: JobState = state.parse().map_err(|e| {
                convert::corrupt(table, id, format!("a job state of this dataset: {e}"))
            })?;
            out.insert((kind, s), crate::counts::checked(table, id, n)?);
        }
    }
    Ok(out)
}

/// How many raw files and merge groups of dataset `id` wait to be tried again at `now`,
/// and when the first is due.
async fn waiting<C: ConnectionTrait>(db: &C, id: i64, now: i64) -> Result<Option<(u64, i64)>> {
    let files: (i64, Option<i64>) = FileStatus::find()
        .select_only()
        .column_as(Expr::col(file_status::Column::Id).count(), "n")
        .column_as(Expr::col(file_status::Column::RetryAt).min(), "first")
        .filter(file_status::Column::DatasetId.eq(id))
        .filter(file_status::Column::RetryAt.gt(now))
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or((0, None));
    let groups: (i64, Option<i64>) = MergeGroup::find()
        .select_only()
        .column_as(Expr::col(merge_group::Column::Id).count(), "n")
        .column_as(Expr::col(merge_group::Column::RetryAt).min(), "first")
        .filter(merge_group::Column::DatasetId.eq(id))
        .filter(merge_group::Column::RetryAt.gt(now))
        .filter(merge_group::Column::State.ne(GroupState::Declared.as_str()))
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or((0, None));
    let n = u64::try_from(files.0 + groups.0).unwrap_or(0);
    let first = [files.1, groups.1].into_iter().flatten().min();
    Ok(first.map(|f| (n, f)))
}
