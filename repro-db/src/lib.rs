//! # repro-db
//!
//! Persistence of the `repro` lifecycle through SeaORM, on SQLite (the default, one file),
//! MariaDB/MySQL or PostgreSQL. Any number of processes, on one machine or several, can
//! share one database:
//!
//! - every state change is one transaction that writes the new state and its history row,
//!   guarded by the state it expects; zero rows updated is a [`DbError::Conflict`];
//! - work on a dataset is claimed with an expiring lease ([`Store::claim`]);
//! - external actions are reserved (a job row in `reserved` under a deterministic name)
//!   before they happen;
//! - bulk work is set-based: chunked multi-row inserts, `UPDATE ... WHERE id IN (...)`,
//!   `GROUP BY` counts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), repro_db::DbError> {
//! use repro_db::{NewFile, Register, Store};
//! use repro_core::{DatasetName, Policy, plan};
//!
//! let store = Store::open("sqlite://repro.db?mode=rwc").await?;
//! store.migrate().await?;
//! let name = DatasetName::new("p17.wz").unwrap();
//! let files = vec![NewFile { lfn: "raw_0001.dat".into(), size: 1 << 30 }];
//! store.register(&name, &files, &Register { unlock: true, ..Register::default() }, "alice").await?;
//! let view = store.load(&name).await?;
//! let due = plan(&view, &Policy::default());
//! store.apply(&name, &due.changes, "cron").await?;
//! # Ok(()) }
//! ```

// The rows' shapes, their conversion to and from the core's types, and the compact id
// sets of bulk history rows: the store's internals, public only to this project's fuzz
// targets (the `fuzzing` feature), which feed them any text.
#[cfg(feature = "fuzzing")]
pub mod convert;
#[cfg(not(feature = "fuzzing"))]
mod convert;
#[cfg(feature = "fuzzing")]
pub mod entity;
#[cfg(not(feature = "fuzzing"))]
mod entity;
#[cfg(feature = "fuzzing")]
pub mod idset;
#[cfg(not(feature = "fuzzing"))]
mod idset;

mod copy;
mod counts;
mod error;
mod glance;
mod query;
mod store_lease;
mod store_open;
mod store_read;
mod store_register;
mod write;

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use migration::{Migrator, MigratorTrait};
use repro_core::budget::Spends;
use repro_core::file::FileState;
use repro_core::typed::{AnyDataset, Typed};
use repro_core::view::DatasetView;
use repro_core::{Change, DatasetName, SampleName, Status};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};

pub use error::{DbError, Result};
pub use glance::Glance;

/// How many writes have changed a dataset: every transaction that writes to it counts one,
/// on its row. A view loaded at one revision is of the state every later write starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub i64);

/// Which dataset row a view is of, and at which [`Revision`]: a view kept from an earlier
/// run ([`Store::load_stamped`]) is still the dataset's as long as [`Store::stamp`] gives
/// the same. The row's id tells a dataset deleted and registered again under the same
/// name (its revisions start again) from the one the view was of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The dataset's row.
    pub id: i64,
    /// Its revision.
    pub revision: Revision,
}
pub use query::{
    DatasetSummary, FileCounts, HistoryEntry, JobTotals, ListFilter, SampleSummary, Totals,
};

use entity::{dataset_status, file_status, prelude::*};

/// The URL of a store in memory ([`Store::open_memory`]).
pub const MEMORY: &str = "sqlite::memory:";

/// Rows per multi-row insert; stays under every backend's bind-parameter limit.
pub(crate) const INSERT_CHUNK: usize = 2_000;
/// Ids per `IN (...)` list.
pub(crate) const ID_CHUNK: usize = 10_000;
/// Prepared statements kept per connection. A bulk statement binds up to [`ID_CHUNK`]
/// values and its prepared form is large; with sqlx's default of 100 a long campaign's
/// memory grew past a gigabyte. Preparing a statement again is cheap beside what a bulk
/// statement does.
const STATEMENT_CACHE: usize = 16;

/// A raw file to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Logical file name, unique within the dataset.
    pub lfn: String,
    /// Size in bytes (0 when unknown).
    pub size: u64,
}

impl NewFile {
    /// A raw file of `size` bytes.
    pub fn new(lfn: impl Into<String>, size: u64) -> Self {
        NewFile {
            lfn: lfn.into(),
            size,
        }
    }
}

/// Options for registering a dataset.
#[derive(Debug, Clone, Default)]
pub struct Register {
    /// Release it to automation at once (new datasets are `LOCK`ed otherwise).
    pub unlock: bool,
    /// The site that processes it.
    pub site: Option<String>,
    /// The sample it belongs to.
    pub sample: Option<SampleName>,
    /// Its priority (higher gets budget first; 0 by default).
    pub priority: i32,
}

impl Register {
    /// Registered and released to automation at once, at no particular site or sample.
    pub fn unlocked() -> Self {
        Register {
            unlock: true,
            ..Register::default()
        }
    }
}

/// A claim on a dataset, held until [`Store::release`] or until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The dataset.
    pub dataset: String,
    /// Who holds it.
    pub owner: String,
    /// When it expires.
    pub until: NaiveDateTime,
    /// The dataset's site, as the claim read it (a run under the lease needs it for the
    /// budgets, and the claim reads the row anyway).
    pub site: Option<String>,
}

/// A connection pool to one `repro` database.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Limits every write that spends budget is checked against, in its transaction.
    limits: std::sync::Arc<repro_core::SiteLimits>,
    /// This process's writers to SQLite take turns here before they ask SQLite for its
    /// write lock. SQLite lets one transaction write at a time and makes the others poll
    /// for the lock, sleeping up to 100 ms between tries; queued here, the next writer
    /// starts as soon as the last one is done. Other processes still meet at SQLite's
    /// lock (the busy timeout). Shared by the store's clones; unused on the servers, whose
    /// row locks let writers of different datasets go at once.
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// On SQLite, this process's turn to write ([`Store::turn`]); held until the write it
/// was taken for has committed or rolled back.
pub(crate) type Turn = Option<tokio::sync::OwnedMutexGuard<()>>;

/// A database URL fit for messages: the password, if any, left out.
pub fn redact(url: &str) -> String {
    // Keep the scheme, host and path; drop a password if one is given.
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Loads a dataset's status as its typed value, to move with the typed methods and
    /// [`Store::save`]:
    ///
    /// ```no_run
    /// # async fn f(store: repro_db::Store) -> Result<(), repro_db::DbError> {
    /// use repro_core::typed::{AnyDataset, Known};
    /// use repro_core::DatasetName;
    ///
    /// let name = DatasetName::new("p17.wz").unwrap();
    /// match store.load_dataset(&name).await? {
    ///     AnyDataset::Locked(k) => {
    ///         let any = AnyDataset::Locked(k).because("calibration is in");
    ///         store.save(any.take(repro_core::Transition::Unlock).unwrap(), "alice").await?;
    ///     }
    ///     AnyDataset::Unlocked(Known::MergeFailed(d)) => {
    ///         store.save(d.because("merge node fixed").retry(), "alice").await?;
    ///     }
    ///     AnyDataset::Unlocked(_) => {}
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// A move the typed value does not have does not compile: `clean` exists only on a
    /// dataset whose merge is `MERGED_DBUP`.
    ///
    /// ```compile_fail,E0599
    /// # async fn f(store: repro_db::Store, name: repro_core::DatasetName) -> Result<(), repro_db::DbError> {
    /// use repro_core::typed::{AnyDataset, Known};
    /// if let AnyDataset::Unlocked(Known::Merging(d)) = store.load_dataset(&name).await? {
    ///     store.save(d.clean(), "alice").await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Automation does not move a locked dataset: a `Locked` value has no automatic methods.
    ///
    /// ```compile_fail,E0599
    /// # async fn f(store: repro_db::Store, name: repro_core::DatasetName) -> Result<(), repro_db::DbError> {
    /// use repro_core::typed::{AnyDataset, Known};
    /// if let AnyDataset::Locked(Known::Prestaging(d)) = store.load_dataset(&name).await? {
    ///     store.save(d.finish_prestage(), "cron").await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Nor can a dataset move be written by hand: its fields are private to `repro-core`.
    ///
    /// ```compile_fail,E0451
    /// # async fn f(store: repro_db::Store, name: repro_core::DatasetName, s: repro_core::Status) -> Result<(), repro_db::DbError> {
    /// use repro_core::{Change, DatasetMove, Transition};
    /// let forged = DatasetMove { from: s, via: Transition::Clean, to: s, reason: None };
    /// store.apply(&name, &[Change::Dataset(forged)], "mallory").await?;
    /// # Ok(()) }
    /// ```
    pub async fn load_dataset(&self, name: &DatasetName) -> Result<AnyDataset> {
        let row = DatasetStatus::find()
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        let (name, status) = convert::dataset(&row)?;
        Ok(AnyDataset::recover(name, status))
    }

    /// Writes the moves made on a typed dataset since it was loaded, in one transaction
    /// guarded by the state it was loaded in: if another process moved it since, this is a
    /// [`DbError::Conflict`] and nothing is written.
    pub async fn save(&self, dataset: impl Typed, actor: &str) -> Result<()> {
        let name = dataset.name().clone();
        self.apply(&name, &dataset.into_changes(), actor).await
    }

    /// Writes `changes` (computed by the core from a view of `name`) in one transaction,
    /// each guarded by the state it expects, with a history row each. A
    /// [`DbError::Conflict`] means another process moved something first and nothing was
    /// written. A [`DbError::Illegal`] means a change breaks a lifecycle rule (its table has
    /// no such move, or the stored files do not found a closing transition), and nothing
    /// was written either.
    pub async fn apply(&self, name: &DatasetName, changes: &[Change], actor: &str) -> Result<()> {
        self.apply_revised(name, changes, actor).await.map(|_| ())
    }

    /// [`Store::apply`], returning the dataset's [`Revision`] after the write (`None` when
    /// `changes` is empty and nothing was written). A writer that knows the revision it
    /// started from can tell whether anyone else wrote in between: then this is not one
    /// more than that.
    pub async fn apply_revised(
        &self,
        name: &DatasetName,
        changes: &[Change],
        actor: &str,
    ) -> Result<Option<Revision>> {
        if changes.is_empty() {
            return Ok(None);
        }
        // A deadlock or serialization failure rolls everything back; the changes are
        // guarded, so trying them again is safe.
        let mut attempt = 0;
        loop {
            match self.apply_once(name, changes, actor).await.map(Some) {
                Err(DbError::Db(e)) if store_open::is_transient(&e) && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(dataset = %name, attempt, "transient database error, trying again: {e}");
                    // sqlx runs on tokio here, so its timer is there.
                    tokio::time::sleep(Duration::from_millis(20 * (1 << attempt))).await;
                }
                other => return other,
            }
        }
    }

    /// A transaction for writing, and on SQLite this process's turn to write: bind both,
    /// the turn first (`let (_turn, txn) = ...`), so that the transaction ends before the
    /// turn does. On MariaDB/MySQL it reads committed data, so that the gap locks of
    /// REPEATABLE READ do not make writers of different datasets deadlock.
    pub(crate) async fn write_txn(&self) -> Result<(Turn, sea_orm::DatabaseTransaction)> {
        Ok(match self.backend() {
            DbBackend::MySql => {
                let txn = self
                    .db
                    .begin_with_config(Some(sea_orm::IsolationLevel::ReadCommitted), None)
                    .await?;
                (None, txn)
            }
            _ => (self.turn().await, self.db.begin().await?),
        })
    }

    /// On SQLite, waits for this process's turn to write (see `gate`); every write takes
    /// it, a transaction or a single statement. `None` on the servers.
    pub(crate) async fn turn(&self) -> Turn {
        match self.backend() {
            DbBackend::Sqlite => Some(self.gate.clone().lock_owned().await),
            _ => None,
        }
    }

    async fn apply_once(
        &self,
        name: &DatasetName,
        changes: &[Change],
        actor: &str,
    ) -> Result<Revision> {
        // Every change legal by its table before anything is written; what the rows hold is
        // checked as each is written (guards, and the files behind a closing transition).
        Change::check_all(changes)?;
        let now = now();
        let (_turn, txn) = self.write_txn().await?;
        // Touching the dataset row first takes SQLite's write lock before anything is read,
        // so concurrent writers queue on the busy timeout instead of deadlocking.
        // It also counts the write in the row's revision, so a tick that found the
        // dataset settled at an older revision looks at it again.
        let touched = DatasetStatus::update_many()
            .col_expr(dataset_status::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                dataset_status::Column::Revision,
                Expr::col(dataset_status::Column::Revision).add(1),
            )
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(DbError::NotFound(name.to_string()));
        }
        let ds = DatasetStatus::find()
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .one(&txn)
            .await?
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        let limits = self.limits.of(ds.site.as_deref());
        let total = self.limits.total;
        let spends = Spends::of(changes);
        let guarded = !limits.is_none() && spends.any();
        let guarded_total = !total.is_none() && spends.any();
        // Always the site's lock before the total's, so writers never wait in a circle.
        if guarded {
            self.lock_site(&txn, Some(ds.site.as_deref().unwrap_or("")))
                .await?;
        }
        if guarded_total {
            self.lock_site(&txn, None).await?;
        }
        write::apply(&txn, &ds, changes, actor, now).await?;
        if guarded {
            let site = ds.site.as_deref();
            check_budget(&txn, &ds, Sites::One(site), &limits, spends).await?;
        }
        if guarded_total {
            check_budget(&txn, &ds, Sites::All, &total, spends).await?;
        }
        txn.commit().await?;
        Ok(Revision(ds.revision))
    }

    /// Takes the site's lock row (`None`: the total's, over every site) for the rest of
    /// `txn`, so writers that spend that budget take turns (SQLite's writers take turns
    /// anyway). Datasets at no site share the row `""`, the total's is `"*"` (a site named
    /// `*` would share it, which only makes more writers take turns).
    async fn lock_site(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        site: Option<&str>,
    ) -> Result<()> {
        let site = site.unwrap_or("*");
        let backend = self.backend();
        let (insert, select) = match backend {
            DbBackend::Sqlite => return Ok(()),
            DbBackend::MySql => (
                "INSERT IGNORE INTO site_lock (site) VALUES (?)",
                "SELECT site FROM site_lock WHERE site = ? FOR UPDATE",
            ),
            _ => (
                "INSERT INTO site_lock (site) VALUES ($1) ON CONFLICT DO NOTHING",
                "SELECT site FROM site_lock WHERE site = $1 FOR UPDATE",
            ),
        };
        for sql in [insert, select] {
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [site.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// Changes a setting of a dataset's row (not its state), with a history row `via`
    /// from the old value to the new, in one transaction.
    async fn set_setting(
        &self,
        name: &DatasetName,
        actor: &str,
        reason: Option<&str>,
        via: &str,
        change: impl FnOnce(dataset_status::Model) -> (dataset_status::ActiveModel, String, String),
    ) -> Result<()> {
        use sea_orm::ActiveModelTrait;
        let (_turn, txn) = self.write_txn().await?;
        let row = DatasetStatus::find()
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .one(&txn)
            .await?
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        let id = row.id;
        let now = now();
        let (mut m, from, to) = change(row);
        m.updated_at = Set(now);
        m.update(&txn).await?;
        // Counted by the database, so that a write racing this one is not lost.
        DatasetStatus::update_many()
            .col_expr(
                dataset_status::Column::Revision,
                Expr::col(dataset_status::Column::Revision).add(1),
            )
            .filter(dataset_status::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        // The counts are kept with the dataset's sample, which this may have changed.
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            self.backend(),
            match self.backend() {
                DbBackend::Postgres => {
                    "UPDATE state_count SET sample = (SELECT sample FROM dataset_status WHERE id = $1) WHERE dataset_id = $2"
                }
                _ => {
                    "UPDATE state_count SET sample = (SELECT sample FROM dataset_status WHERE id = ?) WHERE dataset_id = ?"
                }
            },
            [id.into(), id.into()],
        ))
        .await?;
        write::history(
            &txn,
            vec![write::HistoryRow {
                dataset_id: id,
                entity: "dataset",
                entity_id: id,
                from,
                to,
                via: via.into(),
                reason: reason.map(str::to_owned),
            }],
            actor,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}

/// A read-only transaction that sees one snapshot across several statements.
pub(crate) async fn snapshot(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction> {
    Ok(match db.get_database_backend() {
        // A SQLite read transaction in WAL mode is a snapshot already.
        DbBackend::Sqlite => db.begin().await?,
        _ => {
            db.begin_with_config(
                Some(sea_orm::IsolationLevel::RepeatableRead),
                Some(sea_orm::AccessMode::ReadOnly),
            )
            .await?
        }
    })
}

/// Refuses, after the changes are written and before they commit, a batch that takes the
/// site of `ds` past `limits` in what it spends. A dataset that starts prestage may go past
/// the disk budget only when no other dataset holds disk (one bigger than the budget then
/// runs alone).
async fn check_budget(
    txn: &sea_orm::DatabaseTransaction,
    ds: &dataset_status::Model,
    sites: Sites<'_>,
    limits: &repro_core::Limits,
    spends: Spends,
) -> Result<()> {
    let used = query::usage(txn, sites, None).await?;
    // Only a prestage that starts asks what the others hold (once in a dataset's life).
    let others = match spends.disk {
        true => Some(query::usage(txn, sites, Some(ds.id)).await?),
        false => None,
    };
    match limits.breach(spends, &used, others.as_ref()) {
        None => Ok(()),
        Some((limit, used, max)) => Err(DbError::OverBudget {
            site: match sites {
                Sites::One(site) => site.unwrap_or("-").to_owned(),
                Sites::All => "all sites together".to_owned(),
            },
            limit,
            used,
            max,
        }),
    }
}

/// Which datasets a budget covers: those of one site (`None`: at no site), or all.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sites<'a> {
    One(Option<&'a str>),
    All,
}

/// Whether `owner` may take `dataset`'s lease at `now`, `held` being who holds it and until
/// when (`None`: nobody): `Ok(None)` when it is free or already `owner`'s, `Ok(Some(why))`
/// when it is taken over (it expired, or `gone` says its holder is gone), else
/// [`DbError::LeaseHeld`]. The rule of [`Store::claim_or_take_over`], for any store.
pub fn may_claim(
    dataset: &DatasetName,
    held: Option<(&str, Option<NaiveDateTime>)>,
    owner: &str,
    now: NaiveDateTime,
    gone: impl Fn(&str) -> bool,
) -> Result<Option<String>> {
    match held {
        None => Ok(None),
        Some((h, _)) if h == owner => Ok(None),
        Some((h, Some(u))) if u < now => Ok(Some(format!("the lease of {h} expired at {u} UTC"))),
        Some((h, _)) if gone(h) => Ok(Some(format!("{h} is gone"))),
        Some((h, u)) => Err(DbError::LeaseHeld {
            dataset: dataset.to_string(),
            owner: h.to_owned(),
            until: u.unwrap_or(now),
        }),
    }
}

/// The current time as stored: UTC, without a zone.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}
