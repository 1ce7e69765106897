//! Writing the core's changes: guarded, set-based, with history.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use repro_core::file::{FileEvent, FileId, FileState, TmbFile};
use repro_core::guard::{Tally, admits, needs_tally};
use repro_core::job::{JobEvent, JobKey, JobState, JobSubject};
use repro_core::outage::Outage;
use repro_core::retry::Retry;
use repro_core::view::{Conflict, GroupEvent, GroupNo, GroupState, IllegalChange, MergedFile};
use repro_core::{Change, DatasetMove, DatasetName};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr,
};

use crate::convert::{self, db_id};
use crate::counts::{Bytes, Deltas};
use crate::entity::{
    dataset_status, file_status, merge_group, mergejob_status, prelude::*, recojob_status,
    transitions,
};
use crate::error::{DbError, Result};
use crate::{ID_CHUNK, INSERT_CHUNK};

/// One history row before it is written.
pub(crate) struct HistoryRow {
    pub dataset_id: i64,
    pub entity: &'static str,
    pub entity_id: i64,
    pub from: String,
    pub to: String,
    pub via: String,
    pub reason: Option<String>,
}

/// Appends history rows, in chunks, and counts them in the hour of `at`.
pub(crate) async fn history(
    txn: &DatabaseTransaction,
    rows: Vec<HistoryRow>,
    actor: &str,
    at: NaiveDateTime,
) -> Result<()> {
    let mut deltas = Deltas::default();
    for r in &rows {
        deltas.history(r.dataset_id, r.entity, &r.via, 1);
    }
    insert_history(txn, rows, actor, at).await?;
    deltas.write(txn, at).await
}

/// Appends history rows, in chunks, leaving the counting to the caller.
async fn insert_history(
    txn: &DatabaseTransaction,
    rows: Vec<HistoryRow>,
    actor: &str,
    at: NaiveDateTime,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<transitions::ActiveModel> = rows
            .by_ref()
            .take(INSERT_CHUNK)
            .map(|r| transitions::ActiveModel {
                dataset_id: Set(r.dataset_id),
                entity: Set(r.entity.into()),
                entity_id: Set(r.entity_id),
                from_state: Set(r.from),
                to_state: Set(r.to),
                via: Set(r.via),
                actor: Set(actor.into()),
                reason: Set(r.reason),
                at: Set(at),
                ..Default::default()
            })
            .collect();
        Transitions::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

fn conflict(what: impl ToString, expected: impl ToString, found: impl ToString) -> DbError {
    DbError::Conflict(Conflict {
        what: what.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    })
}

fn count(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// What a run of file changes has in common, so that it can be one `UPDATE`.
#[derive(PartialEq)]
struct FileMove {
    from: FileState,
    attempts: u32,
    event: FileEvent,
    to: FileState,
}

/// What differs per file within a run: the error, TMB file and retry time it records.
struct FilePayload<'a> {
    id: FileId,
    error: Option<&'a str>,
    tmb: Option<&'a TmbFile>,
    retry: Option<Retry>,
}

/// Files per `UPDATE` when each carries its own values (two bind parameters per column).
const PAYLOAD_CHUNK: usize = 100;

/// Rows per `UPDATE`: fewer when each carries values of its own than when only ids are bound.
const fn chunk_len(with_payload: bool) -> usize {
    if with_payload {
        PAYLOAD_CHUNK
    } else {
        ID_CHUNK
    }
}

struct Writer<'a> {
    txn: &'a DatabaseTransaction,
    ds: &'a dataset_status::Model,
    name: DatasetName,
    now: NaiveDateTime,
    /// History rows to write, in order, all in the same few statements at the end.
    history: Vec<transitions::ActiveModel>,
    /// Merge group numbers to row ids, filled on demand.
    groups: BTreeMap<GroupNo, i64>,
    actor: String,
    /// What the writes so far add to the counts tables.
    deltas: Deltas,
}

/// Writes `changes` in order inside `txn`. Consecutive file changes of the same kind become
/// one `UPDATE ... WHERE id IN (...)` per chunk; consecutive job reservations one insert.
pub(crate) async fn apply(
    txn: &DatabaseTransaction,
    ds: &dataset_status::Model,
    changes: &[Change],
    actor: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let (name, _) = convert::dataset(ds)?;
    let mut w = Writer {
        txn,
        ds,
        name,
        now,
        history: Vec::new(),
        groups: BTreeMap::new(),
        actor: actor.to_owned(),
        deltas: Deltas::of(ds.id, ds.sample.as_deref()),
    };
    let mut i = 0;
    while i < changes.len() {
        match &changes[i] {
            Change::File { .. } => {
                let key = file_move(&changes[i]);
                let mut items = Vec::new();
                while let Some(
                    c @ Change::File {
                        id,
                        error,
                        tmb,
                        retry,
                        ..
                    },
                ) = changes.get(i)
                    && file_move(c) == key
                {
                    items.push(FilePayload {
                        id: *id,
                        error: error.as_deref(),
                        tmb: tmb.as_ref(),
                        retry: *retry,
                    });
                    i += 1;
                }
                if let Some(key) = key {
                    w.files(&key, &items).await?;
                }
            }
            Change::Job { .. } => {
                if let (Some(key), run) = run_of(changes, &mut i, job_move) {
                    w.jobs(&key, &run).await?;
                }
            }
            Change::Group { .. } => {
                if let (Some(key), run) = run_of(changes, &mut i, group_move) {
                    w.groups(&key, &run).await?;
                }
            }
            Change::NewJob { .. } => {
                let mut keys = Vec::new();
                while let Some(Change::NewJob { key }) = changes.get(i) {
                    keys.push(*key);
                    i += 1;
                }
                w.new_jobs(&keys).await?;
            }
            c => {
                w.one(i, c).await?;
                i += 1;
            }
        }
    }
    w.flush().await?;
    w.deltas.write(txn, now).await
}

/// What a move of counted things (files, groups) writes besides what each records: the
/// state, the attempts after the event, the attempt base the event resets or gives one
/// back to, and when. `cols` are the table's state, attempts, attempt base and update-time
/// columns; `event` the attempts after, the new base and whether it gives one back.
fn counted_move<E: sea_orm::EntityTrait, C: ColumnTrait + Copy>(
    q: sea_orm::UpdateMany<E>,
    (state, attempts, base, updated): (C, C, C, C),
    (to, from_attempts): (&str, u32),
    (after, new_base, gives_back): (u32, Option<u32>, bool),
    now: NaiveDateTime,
) -> sea_orm::UpdateMany<E> {
    let q = q
        .col_expr(state, Expr::value(to))
        .col_expr(attempts, Expr::value(count(after)))
        .col_expr(updated, Expr::value(now));
    if let Some(b) = new_base {
        q.col_expr(base, Expr::value(count(b)))
    } else if gives_back {
        q.col_expr(base, given_back(base, from_attempts))
    } else {
        q
    }
}

/// `base` given back one attempt of `attempts` made ([`FileEvent::gives_back`]): one
/// more, but never more than the attempts.
fn given_back(base: impl ColumnTrait, attempts: u32) -> SimpleExpr {
    Expr::case(Expr::col(base).lt(count(attempts)), Expr::col(base).add(1))
        .finally(Expr::col(base))
        .into()
}

/// The run of changes from `i` on that share the first one's `key` (`None` for a change
/// of another kind), and that key; `i` is left after the run.
fn run_of<'c, K: PartialEq>(
    changes: &'c [Change],
    i: &mut usize,
    key: impl Fn(&Change) -> Option<K>,
) -> (Option<K>, Vec<&'c Change>) {
    let mut run = Vec::new();
    let Some(first) = changes.get(*i).and_then(&key) else {
        return (None, run);
    };
    while let Some(c) = changes.get(*i)
        && key(c).as_ref() == Some(&first)
    {
        run.push(c);
        *i += 1;
    }
    (Some(first), run)
}

/// What a run of merge group moves has in common, so that it can be one `UPDATE`.
#[derive(PartialEq)]
struct GroupMove {
    from: GroupState,
    attempts: u32,
    event: GroupEvent,
    to: GroupState,
}

fn group_move(c: &Change) -> Option<GroupMove> {
    match c {
        Change::Group {
            from,
            attempts,
            event,
            to,
            ..
        } => Some(GroupMove {
            from: *from,
            attempts: *attempts,
            event: *event,
            to: *to,
        }),
        _ => None,
    }
}

fn file_move(c: &Change) -> Option<FileMove> {
    match c {
        Change::File {
            from,
            attempts,
            event,
            to,
            ..
        } => Some(FileMove {
            from: *from,
            attempts: *attempts,
            event: *event,
            to: *to,
        }),
        _ => None,
    }
}

/// What a run of job changes has in common.
#[derive(PartialEq)]
struct JobMove {
    reco: bool,
    from: JobState,
    event: JobEvent,
    to: JobState,
}

fn job_move(c: &Change) -> Option<JobMove> {
    match c {
        Change::Job {
            key,
            from,
            event,
            to,
            ..
        } => Some(JobMove {
            reco: matches!(key.subject, JobSubject::Reco(_)),
            from: *from,
            event: *event,
            to: *to,
        }),
        _ => None,
    }
}

/// `CASE id WHEN .. THEN .. ELSE <column> END`: one value per row in one statement.
fn per_row<C, K, V>(id_col: C, col: C, values: Vec<(K, V)>) -> SimpleExpr
where
    C: ColumnTrait + Copy,
    K: Into<sea_orm::Value>,
    V: Into<sea_orm::Value>,
{
    let mut values = values.into_iter();
    let Some((id, v)) = values.next() else {
        return Expr::col(col);
    };
    let mut case = Expr::case(id_col.eq(id), Expr::val(v));
    for (id, v) in values {
        case = case.case(id_col.eq(id), Expr::val(v));
    }
    case.finally(Expr::col(col)).into()
}

/// `dataset_id + 0 = id`: the guard that rows keyed by job name belong to this dataset,
/// written so that no index on `dataset_id` can serve it. Without statistics SQLite's
/// planner takes the `(dataset_id, state)` index over the unique name index for
/// `dataset_id = ? AND name IN (..)`, and walks every job of the dataset for each chunk of
/// names: quadratic in the jobs. With the sum, the names are looked up one by one.
fn of_dataset<C: ColumnTrait>(dataset_col: C, id: i64) -> SimpleExpr {
    Expr::col(dataset_col).add(0).eq(id)
}

/// The retry columns (`retry_at`, `failing_since`) a run of moves writes, keyed by `id`:
/// NULL when its event ends or re-arms the step, each row's own where its failure was
/// scheduled, left as they are otherwise.
fn retry_columns<C: ColumnTrait + Copy>(
    clears: bool,
    (id, at, since): (C, C, C),
    rows: &[(i64, Option<Retry>)],
) -> Vec<(C, SimpleExpr)> {
    if clears {
        let null = || Expr::value(Option::<i64>::None);
        return vec![(at, null()), (since, null())];
    }
    let set: Vec<(i64, Retry)> = rows
        .iter()
        .filter_map(|(row, r)| r.map(|r| (*row, r)))
        .collect();
    if set.is_empty() {
        return Vec::new();
    }
    let ats = set.iter().map(|(row, r)| (*row, r.at)).collect();
    let sinces = set.iter().map(|(row, r)| (*row, r.since)).collect();
    vec![
        (at, per_row(id, at, ats)),
        (since, per_row(id, since, sinces)),
    ]
}

fn errors_in(chunk: &[FilePayload<'_>]) -> bool {
    chunk.iter().any(|p| p.error.is_some())
}

/// What a chunk of group moves records: the groups' row ids, and the errors, merged files
/// and retries of those that have one.
#[derive(Default)]
struct GroupPayload {
    ids: Vec<i64>,
    errors: Vec<(i64, String)>,
    names: Vec<(i64, String)>,
    sizes: Vec<(i64, i64)>,
    retries: Vec<(i64, Option<Retry>)>,
}

/// What a chunk of job moves records: the jobs' names, and the batch ids, exit codes and
/// errors of those that have one.
#[derive(Default)]
struct JobPayload {
    names: Vec<String>,
    batch_ids: Vec<(String, String)>,
    exit_codes: Vec<(String, i32)>,
    errors: Vec<(String, String)>,
}

/// A writer's method that moves one chunk of jobs of one table (both job tables have the
/// same columns): guarded by their state, with what each records and their history.
macro_rules! job_update {
    ($method:ident, $entity:ident, $module:ident, $label:literal) => {
        async fn $method(&mut self, m: &JobMove, p: JobPayload) -> Result<()> {
            use $module::Column as C;
            let mut q = $entity::update_many()
                .col_expr(C::State, Expr::value(m.to.as_str()))
                .col_expr(C::UpdatedAt, Expr::value(self.now));
            match m.event {
                JobEvent::Submit => q = q.col_expr(C::SubmittedAt, Expr::value(self.now)),
                JobEvent::Finish | JobEvent::Fail | JobEvent::Lose => {
                    q = q.col_expr(C::FinishedAt, Expr::value(self.now))
                }
                JobEvent::Start => {}
            }
            let JobPayload {
                names,
                batch_ids,
                exit_codes,
                errors,
            } = p;
            let (has_errors, has_batch_ids) = (!errors.is_empty(), !batch_ids.is_empty());
            if has_batch_ids {
                q = q.col_expr(C::BatchId, per_row(C::Name, C::BatchId, batch_ids));
            }
            if !exit_codes.is_empty() {
                q = q.col_expr(C::ExitCode, per_row(C::Name, C::ExitCode, exit_codes));
            }
            if has_errors {
                q = q.col_expr(C::Error, per_row(C::Name, C::Error, errors));
            }
            let res = q
                .filter(of_dataset(C::DatasetId, self.ds.id))
                .filter(C::Name.is_in(names.iter().cloned()))
                .filter(C::State.eq(m.from.as_str()))
                .exec(self.txn)
                .await?;
            if res.rows_affected != names.len() as u64 {
                let rows: Vec<(String, String)> = $entity::find()
                    .select_only()
                    .column(C::Name)
                    .column(C::State)
                    .filter(of_dataset(C::DatasetId, self.ds.id))
                    .filter(C::Name.is_in(names.iter().cloned()))
                    .into_tuple()
                    .all(self.txn)
                    .await?;
                return Err(self.jobs_conflict(m, &names, &rows));
            }
            // A job row is one attempt: it gets a batch id when submitted and an error
            // only when it ends, so the row holds what the change recorded.
            let reason = if has_errors {
                Some(C::Error)
            } else if has_batch_ids {
                Some(C::BatchId)
            } else {
                None
            };
            let cols = (C::DatasetId, C::Id, C::Name);
            let moved = (m.from.as_str(), m.to.as_str(), m.event.as_str());
            self.job_history($entity, $label, cols, &names, reason, moved)
                .await?;
            let n = names.len() as u64;
            self.deltas.moved(self.ds.id, $label, moved.0, moved.1, n);
            self.deltas.history(self.ds.id, $label, moved.2, n);
            Ok(())
        }
    };
}

impl Writer<'_> {
    /// The history of a run of files that share everything but their id: one row standing
    /// for all of them (`n`, `ids`: migration 13), however many they are.
    async fn file_history(&mut self, ids: &[i64], m: &FileMove) -> Result<()> {
        let moved = (m.from.as_str(), m.to.as_str(), m.event.as_str());
        self.bulk_history("file", ids, Vec::new(), moved).await
    }

    /// One history row for the same move of every row of `entity` in `ids` (all of this
    /// dataset: the guarded update that moved them said so), `reasons` (when not empty)
    /// being each one's reason, in the order of `ids`, which is then ascending.
    async fn bulk_history(
        &mut self,
        entity: &'static str,
        ids: &[i64],
        reasons: Vec<Option<String>>,
        (from, to, via): (&str, &str, &str),
    ) -> Result<()> {
        let Some(&first) = ids.iter().min() else {
            return Ok(());
        };
        let n = ids.len();
        // One reason for all when they share it; else each its own, as a JSON list.
        let (reason, listed) = match reasons.split_first() {
            None => (None, None),
            Some((r, rest)) if rest.iter().all(|x| x == r) => (r.clone(), None),
            Some(_) => (
                None,
                Some(serde_json::to_string(&reasons).map_err(|e| {
                    DbError::Db(DbErr::Custom(format!("cannot write reasons: {e}")))
                })?),
            ),
        };
        let row = transitions::ActiveModel {
            dataset_id: Set(self.ds.id),
            entity: Set(entity.into()),
            entity_id: Set(first),
            from_state: Set(from.into()),
            to_state: Set(to.into()),
            via: Set(via.into()),
            actor: Set(self.actor.clone()),
            reason: Set(reason),
            at: Set(self.now),
            n: Set(n as i64),
            ids: Set((n > 1).then(|| crate::idset::encode(ids))),
            reasons: Set(listed),
            ..Default::default()
        };
        // After the rows buffered before it, which moved before these did.
        self.history.push(row);
        Ok(())
    }

    /// Writes the buffered history rows, in their order, a chunk per statement.
    async fn flush(&mut self) -> Result<()> {
        let mut rows = std::mem::take(&mut self.history).into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
            Transitions::insert_many(chunk)
                .exec_without_returning(self.txn)
                .await?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        entity: &'static str,
        entity_id: i64,
        from: impl ToString,
        to: impl ToString,
        via: impl ToString,
        reason: Option<String>,
    ) {
        let via = via.to_string();
        self.deltas.history(self.ds.id, entity, &via, 1);
        // In one insert with bulk rows, a column a row leaves unset is NULL, not its
        // default: `n` is set; `ids` and `reasons` are NULL for a row of its own.
        self.history.push(transitions::ActiveModel {
            dataset_id: Set(self.ds.id),
            entity: Set(entity.into()),
            entity_id: Set(entity_id),
            from_state: Set(from.to_string()),
            to_state: Set(to.to_string()),
            via: Set(via),
            actor: Set(self.actor.clone()),
            reason: Set(reason),
            at: Set(self.now),
            n: Set(1),
            ..Default::default()
        });
    }

    async fn files(&mut self, m: &FileMove, items: &[FilePayload<'_>]) -> Result<()> {
        use file_status::Column as C;
        let with_payload = items
            .iter()
            .any(|p| p.error.is_some() || p.tmb.is_some() || p.retry.is_some());
        let chunk_len = chunk_len(with_payload);
        // What the files hold, for the counts of their states: read before any of them
        // moves (if one is not where expected, an update below finds it and nothing is
        // kept), and again after if they got TMB files. A statement per 10,000 files, not
        // per chunk of the updates.
        let all = items
            .iter()
            .map(|p| db_id(p.id))
            .collect::<Result<Vec<i64>>>()?;
        let before = self.bytes_of(&all).await?;
        let mut with_tmb = false;
        for chunk in items.chunks(chunk_len) {
            let ids = chunk
                .iter()
                .map(|p| db_id(p.id))
                .collect::<Result<Vec<i64>>>()?;
            let (q, tmbs) = self.file_update(m, &ids, chunk)?;
            with_tmb |= tmbs;
            let res = q
                .filter(C::DatasetId.eq(self.ds.id))
                .filter(C::Id.is_in(ids.iter().copied()))
                .filter(C::State.eq(m.from.as_str()))
                .filter(C::Attempts.eq(count(m.attempts)))
                .exec(self.txn)
                .await?;
            if res.rows_affected != chunk.len() as u64 {
                return Err(self.file_conflict(&ids, m).await);
            }
            self.file_chunk_history(&ids, chunk, m).await?;
        }
        let after = if with_tmb {
            self.bytes_of(&all).await?
        } else {
            before
        };
        let (from, to) = (m.from.as_str(), m.to.as_str());
        let n = items.len() as u64;
        self.deltas
            .moved_holding(self.ds.id, "file", (from, to), n, before, after);
        Ok(())
    }

    /// The update that moves the files `ids` (of `chunk`) by `m`, with each one's error,
    /// retry and TMB file; and whether any got a TMB file.
    fn file_update(
        &self,
        m: &FileMove,
        ids: &[i64],
        chunk: &[FilePayload<'_>],
    ) -> Result<(sea_orm::UpdateMany<file_status::Entity>, bool)> {
        use file_status::Column as C;
        let e = &m.event;
        let mut q = counted_move(
            FileStatus::update_many(),
            (C::State, C::Attempts, C::AttemptBase, C::UpdatedAt),
            (m.to.as_str(), m.attempts),
            (
                e.attempts_after(m.attempts),
                e.new_base(m.attempts),
                e.gives_back(),
            ),
            self.now,
        );
        let errors: Vec<(i64, String)> = ids
            .iter()
            .zip(chunk)
            .filter_map(|(id, p)| p.error.map(|e| (*id, e.to_owned())))
            .collect();
        if !errors.is_empty() {
            q = q.col_expr(C::LastError, per_row(C::Id, C::LastError, errors));
        }
        let retries: Vec<(i64, Option<Retry>)> = ids
            .iter()
            .zip(chunk)
            .map(|(id, p)| (*id, p.retry))
            .collect();
        let cols = (C::Id, C::RetryAt, C::FailingSince);
        for (col, value) in retry_columns(m.event.clears_retry(), cols, &retries) {
            q = q.col_expr(col, value);
        }
        let tmbs: Vec<(i64, &TmbFile)> = ids
            .iter()
            .zip(chunk)
            .filter_map(|(id, p)| p.tmb.map(|t| (*id, t)))
            .collect();
        if !tmbs.is_empty() {
            let sizes = tmbs
                .iter()
                .map(|(id, t)| {
                    i64::try_from(t.size)
                        .map(|s| (*id, s))
                        .map_err(|_| DbError::OutOfRange {
                            what: "TMB size",
                            value: t.size.to_string(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let paths = tmbs.iter().map(|(id, t)| (*id, t.path.clone())).collect();
            q = q
                .col_expr(C::TmbPath, per_row(C::Id, C::TmbPath, paths))
                .col_expr(C::TmbSize, per_row(C::Id, C::TmbSize, sizes));
        }
        Ok((q, !tmbs.is_empty()))
    }

    /// The history of one chunk of moved files: a row per file when some carry an error,
    /// otherwise the rows [`Writer::file_history`] makes.
    async fn file_chunk_history(
        &mut self,
        ids: &[i64],
        chunk: &[FilePayload<'_>],
        m: &FileMove,
    ) -> Result<()> {
        if errors_in(chunk) {
            for (id, p) in ids.iter().zip(chunk) {
                self.record(
                    "file",
                    *id,
                    m.from,
                    m.to,
                    m.event,
                    p.error.map(str::to_owned),
                );
            }
        } else {
            self.file_history(ids, m).await?;
            let via = m.event.as_str();
            self.deltas
                .history(self.ds.id, "file", via, chunk.len() as u64);
        }
        Ok(())
    }

    /// The sizes of the raw files `ids` and of their TMB files, summed by the database:
    /// a statement per 10,000 that reads the rows by their key.
    async fn bytes_of(&self, ids: &[i64]) -> Result<Bytes> {
        let mut total = Bytes::default();
        for chunk in ids.chunks(ID_CHUNK) {
            let b = self.bytes_of_chunk(chunk).await?;
            total.raw = total.raw.saturating_add(b.raw);
            total.tmb = total.tmb.saturating_add(b.tmb);
        }
        Ok(total)
    }

    async fn bytes_of_chunk(&self, ids: &[i64]) -> Result<Bytes> {
        use file_status::Column as C;
        let backend = sea_orm::ConnectionTrait::get_database_backend(self.txn);
        let sum = |col: &str| {
            let quoted = match backend {
                sea_orm::DbBackend::MySql => format!("`{col}`"),
                _ => format!("\"{col}\""),
            };
            Expr::cust(crate::counts::as_i64(
                backend,
                &format!("COALESCE(SUM({quoted}), 0)"),
            ))
        };
        let (raw, tmb): (i64, i64) = FileStatus::find()
            .select_only()
            .column_as(sum("size"), "raw")
            .column_as(sum("tmb_size"), "tmb")
            // By key alone: the guarded update beside it checks that they are this
            // dataset's (a `dataset_id` filter here made SQLite walk the dataset's rows
            // through its `(dataset_id, state)` index for each chunk).
            .filter(C::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .one(self.txn)
            .await?
            .unwrap_or((0, 0));
        Ok(Bytes { raw, tmb })
    }

    /// Names the first file of a failed guarded update that is not where it was expected.
    async fn file_conflict(&self, ids: &[i64], m: &FileMove) -> DbError {
        use file_status::Column as C;
        let found = FileStatus::find()
            .filter(C::DatasetId.eq(self.ds.id))
            .filter(C::Id.is_in(ids.iter().copied()))
            .filter(
                C::State
                    .ne(m.from.as_str())
                    .or(C::Attempts.ne(count(m.attempts))),
            )
            .one(self.txn)
            .await;
        match found {
            Ok(Some(row)) => conflict(
                format!("raw file {} ({})", row.lfn, row.id),
                format!("{} after {} attempts", m.from, m.attempts),
                format!("{} after {} attempts", row.state, row.attempts),
            ),
            Ok(None) => conflict(
                format!("{} raw files of {}", ids.len(), self.name),
                m.from,
                "some missing",
            ),
            Err(e) => DbError::from(e),
        }
    }

    async fn group_id(&mut self, no: GroupNo) -> Result<i64> {
        if let Some(id) = self.groups.get(&no) {
            return Ok(*id);
        }
        use merge_group::Column as C;
        let rows: Vec<(i64, i32)> = MergeGroup::find()
            .select_only()
            .column(C::Id)
            .column(C::GroupNo)
            .filter(C::DatasetId.eq(self.ds.id))
            .into_tuple()
            .all(self.txn)
            .await?;
        for (id, n) in rows {
            if let Ok(n) = u32::try_from(n) {
                self.groups.insert(GroupNo(n), id);
            }
        }
        self.groups.get(&no).copied().ok_or_else(|| {
            conflict(
                format!("merge group {no} of {}", self.name),
                "present",
                "absent",
            )
        })
    }

    /// Fails unless every raw file of `ids` belongs to this dataset.
    async fn files_here(&self, ids: &[i64]) -> Result<()> {
        let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
        let distinct: Vec<i64> = distinct.into_iter().collect();
        for chunk in distinct.chunks(ID_CHUNK) {
            let here = FileStatus::find()
                .filter(of_dataset(file_status::Column::DatasetId, self.ds.id))
                .filter(file_status::Column::Id.is_in(chunk.iter().copied()))
                .count(self.txn)
                .await?;
            if here != chunk.len() as u64 {
                return Err(conflict(
                    format!("jobs of {}", self.name),
                    "raw files of this dataset",
                    "a raw file of another dataset, or none",
                ));
            }
        }
        Ok(())
    }

    async fn new_jobs(&mut self, keys: &[JobKey]) -> Result<()> {
        let reco_files = keys
            .iter()
            .filter_map(|k| match k.subject {
                JobSubject::Reco(f) => Some(db_id(f)),
                JobSubject::Merge(_) => None,
            })
            .collect::<Result<Vec<i64>>>()?;
        self.files_here(&reco_files).await?;
        let (reco, merge) = self.job_rows(keys).await?;
        let dup = |e: DbErr| {
            if is_unique_violation(&e) {
                conflict(
                    "job reservation",
                    "no job under that name",
                    "one reserved already",
                )
            } else {
                DbError::from(e)
            }
        };
        let mut reco = reco.into_iter().peekable();
        while reco.peek().is_some() {
            let chunk: Vec<_> = reco.by_ref().take(INSERT_CHUNK).collect();
            RecojobStatus::insert_many(chunk)
                .exec_without_returning(self.txn)
                .await
                .map_err(dup)?;
        }
        let mut merge = merge.into_iter().peekable();
        while merge.peek().is_some() {
            let chunk: Vec<_> = merge.by_ref().take(INSERT_CHUNK).collect();
            MergejobStatus::insert_many(chunk)
                .exec_without_returning(self.txn)
                .await
                .map_err(dup)?;
        }
        let reserved = JobState::Reserved.as_str();
        let (n_reco, n_merge) = (
            reco_files.len() as u64,
            (keys.len() - reco_files.len()) as u64,
        );
        self.deltas
            .created(self.ds.id, "reco_job", reserved, n_reco, Bytes::default());
        self.deltas
            .created(self.ds.id, "merge_job", reserved, n_merge, Bytes::default());
        self.deltas
            .history(self.ds.id, "reco_job", "reserve", n_reco);
        self.deltas
            .history(self.ds.id, "merge_job", "reserve", n_merge);
        // Job history rows name the job by its reservation.
        self.reservation_history(keys).await
    }

    /// The rows that reserve the jobs `keys`, reco and merge.
    async fn job_rows(
        &mut self,
        keys: &[JobKey],
    ) -> Result<(
        Vec<recojob_status::ActiveModel>,
        Vec<mergejob_status::ActiveModel>,
    )> {
        let mut reco = Vec::new();
        let mut merge = Vec::new();
        for key in keys {
            let name = key.name(&self.name);
            match key.subject {
                JobSubject::Reco(file) => reco.push(recojob_status::ActiveModel {
                    dataset_id: Set(self.ds.id),
                    file_id: Set(db_id(file)?),
                    attempt: Set(count(key.attempt)),
                    name: Set(name),
                    state: Set(JobState::Reserved.as_str().into()),
                    created_at: Set(self.now),
                    updated_at: Set(self.now),
                    ..Default::default()
                }),
                JobSubject::Merge(no) => {
                    let group_id = self.group_id(no).await?;
                    merge.push(mergejob_status::ActiveModel {
                        dataset_id: Set(self.ds.id),
                        group_id: Set(group_id),
                        attempt: Set(count(key.attempt)),
                        name: Set(name),
                        state: Set(JobState::Reserved.as_str().into()),
                        created_at: Set(self.now),
                        updated_at: Set(self.now),
                        ..Default::default()
                    });
                }
            }
        }
        Ok((reco, merge))
    }

    /// History rows for the reservations `keys`, just inserted; the reason names the job.
    async fn reservation_history(&mut self, keys: &[JobKey]) -> Result<()> {
        let (reco, merge): (Vec<&JobKey>, Vec<&JobKey>) = keys
            .iter()
            .partition(|k| matches!(k.subject, JobSubject::Reco(_)));
        let names = |ks: Vec<&JobKey>| ks.iter().map(|k| k.name(&self.name)).collect::<Vec<_>>();
        let moved = ("-", JobState::Reserved.as_str(), "reserve");
        let (reco, merge) = (names(reco), names(merge));
        for chunk in reco.chunks(ID_CHUNK) {
            use recojob_status::Column as C;
            let cols = (C::DatasetId, C::Id, C::Name);
            self.job_history(RecojobStatus, "reco_job", cols, chunk, Some(C::Name), moved)
                .await?;
        }
        for chunk in merge.chunks(ID_CHUNK) {
            use mergejob_status::Column as C;
            let cols = (C::DatasetId, C::Id, C::Name);
            self.job_history(
                MergejobStatus,
                "merge_job",
                cols,
                chunk,
                Some(C::Name),
                moved,
            )
            .await?;
        }
        Ok(())
    }

    /// History for the jobs `names` of the table `E` (named by value, `_table`): one row
    /// for them all ([`Writer::bulk_history`]), with, when `reason` is given, the value of
    /// that column (a name, a batch id, an error) as each job's reason.
    async fn job_history<E, C>(
        &mut self,
        _table: E,
        label: &'static str,
        (dataset_col, id_col, name_col): (C, C, C),
        names: &[String],
        reason: Option<C>,
        (from, to, via): (&str, &str, &str),
    ) -> Result<()>
    where
        E: EntityTrait<Column = C>,
        C: ColumnTrait,
    {
        let mut q = E::find().select_only().column(id_col);
        if let Some(c) = reason {
            q = q.column(c);
        }
        let q = q
            .filter(of_dataset(dataset_col, self.ds.id))
            .filter(name_col.is_in(names.iter().cloned()))
            .order_by_asc(id_col);
        let rows: Vec<(i64, Option<String>)> = match reason {
            Some(_) => q.into_tuple().all(self.txn).await?,
            None => {
                let ids: Vec<i64> = q.into_tuple().all(self.txn).await?;
                ids.into_iter().map(|id| (id, None)).collect()
            }
        };
        let (ids, reasons): (Vec<i64>, Vec<Option<String>>) = rows.into_iter().unzip();
        self.bulk_history(label, &ids, reasons, (from, to, via))
            .await
    }

    /// Files and groups per state as the transaction sees them now.
    async fn tally(&self) -> Result<Tally> {
        use file_status::Column as F;
        use merge_group::Column as G;
        let files = self
            .per_state::<FileStatus, FileState>(F::State, F::Id, F::DatasetId, "file_status")
            .await?;
        let groups = self
            .per_state::<MergeGroup, GroupState>(G::State, G::Id, G::DatasetId, "merge_group")
            .await?;
        let ungrouped = FileStatus::find()
            .filter(F::DatasetId.eq(self.ds.id))
            .filter(F::State.eq(FileState::Reconstructed.as_str()))
            .filter(F::MergeGroup.is_null())
            .count(self.txn)
            .await?;
        Ok(Tally {
            files,
            groups,
            ungrouped,
        })
    }

    /// Rows of this dataset in `E` per stored state word, the words parsed as `S`.
    async fn per_state<E, S>(
        &self,
        state: E::Column,
        id: E::Column,
        dataset: E::Column,
        table: &'static str,
    ) -> Result<BTreeMap<S, u64>>
    where
        E: EntityTrait,
        S: std::str::FromStr + Ord,
        S::Err: std::fmt::Display,
    {
        let rows: Vec<(String, i64)> = E::find()
            .select_only()
            .column(state)
            .column_as(id.count(), "n")
            .filter(dataset.eq(self.ds.id))
            .group_by(state)
            .into_tuple()
            .all(self.txn)
            .await?;
        rows.into_iter()
            .map(|(word, n)| {
                let s = word
                    .parse::<S>()
                    .map_err(|e| convert::corrupt(table, self.ds.id, e))?;
                Ok((s, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn one(&mut self, index: usize, change: &Change) -> Result<()> {
        match change {
            Change::Dataset(m) => self.move_dataset(index, change, m).await?,
            Change::NewGroup { no, files, bytes } => self.new_group(*no, files, *bytes).await?,
            Change::Outage(outages) => {
                use dataset_status::Column as C;
                DatasetStatus::update_many()
                    .col_expr(C::Outages, Expr::value(Outage::store(outages)))
                    .filter(C::Id.eq(self.ds.id))
                    .exec(self.txn)
                    .await?;
            }
            // Batched by `apply`, which never hands them here.
            Change::File { .. }
            | Change::Group { .. }
            | Change::NewJob { .. }
            | Change::Job { .. } => {}
        }
        Ok(())
    }

    /// The dataset's move `m` (`change`, the `index`-th of its batch): guarded by the
    /// columns it expects, and by what its files and groups then hold when it closes a
    /// phase.
    async fn move_dataset(&mut self, index: usize, change: &Change, m: &DatasetMove) -> Result<()> {
        let (from, via, to) = (m.from(), m.via(), m.to());
        use dataset_status::Column as C;
        let (f, t) = (from.columns(), to.columns());
        let mut update = DatasetStatus::update_many()
            .col_expr(C::UpdatedAt, Expr::value(self.now))
            .filter(C::Id.eq(self.ds.id));
        for ((column, to), (_, from)) in
            dataset_status::state_words(t).zip(dataset_status::state_words(f))
        {
            update = update
                .col_expr(column, Expr::value(to))
                .filter(column.eq(from));
        }
        let res = update.exec(self.txn).await?;
        if res.rows_affected != 1 {
            let now = DatasetStatus::find_by_id(self.ds.id).one(self.txn).await?;
            let found = match now.as_ref().map(convert::dataset) {
                Some(Ok((_, s))) => s.columns().to_string(),
                Some(Err(e)) => e.to_string(),
                None => "deleted".into(),
            };
            return Err(conflict(format!("dataset {}", self.name), f, found));
        }
        // The row was where the change expected; now the files and groups behind a
        // closing transition, as the earlier changes of this batch left them.
        if needs_tally(via) {
            admits(from.state.kind(), via, &self.tally().await?).map_err(|u| {
                DbError::Illegal(IllegalChange {
                    index,
                    change: change.to_string(),
                    rule: u.into(),
                })
            })?;
        }
        self.record(
            "dataset",
            self.ds.id,
            f,
            t,
            via,
            m.reason().map(str::to_owned),
        );
        Ok(())
    }

    /// A new merge group `no` of `files` (`bytes` of TMB files), each file expected
    /// reconstructed and ungrouped.
    async fn new_group(&mut self, no: GroupNo, files: &[FileId], bytes: u64) -> Result<()> {
        let inserted = MergeGroup::insert(merge_group::ActiveModel {
            dataset_id: Set(self.ds.id),
            group_no: Set(count(no.0)),
            state: Set(GroupState::Merging.as_str().into()),
            attempts: Set(0),
            attempt_base: Set(0),
            n_files: Set(count(files.len() as u32)),
            bytes: Set(i64::try_from(bytes).unwrap_or(i64::MAX)),
            updated_at: Set(self.now),
            // merged_file, merged_size and last_error start NULL.
            ..Default::default()
        })
        .exec(self.txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                conflict(
                    format!("merge group {no} of {}", self.name),
                    "absent",
                    "present",
                )
            } else {
                DbError::from(e)
            }
        })?;
        self.groups.insert(no, inserted.last_insert_id);
        use file_status::Column as C;
        let db_ids = files
            .iter()
            .map(|id| db_id(*id))
            .collect::<Result<Vec<i64>>>()?;
        for chunk in db_ids.chunks(ID_CHUNK) {
            let res = FileStatus::update_many()
                .col_expr(C::MergeGroup, Expr::value(count(no.0)))
                .col_expr(C::UpdatedAt, Expr::value(self.now))
                .filter(C::DatasetId.eq(self.ds.id))
                .filter(C::Id.is_in(chunk.iter().copied()))
                .filter(C::State.eq(FileState::Reconstructed.as_str()))
                .filter(C::MergeGroup.is_null())
                .exec(self.txn)
                .await?;
            if res.rows_affected != chunk.len() as u64 {
                return Err(conflict(
                    format!("files of merge group {no} of {}", self.name),
                    "reconstructed, ungrouped",
                    "some moved or grouped already",
                ));
            }
        }
        let merging = GroupState::Merging.as_str();
        self.deltas
            .created(self.ds.id, "group", merging, 1, Bytes::default());
        self.record(
            "group",
            inserted.last_insert_id,
            "-",
            GroupState::Merging,
            "form",
            Some(format!("{} files", files.len())),
        );
        Ok(())
    }

    /// A run of alike merge group moves: one guarded `UPDATE` per chunk, each group with
    /// its own error and merged file, and a history row each.
    async fn groups(&mut self, m: &GroupMove, run: &[&Change]) -> Result<()> {
        use merge_group::Column as C;
        let with_payload = run.iter().any(|c| {
            matches!(c, Change::Group { error, output, retry, .. }
                if error.is_some() || output.is_some() || retry.is_some())
        });
        let chunk_len = chunk_len(with_payload);
        for chunk in run.chunks(chunk_len) {
            let GroupPayload {
                ids,
                errors,
                names,
                sizes,
                retries,
            } = self.group_payload(chunk).await?;
            let e = &m.event;
            let mut q = counted_move(
                MergeGroup::update_many(),
                (C::State, C::Attempts, C::AttemptBase, C::UpdatedAt),
                (m.to.as_str(), m.attempts),
                (
                    e.attempts_after(m.attempts),
                    e.new_base(m.attempts),
                    e.gives_back(),
                ),
                self.now,
            );
            if !errors.is_empty() {
                q = q.col_expr(C::LastError, per_row(C::Id, C::LastError, errors));
            }
            if !names.is_empty() {
                q = q
                    .col_expr(C::MergedFile, per_row(C::Id, C::MergedFile, names))
                    .col_expr(C::MergedSize, per_row(C::Id, C::MergedSize, sizes));
            }
            let cols = (C::Id, C::RetryAt, C::FailingSince);
            for (col, value) in retry_columns(m.event.clears_retry(), cols, &retries) {
                q = q.col_expr(col, value);
            }
            // The ids are this dataset's own (`group_id`); a filter on `dataset_id` would let
            // SQLite walk the dataset's groups through its index for every chunk.
            let res = q
                .filter(C::Id.is_in(ids.iter().copied()))
                .filter(C::State.eq(m.from.as_str()))
                .filter(C::Attempts.eq(count(m.attempts)))
                .exec(self.txn)
                .await?;
            if res.rows_affected != ids.len() as u64 {
                return Err(self.group_conflict(&ids, m).await);
            }
            let (f, t) = (m.from.as_str(), m.to.as_str());
            self.deltas
                .moved(self.ds.id, "group", f, t, ids.len() as u64);
            for (id, c) in ids.iter().zip(chunk) {
                let error = match c {
                    Change::Group { error, .. } => error.clone(),
                    _ => None,
                };
                self.record("group", *id, m.from, m.to, m.event, error);
            }
        }
        Ok(())
    }

    /// The row ids of the groups `chunk` moves, and what each records.
    async fn group_payload(&mut self, chunk: &[&Change]) -> Result<GroupPayload> {
        let mut p = GroupPayload::default();
        for c in chunk {
            let Change::Group {
                no,
                error,
                output,
                retry,
                ..
            } = c
            else {
                continue;
            };
            let id = self.group_id(*no).await?;
            p.ids.push(id);
            p.retries.push((id, *retry));
            if let Some(e) = error {
                p.errors.push((id, e.clone()));
            }
            if let Some(MergedFile { name, size }) = output {
                p.names.push((id, name.clone()));
                p.sizes.push((id, i64::try_from(*size).unwrap_or(i64::MAX)));
            }
        }
        Ok(p)
    }

    /// The conflict that kept a run of group moves from writing: the first group of `ids`
    /// that is not where the run expected it.
    async fn group_conflict(&self, ids: &[i64], m: &GroupMove) -> DbError {
        use merge_group::Column as C;
        let expected = format!("{} after {} attempts", m.from, m.attempts);
        let found = MergeGroup::find()
            .filter(C::Id.is_in(ids.iter().copied()))
            .filter(
                C::State
                    .ne(m.from.as_str())
                    .or(C::Attempts.ne(count(m.attempts))),
            )
            .one(self.txn)
            .await;
        match found {
            Ok(Some(row)) => conflict(
                format!("merge group {} of {}", row.group_no, self.name),
                expected,
                format!("{} after {} attempts", row.state, row.attempts),
            ),
            Ok(None) => conflict(
                format!("{} merge groups of {}", ids.len(), self.name),
                expected,
                "some deleted",
            ),
            Err(e) => DbError::from(e),
        }
    }

    async fn jobs(&mut self, m: &JobMove, run: &[&Change]) -> Result<()> {
        let with_payload = run.iter().any(|c| {
            matches!(c, Change::Job { batch_id, exit_code, error, .. }
                if batch_id.is_some() || exit_code.is_some() || error.is_some())
        });
        let chunk_len = chunk_len(with_payload);
        for chunk in run.chunks(chunk_len) {
            let p = self.job_payload(chunk);
            if m.reco {
                self.reco_jobs(m, p).await?;
            } else {
                self.merge_jobs(m, p).await?;
            }
        }
        Ok(())
    }

    /// The names of the jobs `chunk` moves, and what each records.
    fn job_payload(&self, chunk: &[&Change]) -> JobPayload {
        let mut p = JobPayload::default();
        for c in chunk {
            if let Change::Job {
                key,
                batch_id,
                exit_code,
                error,
                ..
            } = c
            {
                let name = key.name(&self.name);
                if let Some(b) = batch_id {
                    p.batch_ids.push((name.clone(), b.clone()));
                }
                if let Some(e) = exit_code {
                    p.exit_codes.push((name.clone(), *e));
                }
                if let Some(e) = error {
                    p.errors.push((name.clone(), e.clone()));
                }
                p.names.push(name);
            }
        }
        p
    }

    /// The conflict of a job move that did not find every job where expected: the first
    /// job of `rows` (name, state) that is elsewhere, or the count when some are missing.
    fn jobs_conflict(&self, m: &JobMove, names: &[String], rows: &[(String, String)]) -> DbError {
        match rows.iter().find(|(_, st)| st != m.to.as_str()) {
            Some((name, st)) => conflict(format!("job {name}"), m.from, st),
            None => conflict(
                format!("{} jobs of {}", names.len(), self.name),
                m.from,
                "some missing",
            ),
        }
    }

    job_update!(reco_jobs, RecojobStatus, recojob_status, "reco_job");
    job_update!(merge_jobs, MergejobStatus, mergejob_status, "merge_job");
}
