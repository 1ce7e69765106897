//! Reading: one dataset as a view, summaries with file counts, history.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use repro_core::file::{FileId, FileState};
use repro_core::view::{DatasetView, GroupNo};
use repro_core::{DatasetName, SampleName, Status};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::convert;
use crate::entity::{
    dataset_status, file_status, merge_group, mergejob_status, prelude::*, recojob_status,
    state_count, transitions,
};
use crate::error::{DbError, Result};

pub(crate) async fn dataset_row<C: ConnectionTrait>(
    db: &C,
    name: &DatasetName,
) -> Result<dataset_status::Model> {
    DatasetStatus::find()
        .filter(dataset_status::Column::Name.eq(name.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| DbError::NotFound(name.to_string()))
}

/// Loads one dataset with everything the decisions look at, and the row and revision it
/// is at.
pub(crate) async fn load(
    txn: &DatabaseTransaction,
    name: &DatasetName,
) -> Result<(DatasetView, crate::Stamp)> {
    let ds = dataset_row(txn, name).await?;
    let (name, status) = convert::dataset(&ds)?;
    let (files, members) = load_files(txn, ds.id).await?;
    let (groups, group_nos) = load_groups(txn, ds.id, &members).await?;
    let mut jobs = BTreeMap::new();
    let mut reco_rows = RecojobStatus::find()
        .filter(recojob_status::Column::DatasetId.eq(ds.id))
        .into_partial_model::<convert::RecoJobRow>()
        .stream(txn)
        .await?;
    while let Some(row) = reco_rows.try_next().await? {
        let j = convert::reco_job(&row)?;
        if let repro_core::JobSubject::Reco(f) = j.key.subject
            && !files.contains_key(&f)
        {
            return Err(DbError::CorruptRow {
                table: "recojob_status",
                id: row.id,
                why: format!("file_id {} is not a file of dataset {name}", row.file_id),
            });
        }
        jobs.insert(j.key, j);
    }
    drop(reco_rows);
    for row in MergejobStatus::find()
        .filter(mergejob_status::Column::DatasetId.eq(ds.id))
        .into_partial_model::<convert::MergeJobRow>()
        .all(txn)
        .await?
    {
        let j = convert::merge_job(&row, &group_nos)?;
        jobs.insert(j.key, j);
    }
    let view = DatasetView {
        name,
        status,
        files,
        jobs,
        groups,
        outages: convert::outages(&ds)?,
    };
    let stamp = crate::Stamp {
        id: ds.id,
        revision: crate::Revision(ds.revision),
    };
    Ok((view, stamp))
}

/// Each merge group's raw files, in id order.
type Members = BTreeMap<GroupNo, Vec<FileId>>;

/// Dataset `id`'s raw files, and the files of each merge group.
async fn load_files(
    txn: &DatabaseTransaction,
    id: i64,
) -> Result<(BTreeMap<FileId, repro_core::RawFile>, Members)> {
    // Rows are streamed into the view, one at a time: a dataset's rows are never all held
    // at once beside it (sqlx's rows are several times the size of what they decode to).
    // In no particular order (the view's maps order them; asking SQLite for id order
    // made it sort every row first, in a temporary B-tree).
    let mut file_rows = FileStatus::find()
        .filter(file_status::Column::DatasetId.eq(id))
        .into_partial_model::<convert::FileRow>()
        .stream(txn)
        .await?;
    let mut files = BTreeMap::new();
    let mut members = Members::new();
    while let Some(row) = file_rows.try_next().await? {
        let f = convert::file(&row)?;
        if let Some(g) = f.group {
            members.entry(g).or_default().push(f.id);
        }
        files.insert(f.id, f);
    }
    for ids in members.values_mut() {
        ids.sort_unstable();
    }
    Ok((files, members))
}

/// Dataset `id`'s merge groups, and each one's number by its row id; a file naming a group
/// the dataset does not have is a corrupt row.
async fn load_groups(
    txn: &DatabaseTransaction,
    id: i64,
    members: &Members,
) -> Result<(
    BTreeMap<GroupNo, repro_core::MergeGroup>,
    BTreeMap<i64, GroupNo>,
)> {
    let group_rows = MergeGroup::find()
        .filter(merge_group::Column::DatasetId.eq(id))
        .all(txn)
        .await?;
    let mut groups = BTreeMap::new();
    let mut group_nos = BTreeMap::new();
    for row in &group_rows {
        let g = convert::group(row, members)?;
        group_nos.insert(row.id, g.no);
        groups.insert(g.no, g);
    }
    for (no, ids) in members {
        if !groups.contains_key(no) {
            return Err(DbError::CorruptRow {
                table: "file_status",
                id: convert::db_id(ids[0])?,
                why: format!("merge_group {} names no merge group of its dataset", no.0),
            });
        }
    }
    Ok((groups, group_nos))
}

/// How many things of a dataset a check would poll ([`repro_core::plan::polls`]) counted
/// by the database instead of loaded: files staging or deleting, live jobs, groups being
/// declared; none for a locked dataset. Four `COUNT`s over the `(dataset_id, state)` indexes.
pub(crate) async fn polls_due(db: &DatabaseConnection, name: &DatasetName) -> Result<u64> {
    use repro_core::GroupState;
    use repro_core::job::JobState;
    let ds = dataset_row(db, name).await?;
    if ds.lock_state == repro_core::LockWord::Lock.as_str() {
        return Ok(0);
    }
    let live: Vec<&str> = JobState::ALL
        .iter()
        .filter(|s| s.is_live())
        .map(|s| s.as_str())
        .collect();
    let files = FileStatus::find()
        .filter(file_status::Column::DatasetId.eq(ds.id))
        .filter(
            file_status::Column::State
                .is_in([FileState::Staging.as_str(), FileState::Deleting.as_str()]),
        )
        .count(db)
        .await?;
    let reco = RecojobStatus::find()
        .filter(recojob_status::Column::DatasetId.eq(ds.id))
        .filter(recojob_status::Column::State.is_in(live.iter().copied()))
        .count(db)
        .await?;
    let merge = MergejobStatus::find()
        .filter(mergejob_status::Column::DatasetId.eq(ds.id))
        .filter(mergejob_status::Column::State.is_in(live.iter().copied()))
        .count(db)
        .await?;
    let declaring = MergeGroup::find()
        .filter(merge_group::Column::DatasetId.eq(ds.id))
        .filter(merge_group::Column::State.eq(GroupState::Declaring.as_str()))
        .filter(merge_group::Column::MergedFile.is_not_null())
        .count(db)
        .await?;
    Ok(files + reco + merge + declaring)
}

/// How many files a dataset has in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileCounts {
    /// All files.
    pub total: u64,
    /// Per state; states with no file are absent.
    pub by_state: BTreeMap<FileState, u64>,
}

impl FileCounts {
    /// Files in `state`.
    pub fn get(&self, state: FileState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    /// Files that failed for good.
    pub fn failed_for_good(&self) -> u64 {
        self.by_state
            .iter()
            .filter(|(s, _)| s.failed_for_good())
            .map(|(_, n)| n)
            .sum()
    }
}

/// A dataset's row with its file counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: DatasetName,
    /// Lock and lifecycle state.
    pub status: Status,
    /// The site, if set.
    pub site: Option<String>,
    /// The sample it belongs to, if any.
    pub sample: Option<SampleName>,
    /// Its priority: higher gets budget first.
    pub priority: i32,
    /// What of it waited for budget in its last run ("waiting: 1,200 files for stage
    /// requests").
    pub waiting: Option<String>,
    /// Files per state.
    pub files: FileCounts,
    /// Registered at (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
    /// Who holds its lease, if anyone, and until when.
    pub lease: Option<(String, NaiveDateTime)>,
    /// How many raw files failed for good an operator accepted losing (`repro accept`).
    pub accepted_lost: u64,
    /// Its steps found out, each waiting for its next try.
    pub outages: Vec<repro_core::outage::Outage>,
}

impl DatasetSummary {
    /// Whether it needs a person: a `FAILED` phase, or more raw files failed for good than
    /// an operator accepted losing. (`ListFilter::needs_a_person` asks the same in SQL.)
    pub fn needs_a_person(&self) -> bool {
        self.status.state.kind().is_failed() || self.files.failed_for_good() > self.accepted_lost
    }
}

/// Which datasets to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only datasets with this word in any of their five state columns (`FAILED`,
    /// `RUNNING`, `LOCK`, `MERGED_DBUP`...).
    pub state_word: Option<String>,
    /// Only datasets of this site.
    pub site: Option<String>,
    /// Only datasets of this sample.
    pub sample: Option<SampleName>,
    /// Only unlocked datasets that are not `CLEANED` (what automation works on).
    pub active_only: bool,
    /// Only datasets that need a person (see [`DatasetSummary::needs_a_person`]).
    pub needs_a_person: bool,
    /// Most recently changed first, instead of by name.
    pub recent_first: bool,
    /// Highest priority first, then the oldest: the order in which a tick gives work.
    /// Wins over `recent_first`.
    pub by_priority: bool,
    /// Skip this many.
    pub offset: u64,
    /// At most this many.
    pub limit: Option<u64>,
}

/// Files per state of the datasets `ids`, from the counts their writes keep.
async fn counts<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<BTreeMap<i64, FileCounts>> {
    use state_count::Column as S;
    let mut out: BTreeMap<i64, FileCounts> = BTreeMap::new();
    for chunk in ids.chunks(crate::ID_CHUNK) {
        let rows: Vec<(i64, String, i64)> = StateCount::find()
            .select_only()
            .columns([S::DatasetId, S::State, S::N])
            .filter(S::Entity.eq("file"))
            .filter(S::DatasetId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        for (id, state, n) in rows {
            let n = crate::counts::checked("state_count", id, n)?;
            if n == 0 {
                continue;
            }
            let state: FileState = state.parse().map_err(|e| DbError::CorruptRow {
                table: "state_count",
                id,
                why: format!("a file state of this dataset: {e}"),
            })?;
            let c = out.entry(id).or_default();
            c.total += n;
            *c.by_state.entry(state).or_default() += n;
        }
    }
    Ok(out)
}

fn summarise(
    row: dataset_status::Model,
    counts: &mut BTreeMap<i64, FileCounts>,
) -> Result<DatasetSummary> {
    let (name, status) = convert::dataset(&row)?;
    let sample = convert::sample(&row)?;
    let outages = convert::outages(&row)?;
    Ok(DatasetSummary {
        id: row.id,
        name,
        status,
        site: row.site,
        sample,
        priority: row.priority,
        waiting: row.waiting,
        files: counts.remove(&row.id).unwrap_or_default(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        lease: row.lease_owner.zip(row.lease_until),
        accepted_lost: crate::counts::checked("dataset_status", row.id, row.accepted_lost)?,
        outages,
    })
}

pub(crate) async fn summary<C: ConnectionTrait>(
    db: &C,
    name: &DatasetName,
) -> Result<DatasetSummary> {
    let row = dataset_row(db, name).await?;
    let mut c = counts(db, &[row.id]).await?;
    summarise(row, &mut c)
}

fn filtered(filter: &ListFilter) -> sea_orm::Select<DatasetStatus> {
    use dataset_status::Column as C;
    let mut q = DatasetStatus::find();
    if let Some(w) = &filter.state_word {
        q = q.filter(C::states().fold(Condition::any(), |any, c| any.add(c.eq(w.as_str()))));
    }
    if let Some(s) = &filter.site {
        q = q.filter(C::Site.eq(s.as_str()));
    }
    if let Some(s) = &filter.sample {
        q = q.filter(C::Sample.eq(s.as_str()));
    }
    if filter.needs_a_person {
        let lost: Vec<String> = FileState::ALL
            .iter()
            .filter(|s| s.failed_for_good())
            .map(|s| format!("'{s}'"))
            .collect();
        let failed = repro_core::Phase::ALL
            .iter()
            .fold(Condition::any(), |any, p| any.add(C::of(*p).eq("FAILED")));
        q = q.filter(failed.or(Expr::cust(format!(
            "(SELECT COALESCE(SUM(sc.n), 0) FROM state_count sc WHERE sc.dataset_id = dataset_status.id \
             AND sc.entity = 'file' AND sc.state IN ({})) > dataset_status.accepted_lost",
            lost.join(", ")
        ))));
    }
    if filter.active_only {
        q = q
            .filter(C::LockState.eq(repro_core::LockWord::Unlock.as_str()))
            .filter(C::CleanupState.ne(repro_core::CleanupWord::Cleaned.as_str()));
    }
    q
}

pub(crate) async fn list(
    db: &DatabaseConnection,
    filter: &ListFilter,
) -> Result<Vec<DatasetSummary>> {
    use dataset_status::Column as C;
    let q = if filter.by_priority {
        filtered(filter)
            .order_by(C::Priority, Order::Desc)
            .order_by(C::CreatedAt, Order::Asc)
            .order_by(C::Id, Order::Asc)
    } else if filter.recent_first {
        filtered(filter).order_by(C::UpdatedAt, Order::Desc)
    } else {
        filtered(filter)
    };
    let q = q
        .order_by(dataset_status::Column::Name, Order::Asc)
        .offset(filter.offset)
        // SQLite accepts OFFSET only after a LIMIT.
        .limit(filter.limit.unwrap_or(i64::MAX as u64));
    let rows = q.all(db).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut c = counts(db, &ids).await?;
    rows.into_iter().map(|r| summarise(r, &mut c)).collect()
}

/// One sample's datasets, summed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleSummary {
    /// The sample; `None` for the datasets in none.
    pub sample: Option<SampleName>,
    /// Its datasets.
    pub datasets: u64,
    /// Of them, `CLEANED`.
    pub cleaned: u64,
    /// Of them, with `FAILED` in a column.
    pub failed: u64,
    /// Of them, `LOCK`ed.
    pub locked: u64,
    /// Their files per state, summed.
    pub files: FileCounts,
}

/// The datasets of `site` (or all) summed per sample, samples by name and the datasets in
/// none last; empty when no dataset of them is in a sample. Two grouped statements: the
/// datasets' columns per sample, and the counts their writes keep per sample and state.
pub(crate) async fn samples(
    db: &DatabaseConnection,
    site: Option<&str>,
) -> Result<Vec<SampleSummary>> {
    let Some(mut by) = per_sample(db, site).await? else {
        return Ok(Vec::new());
    };
    sample_files(db, site, &mut by).await?;
    Ok(by.into_values().collect())
}

/// Samples, keyed so that the datasets in none come last.
type BySample = BTreeMap<(bool, Option<SampleName>), SampleSummary>;

/// ` WHERE {col} = ?` (`$1` on PostgreSQL) when there is a `site`.
fn site_filter(backend: DbBackend, site: Option<&str>, col: &str) -> String {
    match (site, backend) {
        (None, _) => String::new(),
        (Some(_), DbBackend::Postgres) => format!(" WHERE {col} = $1"),
        (Some(_), _) => format!(" WHERE {col} = ?"),
    }
}

/// The datasets of `site` (or all) counted per sample, without their files; `None` when
/// no dataset of them is in a sample.
async fn per_sample(db: &DatabaseConnection, site: Option<&str>) -> Result<Option<BySample>> {
    use sea_orm::{FromQueryResult, Statement, Value};
    let backend = db.get_database_backend();
    let int = |e: &str| crate::counts::as_i64(backend, e);
    let when = |cond: &str| int(&format!("SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"));
    let (lock, cleaned) = (
        repro_core::LockWord::Lock.as_str(),
        repro_core::CleanupWord::Cleaned.as_str(),
    );
    // `FAILED` in any phase's column.
    let failed: Vec<String> = repro_core::Phase::ALL
        .iter()
        .map(|p| format!("{}_state = 'FAILED'", p.as_str()))
        .collect();
    let sql = format!(
        "SELECT sample, {} AS datasets, {} AS cleaned, {} AS failed, {} AS locked \
         FROM dataset_status{} GROUP BY sample",
        int("COUNT(*)"),
        when(&format!("cleanup_state = '{cleaned}'")),
        when(&failed.join(" OR ")),
        when(&format!("lock_state = '{lock}'")),
        site_filter(backend, site, "site"),
    );
    #[derive(FromQueryResult)]
    struct PerSample {
        sample: Option<String>,
        datasets: i64,
        cleaned: Option<i64>,
        failed: Option<i64>,
        locked: Option<i64>,
    }
    let values: Vec<Value> = site.map(Value::from).into_iter().collect();
    let rows = PerSample::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    if rows.iter().all(|r| r.sample.is_none()) {
        return Ok(None);
    }
    let n = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
    let mut by = BySample::new();
    for r in rows {
        let sample = match r.sample {
            None => None,
            Some(s) => Some(sample_name(db, s).await?),
        };
        by.insert(
            (sample.is_none(), sample.clone()),
            SampleSummary {
                sample,
                datasets: n(Some(r.datasets)),
                cleaned: n(r.cleaned),
                failed: n(r.failed),
                locked: n(r.locked),
                files: FileCounts::default(),
            },
        );
    }
    Ok(Some(by))
}

/// A stored sample name, or the error naming a dataset row that holds it when it is not
/// one.
async fn sample_name(db: &DatabaseConnection, s: String) -> Result<SampleName> {
    match SampleName::new(&s) {
        Ok(name) => Ok(name),
        Err(e) => {
            let id: Option<i64> = DatasetStatus::find()
                .select_only()
                .column(dataset_status::Column::Id)
                .filter(dataset_status::Column::Sample.eq(s.as_str()))
                .into_tuple()
                .one(db)
                .await?;
            Err(convert::corrupt("dataset_status", id.unwrap_or(0), e))
        }
    }
}

/// Adds each sample's files per state: a sum over the counts the writes keep, which hold
/// the sample too (over every site, from one index alone).
async fn sample_files(
    db: &DatabaseConnection,
    site: Option<&str>,
    by: &mut BySample,
) -> Result<()> {
    use sea_orm::{FromQueryResult, Statement, Value};
    let backend = db.get_database_backend();
    let sum = crate::counts::as_i64(backend, "SUM(c.n)");
    let sql = match site {
        None => format!(
            "SELECT c.sample AS sample, c.state AS state, {sum} AS n FROM state_count c \
             WHERE c.entity = 'file' GROUP BY c.sample, c.state"
        ),
        Some(_) => format!(
            "SELECT c.sample AS sample, c.state AS state, {sum} AS n FROM state_count c \
             JOIN dataset_status d ON d.id = c.dataset_id{} AND c.entity = 'file' \
             GROUP BY c.sample, c.state",
            site_filter(backend, site, "d.site")
        ),
    };
    #[derive(FromQueryResult)]
    struct SampleSum {
        sample: Option<String>,
        state: String,
        n: Option<i64>,
    }
    let values: Vec<Value> = site.map(Value::from).into_iter().collect();
    let sums = SampleSum::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    for SampleSum { sample, state, n } in sums {
        let n = crate::counts::checked("state_count", 0, n.unwrap_or(0))?;
        if n == 0 {
            continue;
        }
        let sample = sample.and_then(|s| SampleName::new(s).ok());
        let state: FileState = state.parse().map_err(|e| DbError::CorruptRow {
            table: "state_count",
            id: 0,
            why: format!("{e}"),
        })?;
        if let Some(s) = by.get_mut(&(sample.is_none(), sample)) {
            s.files.total += n;
            *s.files.by_state.entry(state).or_default() += n;
        }
    }
    Ok(())
}

/// Jobs of every dataset, every attempt counted: what a campaign ran, for its closing
/// summary. Counted by the database (no job row is read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobTotals {
    /// Reco jobs.
    pub reco: u64,
    /// Merge jobs.
    pub merge: u64,
    /// Jobs of either kind that were a retry (attempt 2 or later).
    pub retries: u64,
}

pub(crate) async fn job_totals(db: &DatabaseConnection) -> Result<JobTotals> {
    let reco = RecojobStatus::find().count(db).await?;
    let merge = MergejobStatus::find().count(db).await?;
    let retries = RecojobStatus::find()
        .filter(recojob_status::Column::Attempt.gt(1))
        .count(db)
        .await?
        + MergejobStatus::find()
            .filter(mergejob_status::Column::Attempt.gt(1))
            .count(db)
            .await?;
    Ok(JobTotals {
        reco,
        merge,
        retries,
    })
}

/// Number of datasets matching `filter` (ignoring offset and limit).
pub(crate) async fn count(db: &DatabaseConnection, filter: &ListFilter) -> Result<u64> {
    Ok(filtered(filter).count(db).await?)
}

/// One history row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// When (UTC; RFC 3339 with its zone in JSON).
    #[serde(serialize_with = "utc")]
    pub at: NaiveDateTime,
    /// `dataset`, `file`, `group`, `reco_job` or `merge_job`.
    pub entity: String,
    /// The entity's row id.
    pub entity_id: i64,
    /// State before (`-` for a row that was created; `null` in JSON).
    #[serde(serialize_with = "dash_is_null")]
    pub from: String,
    /// State after.
    pub to: String,
    /// The transition or event.
    pub via: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
}

fn utc<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn dash_is_null<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    match v {
        "-" => s.serialize_none(),
        v => s.serialize_str(v),
    }
}

pub(crate) async fn history(
    db: &DatabaseConnection,
    name: &DatasetName,
    entity: Option<&str>,
) -> Result<Vec<HistoryEntry>> {
    let ds = dataset_row(db, name).await?;
    let mut q = Transitions::find().filter(transitions::Column::DatasetId.eq(ds.id));
    if let Some(e) = entity {
        q = q.filter(transitions::Column::Entity.eq(e));
    }
    let mut out = Vec::new();
    for r in q.order_by_asc(transitions::Column::Id).all(db).await? {
        let moved = moves_of(&r)?;
        for (entity_id, reason) in moved {
            out.push(HistoryEntry {
                at: r.at,
                entity: r.entity.clone(),
                entity_id,
                from: r.from_state.clone(),
                to: r.to_state.clone(),
                via: r.via.clone(),
                actor: r.actor.clone(),
                reason,
            });
        }
    }
    Ok(out)
}

/// What a history row says moved: each id with its reason (one, or the `n` of a bulk
/// move).
pub(crate) fn moves_of(r: &transitions::Model) -> Result<Vec<(i64, Option<String>)>> {
    let ids = ids_of(r.id, r.entity_id, r.n, r.ids.as_deref())?;
    let Some(listed) = &r.reasons else {
        return Ok(ids.into_iter().map(|id| (id, r.reason.clone())).collect());
    };
    let corrupt = |why: String| DbError::CorruptRow {
        table: "transitions",
        id: r.id,
        why,
    };
    let reasons: Vec<Option<String>> = serde_json::from_str(listed)
        .map_err(|e| corrupt(format!("reasons is not a JSON list of texts: {e}")))?;
    if reasons.len() != ids.len() {
        return Err(corrupt(format!(
            "reasons lists {} for {} ids",
            reasons.len(),
            ids.len()
        )));
    }
    Ok(ids.into_iter().zip(reasons).collect())
}

/// The ids a history row (`id`) is about: `entity_id`, or the `n` of a bulk move's `ids`.
pub(crate) fn ids_of(id: i64, entity_id: i64, n: i64, ids: Option<&str>) -> Result<Vec<i64>> {
    let corrupt = |why: String| DbError::CorruptRow {
        table: "transitions",
        id,
        why,
    };
    // A write names at most `ID_CHUNK` ids in a row; far more is a corrupt `n`, not a
    // reason to allocate.
    const MOST: i64 = 100 * crate::ID_CHUNK as i64;
    match (n, ids) {
        (1, None) => Ok(vec![entity_id]),
        (n, Some(_)) if n > MOST => Err(corrupt(format!("n is {n}, above {MOST}"))),
        (n, Some(text)) if n > 1 => {
            let ids = crate::idset::decode(text, n as u64)
                .map_err(|e| corrupt(format!("ids {text:?}: {e}")))?;
            if ids[0] != entity_id {
                return Err(corrupt(format!(
                    "entity_id {entity_id} is not the first of its ids {text:?}"
                )));
            }
            Ok(ids)
        }
        (n, None) => Err(corrupt(format!("n is {n} without ids"))),
        (n, Some(_)) => Err(corrupt(format!("n is {n} with ids"))),
    }
}

/// Campaign-wide counts, for a status page and metrics: one `GROUP BY` over the datasets and
/// one over the counts their writes keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Datasets.
    pub datasets: u64,
    /// Datasets per (column, word), e.g. `("reco", "RUNNING")`.
    pub columns: BTreeMap<(String, String), u64>,
    /// Files per state, over every dataset.
    pub files: FileCounts,
    /// Reco jobs per state.
    pub reco_jobs: BTreeMap<String, u64>,
    /// Merge jobs per state.
    pub merge_jobs: BTreeMap<String, u64>,
}

pub(crate) async fn totals(db: &DatabaseConnection) -> Result<Totals> {
    use dataset_status::Column as C;
    let mut t = Totals::default();
    // Datasets per word of each column: one small query per column.
    for (name, column) in repro_core::Columns::names().zip(C::states()) {
        let rows: Vec<(String, i64)> = DatasetStatus::find()
            .select_only()
            .column(column)
            .column_as(Expr::col(C::Id).count(), "n")
            .group_by(column)
            .into_tuple()
            .all(db)
            .await?;
        for (word, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            if name == repro_core::LockWord::COLUMN {
                t.datasets += n;
            }
            *t.columns.entry((name.to_owned(), word)).or_default() += n;
        }
    }
    // Files and jobs per state: sums over the counts the writes keep, one small row per
    // dataset and state.
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT entity, state, {} AS n FROM state_count GROUP BY entity, state",
        crate::counts::as_i64(backend, "SUM(n)")
    );
    #[derive(sea_orm::FromQueryResult)]
    struct Sum {
        entity: String,
        state: String,
        n: Option<i64>,
    }
    use sea_orm::FromQueryResult;
    let rows = Sum::find_by_statement(sea_orm::Statement::from_string(backend, sql))
        .all(db)
        .await?;
    for Sum { entity, state, n } in rows {
        let n = crate::counts::checked("state_count", 0, n.unwrap_or(0))?;
        if n == 0 {
            continue;
        }
        match entity.as_str() {
            "file" => {
                let state: FileState = state.parse().map_err(|e| DbError::CorruptRow {
                    table: "state_count",
                    id: 0,
                    why: format!("{e}"),
                })?;
                t.files.total += n;
                *t.files.by_state.entry(state).or_default() += n;
            }
            "reco_job" => {
                t.reco_jobs.insert(state, n);
            }
            "merge_job" => {
                t.merge_jobs.insert(state, n);
            }
            _ => {}
        }
    }
    Ok(t)
}

/// How many history rows of `entity` moved by `via` fall in each hour from the one holding
/// `since` (`YYYY-MM-DD HH:00`, UTC), for one dataset or all: a sum over the hourly counts
/// the writes keep, not a count of the history.
pub(crate) async fn per_hour(
    db: &DatabaseConnection,
    dataset: Option<&DatasetName>,
    entity: &str,
    via: &str,
    since: NaiveDateTime,
) -> Result<Vec<(String, u64)>> {
    use sea_orm::{FromQueryResult, Statement, Value};
    let backend = db.get_database_backend();
    let p = |i: usize| match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    };
    let mut sql = format!(
        "SELECT hour, {} AS n FROM hourly_count WHERE entity = {} AND via = {} AND hour >= {}",
        crate::counts::as_i64(backend, "SUM(n)"),
        p(1),
        p(2),
        p(3)
    );
    let mut values: Vec<Value> = vec![entity.into(), via.into(), crate::counts::hour(since).into()];
    if let Some(name) = dataset {
        sql.push_str(&format!(
            " AND dataset_id = (SELECT id FROM dataset_status WHERE name = {})",
            p(4)
        ));
        values.push(name.as_str().into());
    }
    sql.push_str(" GROUP BY hour ORDER BY hour");
    #[derive(FromQueryResult)]
    struct Row {
        hour: String,
        n: Option<i64>,
    }
    let rows = Row::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.hour,
                crate::counts::checked("hourly_count", 0, r.n.unwrap_or(0))?,
            ))
        })
        .filter(|r| !matches!(r, Ok((_, 0))))
        .collect()
}

/// The statement of [`usage`] and its values, bound in the order they stand in it (`?` is
/// positional).
fn usage_sql(
    backend: DbBackend,
    site: crate::Sites<'_>,
    except: Option<i64>,
) -> (String, Vec<sea_orm::Value>) {
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut param = |v: sea_orm::Value| {
        values.push(v);
        match backend {
            DbBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_owned(),
        }
    };
    // Bound in the order they stand in the statement (`?` is positional).
    // From the start of prestage until CLEANED a dataset holds disk for its raw files.
    let not_done = param(repro_core::PrestageWord::NotDone.as_str().into());
    let cleaned = param(repro_core::CleanupWord::Cleaned.as_str().into());
    let mut filter = String::new();
    match site {
        crate::Sites::One(Some(s)) => {
            filter.push_str(&format!(" AND d.site = {}", param(s.into())));
        }
        crate::Sites::One(None) => filter.push_str(" AND d.site IS NULL"),
        crate::Sites::All => {}
    }
    if let Some(id) = except {
        filter.push_str(&format!(" AND d.id <> {}", param(id.into())));
    }
    let sum = |col: &str| crate::counts::as_i64(backend, &format!("SUM(c.{col})"));
    // One row per entity, state and holding or not: a sum over a row per dataset and
    // state that the writes keep, not over the files.
    let sql = format!(
        "SELECT c.entity AS entity, c.state AS state, \
         {holding} AS holding, \
         {n} AS n, {bytes} AS bytes, {tmb} AS tmb_bytes \
         FROM state_count c JOIN dataset_status d ON d.id = c.dataset_id \
         WHERE c.entity IN ('file', 'reco_job', 'merge_job'){filter} \
         GROUP BY c.entity, c.state, holding",
        holding = crate::counts::as_i64(
            backend,
            &format!(
                "CASE WHEN d.prestage_state <> {not_done} AND d.cleanup_state <> {cleaned} THEN 1 ELSE 0 END"
            ),
        ),
        n = sum("n"),
        bytes = sum("bytes"),
        tmb = sum("tmb_bytes"),
    );
    (sql, values)
}

/// What the datasets of `site` (`None`: at no site) have in flight, leaving out the dataset
/// with row id `except`: the database's count of what [`repro_core::Usage::of`] counts in
/// a view. One statement over `state_count`, whose rows (one per dataset and state, with
/// the files' bytes) the writes keep: the work grows with the site's datasets, not with
/// its files.
pub(crate) async fn usage<C: ConnectionTrait>(
    db: &C,
    site: crate::Sites<'_>,
    except: Option<i64>,
) -> Result<repro_core::Usage> {
    use repro_core::job::JobState;
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        entity: String,
        state: String,
        holding: i64,
        n: i64,
        bytes: i64,
        tmb_bytes: i64,
    }
    let backend = db.get_database_backend();
    let (sql, values) = usage_sql(backend, site, except);
    let rows = Row::find_by_statement(sea_orm::Statement::from_sql_and_values(
        backend, sql, values,
    ))
    .all(db)
    .await?;
    let mut u = repro_core::Usage::default();
    for r in rows {
        let n = crate::counts::checked("state_count", 0, r.n)?;
        let bytes = crate::counts::checked("state_count", 0, r.bytes)?;
        let tmb = crate::counts::checked("state_count", 0, r.tmb_bytes)?;
        let corrupt = |e: &dyn std::fmt::Display| DbError::CorruptRow {
            table: "state_count",
            id: 0,
            why: format!("{}: {e}", r.entity),
        };
        match r.entity.as_str() {
            "file" => {
                let state: FileState = r.state.parse().map_err(|e| corrupt(&e))?;
                u.add_files(state, r.holding == 1, n, bytes, tmb);
            }
            "reco_job" | "merge_job" => {
                let state: JobState = r.state.parse().map_err(|e| corrupt(&e))?;
                u.add_jobs(r.entity == "reco_job", state, n);
            }
            _ => {}
        }
    }
    Ok(u)
}
