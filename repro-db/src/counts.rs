//! The counts tables (`state_count`, `hourly_count`): what each write adds to them, and
//! the reads the status page and `/metrics` make of them.
//!
//! A write transaction gathers its moves in [`Deltas`] and adds them before it commits, in
//! at most two statements, to rows of its own dataset only: writers of different datasets
//! never touch the same count row. The totals are then sums over one small row per
//! (dataset, entity, state) instead of a `GROUP BY` over every file and history row.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::error::{DbError, Result};

/// Rows per upsert statement (four or five bind parameters each).
const UPSERT_CHUNK: usize = 500;

/// The hour a count of a move at `at` goes to: `YYYY-MM-DD HH:00`, UTC.
pub(crate) fn hour(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:00").to_string()
}

/// Bytes of a set of raw files: their sizes, and their TMB files' sizes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes {
    pub(crate) raw: i64,
    pub(crate) tmb: i64,
}

/// What one state of one entity of a dataset gains (or loses, negative).
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    n: i64,
    bytes: Bytes,
}

/// What one write transaction adds to the counts.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    /// Per (dataset, entity, state): rows that arrived minus rows that left, and their
    /// bytes (files only).
    states: BTreeMap<(i64, &'static str, String), Delta>,
    /// Per (dataset, entity, via): history rows written.
    hourly: BTreeMap<(i64, &'static str, String), i64>,
    /// The sample of each dataset whose states moved, stored with its counts.
    samples: BTreeMap<i64, Option<String>>,
}

impl Deltas {
    /// Deltas for `dataset`, which is in `sample`.
    pub(crate) fn of(dataset: i64, sample: Option<&str>) -> Self {
        let mut d = Deltas::default();
        d.samples.insert(dataset, sample.map(str::to_owned));
        d
    }

    fn add(&mut self, dataset: i64, entity: &'static str, state: &str, n: i64, bytes: Bytes) {
        let d = self
            .states
            .entry((dataset, entity, state.to_owned()))
            .or_default();
        d.n += n;
        d.bytes.raw += bytes.raw;
        d.bytes.tmb += bytes.tmb;
    }

    /// `n` rows of `entity` (not files) moved from `from` to `to`.
    pub(crate) fn moved(
        &mut self,
        dataset: i64,
        entity: &'static str,
        from: &str,
        to: &str,
        n: u64,
    ) {
        self.moved_holding(
            dataset,
            entity,
            (from, to),
            n,
            Bytes::default(),
            Bytes::default(),
        );
    }

    /// `n` rows moved from `from`, where they held `before`, to `to`, where they hold
    /// `after` (a reco success gives a file its TMB file).
    pub(crate) fn moved_holding(
        &mut self,
        dataset: i64,
        entity: &'static str,
        (from, to): (&str, &str),
        n: u64,
        before: Bytes,
        after: Bytes,
    ) {
        if (from == to && before == after) || n == 0 {
            return;
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let neg = Bytes {
            raw: -before.raw,
            tmb: -before.tmb,
        };
        self.add(dataset, entity, from, -n, neg);
        self.add(dataset, entity, to, n, after);
    }

    /// `n` rows of `entity` were created in `state`, holding `bytes`.
    pub(crate) fn created(
        &mut self,
        dataset: i64,
        entity: &'static str,
        state: &str,
        n: u64,
        bytes: Bytes,
    ) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.add(dataset, entity, state, n, bytes);
    }

    /// `n` history rows of `entity` moved by `via` were written.
    pub(crate) fn history(&mut self, dataset: i64, entity: &'static str, via: &str, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        *self
            .hourly
            .entry((dataset, entity, via.to_owned()))
            .or_default() += n;
    }

    /// Adds everything gathered to the tables, the history rows to the hour of `at`.
    pub(crate) async fn write<C: ConnectionTrait>(self, db: &C, at: NaiveDateTime) -> Result<()> {
        let backend = db.get_database_backend();
        let samples = self.samples;
        let states: Vec<[Value; 7]> = self
            .states
            .into_iter()
            .filter(|(_, d)| d.n != 0 || d.bytes != Bytes::default())
            .map(|((d, e, s), delta)| {
                let sample = samples.get(&d).cloned().flatten();
                [
                    d.into(),
                    e.into(),
                    s.into(),
                    delta.n.into(),
                    delta.bytes.raw.into(),
                    delta.bytes.tmb.into(),
                    sample.into(),
                ]
            })
            .collect();
        for chunk in states.chunks(UPSERT_CHUNK) {
            let key = ["dataset_id", "entity", "state"];
            let add = ["n", "bytes", "tmb_bytes"];
            let sql = upsert(backend, "state_count", &key, &add, &["sample"], chunk.len());
            let values: Vec<Value> = chunk.iter().flat_map(|r| r.iter().cloned()).collect();
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        let h = hour(at);
        let hourly: Vec<[Value; 5]> = self
            .hourly
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|((d, e, v), n)| [d.into(), e.into(), v.into(), h.clone().into(), n.into()])
            .collect();
        for chunk in hourly.chunks(UPSERT_CHUNK) {
            let key = ["dataset_id", "entity", "via", "hour"];
            let sql = upsert(backend, "hourly_count", &key, &["n"], &[], chunk.len());
            let values: Vec<Value> = chunk.iter().flat_map(|r| r.iter().cloned()).collect();
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }
}

/// `INSERT INTO table (key..., add..., keep...) VALUES (...), ...`, adding the `add`
/// columns to those of a row whose key exists instead (and leaving its `keep` columns as
/// they are).
fn upsert(
    backend: DbBackend,
    table: &str,
    key: &[&str],
    add: &[&str],
    keep: &[&str],
    rows: usize,
) -> String {
    let width = key.len() + add.len() + keep.len();
    let cols: Vec<&str> = key.iter().chain(add).chain(keep).copied().collect();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut i = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            i += 1;
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${i}")),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    match backend {
        DbBackend::MySql => {
            let sums: Vec<String> = add
                .iter()
                .map(|c| format!("{c} = {c} + VALUES({c})"))
                .collect();
            sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", sums.join(", ")));
        }
        _ => {
            let sums: Vec<String> = add
                .iter()
                .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                sums.join(", ")
            ));
        }
    }
    sql
}

/// A count read back: negative only if the table was changed behind the writers' backs.
pub(crate) fn checked(table: &'static str, dataset: i64, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| DbError::CorruptRow {
        table,
        id: dataset,
        why: format!("dataset {dataset} has a count of {n}"),
    })
}

/// The SQL expression `expr` (a `SUM` or `COUNT`) as a 64-bit integer in every dialect:
/// PostgreSQL sums to `NUMERIC` and MariaDB/MySQL to `DECIMAL`, which do not decode as one.
pub(crate) fn as_i64(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST({expr} AS BIGINT)"),
        DbBackend::MySql => format!("CAST({expr} AS SIGNED)"),
        _ => expr.to_owned(),
    }
}

/// Counts keyed by dataset, entity (and sample) and state or hour, as [`drift`] compares.
type Keyed = BTreeMap<(i64, String, String), i64>;

/// The per-state counts `selects` read (columns `dataset_id, entity, state, n, sample,
/// bytes, tmb_bytes`): each count, and for files their bytes under a key of their own; a
/// count kept under another sample than the dataset's is a difference too.
async fn state_counts(db: &sea_orm::DatabaseTransaction, selects: Vec<String>) -> Result<Keyed> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct StateRow {
        dataset_id: i64,
        entity: String,
        state: String,
        n: i64,
        sample: Option<String>,
        bytes: i64,
        tmb_bytes: i64,
    }
    let backend = sea_orm::ConnectionTrait::get_database_backend(db);
    let mut into = Keyed::new();
    for sql in selects {
        let rows = StateRow::find_by_statement(Statement::from_string(backend, sql))
            .all(db)
            .await?;
        for r in rows {
            let entity = match &r.sample {
                Some(s) => format!("{} (sample {s})", r.entity),
                None => r.entity.clone(),
            };
            if r.entity == "file" {
                let (raw, tmb) = (
                    format!("{} bytes", r.state),
                    format!("{} TMB bytes", r.state),
                );
                into.insert((r.dataset_id, entity.clone(), raw), r.bytes);
                into.insert((r.dataset_id, entity.clone(), tmb), r.tmb_bytes);
            }
            into.insert((r.dataset_id, entity, r.state), r.n);
        }
    }
    Ok(into)
}

/// The hourly counts `sql` reads (columns `dataset_id, entity, via, hour, n`).
async fn hour_counts(db: &sea_orm::DatabaseTransaction, sql: String) -> Result<Keyed> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct HourRow {
        dataset_id: i64,
        entity: String,
        via: String,
        hour: String,
        n: i64,
    }
    let backend = sea_orm::ConnectionTrait::get_database_backend(db);
    let rows = HourRow::find_by_statement(Statement::from_string(backend, sql))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                (r.dataset_id, format!("{} {}", r.entity, r.via), r.hour),
                r.n,
            )
        })
        .collect())
}

impl crate::Store {
    /// Where the counts tables differ from the rows and the history they count, one line
    /// per difference (`state_count: dataset 7, file RECO_DONE: 12 counted, 11 rows`);
    /// empty when they agree. They can only differ when rows were changed behind `repro`'s
    /// back (by hand, by an old script); [`Store::recount`](crate::Store::recount) mends
    /// them. Reads every row: for tests and for an operator's check, not for the page.
    pub async fn count_drift(&self) -> Result<Vec<String>> {
        let db = crate::snapshot(&self.db).await?;
        let backend = self.backend();
        let kept = state_counts(
            &db,
            vec![
                "SELECT dataset_id, entity, state, n, sample, bytes, tmb_bytes FROM state_count"
                    .into(),
            ],
        )
        .await?;
        let rows = state_counts(&db, migration::state_selects(backend)).await?;
        let mut out = drift("state_count", kept, rows);
        let kept = hour_counts(
            &db,
            "SELECT dataset_id, entity, via, hour, n FROM hourly_count".into(),
        )
        .await?;
        let rows = hour_counts(&db, migration::hourly_select(backend)).await?;
        out.extend(drift("hourly_count", kept, rows));
        db.commit().await?;
        Ok(out)
    }

    /// Rebuilds the counts tables from the rows and the history, in one transaction: after
    /// rows were changed by hand, so the page and `/metrics` count them again. Returns the
    /// differences it mended, as [`Store::count_drift`](crate::Store::count_drift) words
    /// them.
    pub async fn recount(&self) -> Result<Vec<String>> {
        let mended = self.count_drift().await?;
        let (_turn, txn) = self.write_txn().await?;
        // Every dataset's row first, as each writer touches its own: writers wait until the
        // counts are rebuilt, and ticks look at every dataset again.
        txn.execute_unprepared("UPDATE dataset_status SET revision = revision + 1")
            .await?;
        txn.execute_unprepared("DELETE FROM state_count").await?;
        txn.execute_unprepared("DELETE FROM hourly_count").await?;
        for sql in migration::counts_backfill(self.backend()) {
            txn.execute_unprepared(&sql).await?;
        }
        txn.commit().await?;
        Ok(mended)
    }
}

/// The keys where `kept` and `rows` differ, a missing or zero count being zero.
fn drift(
    table: &str,
    kept: BTreeMap<(i64, String, String), i64>,
    rows: BTreeMap<(i64, String, String), i64>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&(i64, String, String)> =
        kept.keys().chain(rows.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (
                kept.get(k).copied().unwrap_or(0),
                rows.get(k).copied().unwrap_or(0),
            );
            (a != b).then(|| {
                format!(
                    "{table}: dataset {}, {} {}: {a} counted, {b} rows",
                    k.0, k.1, k.2
                )
            })
        })
        .collect()
}
