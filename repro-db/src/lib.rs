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

pub mod convert;
mod copy;
mod counts;
pub mod entity;
mod error;
mod glance;
pub mod idset;
mod query;
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
    /// Connects to `url`: `sqlite://PATH?mode=rwc`, `mysql://USER@HOST:PORT/DB` or
    /// `postgres://USER@HOST:PORT/DB`, giving up on a server that does not answer within
    /// [`Store::CONNECT_TIMEOUT`]. SQLite runs in WAL mode with a busy timeout, so that
    /// concurrent processes wait for each other instead of failing.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with_timeout(url, Store::CONNECT_TIMEOUT).await
    }

    /// A store in memory (`sqlite::memory:`): one SQLite connection held for the store's
    /// life, gone with it. For tests and simulations that want the real store without a
    /// file.
    pub async fn open_memory() -> Result<Store> {
        let mut opts = ConnectOptions::new(MEMORY.to_owned());
        // An in-memory database lives as long as its one connection.
        // Statements are traced under the `sqlx::query` target, off unless asked for
        // (`REPRO_LOG=sqlx=debug` shows each with its time; `sqlx=info` the slow ones).
        opts.sqlx_logging(true)
            .sqlx_logging_level(log::LevelFilter::Debug)
            .sqlx_slow_statements_logging_settings(log::LevelFilter::Info, Duration::from_secs(1))
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(60))
            .map_sqlx_sqlite_opts(|o| o.foreign_keys(true));
        let db = Database::connect(opts).await.map_err(|e| DbError::BadUrl {
            url: MEMORY.into(),
            why: e.to_string(),
        })?;
        Ok(Store {
            db,
            limits: Default::default(),
            gate: Default::default(),
        })
    }

    /// A SQLite database at `path` that this process alone uses and then throws away
    /// (`repro simulate`'s copy): created if missing, with nothing written for a crash's
    /// sake (no sync, the statement journals in memory), a 64 MiB page cache per
    /// connection and a longer write-ahead log between checkpoints. A crash can leave
    /// it corrupt: never open a database that must survive one this way.
    pub async fn open_scratch(path: &std::path::Path) -> Result<Store> {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(true)
            .sqlx_logging_level(log::LevelFilter::Debug)
            .sqlx_slow_statements_logging_settings(log::LevelFilter::Info, Duration::from_secs(1))
            .acquire_timeout(Duration::from_secs(60))
            .max_connections(4)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Off)
                    .busy_timeout(Duration::from_secs(60))
                    .foreign_keys(true)
                    .statement_cache_capacity(STATEMENT_CACHE)
                    .pragma("temp_store", "MEMORY")
                    .pragma("cache_size", "-65536")
                    .pragma("wal_autocheckpoint", "16384")
            });
        let db = Database::connect(opts).await.map_err(|e| DbError::BadUrl {
            url: redact(&url),
            why: e.to_string(),
        })?;
        Ok(Store {
            db,
            limits: Default::default(),
            gate: Default::default(),
        })
    }

    /// How long [`Store::open`] waits for a database server.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// [`Store::open`], waiting at most `timeout` for the server to answer. An unreachable
    /// server is [`DbError::Unreachable`]; a URL that cannot be used is [`DbError::BadUrl`].
    pub async fn open_with_timeout(url: &str, timeout: Duration) -> Result<Store> {
        if url == MEMORY {
            return Store::open_memory().await;
        }
        let opts = connect_options(url, timeout)?;
        let connect = tokio::time::timeout(timeout, Database::connect(opts));
        let db = match connect.await {
            Ok(Ok(db)) => db,
            Ok(Err(e)) if is_configuration(&e) => {
                return Err(DbError::BadUrl {
                    url: redact(url),
                    why: e.to_string(),
                });
            }
            Ok(Err(e)) => {
                return Err(DbError::Unreachable {
                    url: redact(url),
                    why: e.to_string(),
                });
            }
            Err(_) => {
                return Err(DbError::Unreachable {
                    url: redact(url),
                    why: format!("no answer within {} s", timeout.as_secs_f64()),
                });
            }
        };
        Ok(Store {
            db,
            limits: Default::default(),
            gate: Default::default(),
        })
    }

    /// The same store, refusing any write that would take a site past `limits` (checked
    /// in the write's own transaction, under a lock per site on MariaDB/MySQL and
    /// PostgreSQL, so racing processes cannot both take the last slot).
    pub fn with_limits(mut self, limits: repro_core::SiteLimits) -> Store {
        self.limits = std::sync::Arc::new(limits);
        self
    }

    /// The limits this store checks.
    pub fn limits(&self) -> &repro_core::SiteLimits {
        &self.limits
    }

    /// What the datasets of `site` (`None`: those at no site) have in flight now.
    pub async fn usage(&self, site: Option<&str>) -> Result<repro_core::Usage> {
        query::usage(&self.db, Sites::One(site), None).await
    }

    /// What the datasets of every site (and of none) have in flight now, counted against
    /// the limits' total.
    pub async fn usage_total(&self) -> Result<repro_core::Usage> {
        query::usage(&self.db, Sites::All, None).await
    }

    /// The site a dataset is registered at.
    pub async fn site_of(&self, name: &DatasetName) -> Result<Option<String>> {
        use sea_orm::QuerySelect;
        let row: Option<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(dataset_status::Column::Site)
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        row.ok_or_else(|| DbError::NotFound(name.to_string()))
    }

    /// The underlying connection: for tests that reach under the API (feature `raw-sql`).
    /// Whatever is written through it is outside every rule this crate keeps.
    #[cfg(feature = "raw-sql")]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Creates or upgrades the schema. Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        if self.backend() != DbBackend::Sqlite {
            Migrator::up(&self.db, None).await?;
            return Ok(());
        }
        // One at a time, each checkpointed: a migration that rebuilds tables writes them
        // all to the WAL, and the WAL of every migration at once (1 MB) is more than the
        // schema it leaves behind.
        while !Migrator::get_pending_migrations(&self.db).await?.is_empty() {
            Migrator::up(&self.db, Some(1)).await?;
            self.db
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await?;
        }
        Ok(())
    }

    /// Fails with [`DbError::SchemaOutdated`] unless every migration is applied.
    pub async fn check_schema(&self) -> Result<()> {
        let pending = match Migrator::get_pending_migrations_read_only(&self.db).await {
            Ok(p) => p.len(),
            // No migrations table yet: nothing was ever created here.
            Err(_) => {
                return Err(DbError::SchemaOutdated {
                    what: "missing".into(),
                });
            }
        };
        if pending == Migrator::migrations().len() {
            return Err(DbError::SchemaOutdated {
                what: "missing".into(),
            });
        }
        if pending > 0 {
            return Err(DbError::SchemaOutdated {
                what: format!("{pending} migration(s) behind"),
            });
        }
        Ok(())
    }

    /// Registers a dataset with its raw files, `LOCK`ed unless `opts.unlock`. All or nothing:
    /// a duplicate name or file registers nothing.
    pub async fn register(
        &self,
        name: &DatasetName,
        files: &[NewFile],
        opts: &Register,
        actor: &str,
    ) -> Result<i64> {
        let mut seen = std::collections::HashSet::with_capacity(files.len());
        for f in files {
            if !seen.insert(f.lfn.as_str()) {
                return Err(DbError::DuplicateFile {
                    dataset: name.to_string(),
                    lfn: f.lfn.clone(),
                });
            }
        }
        let now = now();
        let status = if opts.unlock {
            Status {
                lock: repro_core::LockWord::Unlock,
                ..Status::NEW
            }
        } else {
            Status::NEW
        };
        let c = status.columns();
        let (_turn, txn) = self.write_txn().await?;
        let id = insert_dataset(&txn, name, &c, opts, now).await?;
        let state = FileState::Registered.as_str();
        insert_files(&txn, id, files, now).await?;
        let sample = opts.sample.as_ref().map(|s| s.as_str());
        let mut deltas = counts::Deltas::of(id, sample);
        let raw = files
            .iter()
            .map(|f| i64::try_from(f.size).unwrap_or(i64::MAX))
            .fold(0i64, i64::saturating_add);
        let bytes = counts::Bytes { raw, tmb: 0 };
        deltas.created(id, "file", state, files.len() as u64, bytes);
        deltas.write(&txn, now).await?;
        write::history(
            &txn,
            vec![write::HistoryRow {
                dataset_id: id,
                entity: "dataset",
                entity_id: id,
                from: "-".into(),
                to: c.to_string(),
                via: "register".into(),
                reason: Some(repro_core::words::count(files.len() as u64, "raw file")),
            }],
            actor,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(id)
    }

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

    /// Closes this store's connections (every clone's: they share them) and waits until
    /// they are closed, so that a SQLite file can then be removed or replaced: a pool that
    /// is only dropped closes its connections in the background, and one that checkpoints
    /// late writes into whatever file has that name by then.
    pub async fn close(self) -> Result<()> {
        self.db.close().await?;
        Ok(())
    }

    /// Loads a dataset with its files, merge groups and jobs, from one consistent snapshot.
    pub async fn load(&self, name: &DatasetName) -> Result<DatasetView> {
        Ok(self.load_revised(name).await?.0)
    }

    /// [`Store::load`], with the [`Revision`] the view is of.
    pub async fn load_revised(&self, name: &DatasetName) -> Result<(DatasetView, Revision)> {
        let (view, stamp) = self.load_stamped(name).await?;
        Ok((view, stamp.revision))
    }

    /// [`Store::load`], with the [`Stamp`] the view is of.
    pub async fn load_stamped(&self, name: &DatasetName) -> Result<(DatasetView, Stamp)> {
        let txn = snapshot(&self.db).await?;
        let (view, stamp) = query::load(&txn, name).await?;
        txn.commit().await?;
        Ok((view, stamp))
    }

    /// The dataset's row and revision now: one statement on its row, no file read. A view
    /// loaded at the same [`Stamp`] is the dataset as it is, since every write to it counts
    /// in its revision.
    pub async fn stamp(&self, name: &DatasetName) -> Result<Stamp> {
        use dataset_status::Column as C;
        use sea_orm::QuerySelect;
        let row: Option<(i64, i64)> = DatasetStatus::find()
            .select_only()
            .column(C::Id)
            .column(C::Revision)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        let (id, revision) = row.ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Ok(Stamp {
            id,
            revision: Revision(revision),
        })
    }

    /// Records that a tick found nothing new and nothing to do for `name` at `revision`
    /// (as [`Store::load_revised`] gave it, or its own writes since, as
    /// [`Store::apply_revised`] returned them), with `token` saying under what
    /// (the policy, the backend's cursor). Written only if the dataset is still at
    /// `revision`: a write since then means the finding is stale, and `false` is returned.
    pub async fn settle(
        &self,
        name: &DatasetName,
        revision: Revision,
        token: &str,
    ) -> Result<bool> {
        use dataset_status::Column as C;
        let marker = format!("{}|{token}", revision.0);
        let _turn = self.turn().await;
        let r = DatasetStatus::update_many()
            .col_expr(C::Settled, Expr::value(Some(marker)))
            .filter(C::Name.eq(name.as_str()))
            .filter(C::Revision.eq(revision.0))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Whether a tick found nothing to do for `name` under `token` ([`Store::settle`]) and
    /// nothing has been written to it since: then a tick under the same token would find
    /// the same nothing. One statement on the dataset's row; no file is read.
    pub async fn is_settled(&self, name: &DatasetName, token: &str) -> Result<bool> {
        Ok(self.settled_token(name).await?.as_deref() == Some(token))
    }

    /// The token a tick settled `name` under ([`Store::settle`]), if nothing has been
    /// written to it since.
    pub async fn settled_token(&self, name: &DatasetName) -> Result<Option<String>> {
        use dataset_status::Column as C;
        use sea_orm::QuerySelect;
        let row: Option<(i64, Option<String>)> = DatasetStatus::find()
            .select_only()
            .column(C::Revision)
            .column(C::Settled)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        let (revision, settled) = row.ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Ok(settled.and_then(|s| {
            let (r, token) = s.split_once('|')?;
            (r == revision.to_string()).then(|| token.to_owned())
        }))
    }

    /// How many things of `name` a check would poll now, counted by the database
    /// (the length of [`repro_core::plan::polls`] of its view, without loading it).
    pub async fn polls_due(&self, name: &DatasetName) -> Result<u64> {
        query::polls_due(&self.db, name).await
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
                Err(DbError::Db(e)) if is_transient(&e) && attempt < 5 => {
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

    /// One dataset's state and file counts.
    pub async fn summary(&self, name: &DatasetName) -> Result<DatasetSummary> {
        query::summary(&self.db, name).await
    }

    /// Datasets matching `filter`, with their file counts, in two statements.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<DatasetSummary>> {
        query::list(&self.db, filter).await
    }

    /// Reco and merge jobs of every dataset, every attempt, and how many were retries.
    pub async fn job_totals(&self) -> Result<JobTotals> {
        query::job_totals(&self.db).await
    }

    /// Campaign-wide counts of datasets per column word, files per state and jobs per state.
    pub async fn totals(&self) -> Result<Totals> {
        query::totals(&self.db).await
    }

    /// History rows of `entity` moved by `via` per hour, from the hour holding `since`, for
    /// one dataset or every one (e.g. files reconstructed per hour: `"file"`,
    /// `"reco_done"`). Read from the hourly counts the writes keep, not from the history.
    pub async fn per_hour(
        &self,
        dataset: Option<&DatasetName>,
        entity: &str,
        via: &str,
        since: NaiveDateTime,
    ) -> Result<Vec<(String, u64)>> {
        query::per_hour(&self.db, dataset, entity, via, since).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    /// How many datasets match `filter` (offset and limit aside).
    pub async fn count(&self, filter: &ListFilter) -> Result<u64> {
        query::count(&self.db, filter).await
    }

    /// A dataset's history, oldest first; `entity` restricts it to one kind (`dataset`,
    /// `file`, `group`, `reco_job`, `merge_job`).
    pub async fn history(
        &self,
        name: &DatasetName,
        entity: Option<&str>,
    ) -> Result<Vec<HistoryEntry>> {
        query::history(&self.db, name, entity).await
    }

    /// Claims `name` for `owner` until `now + ttl`. Succeeds if the dataset is unclaimed,
    /// its lease expired, or `owner` holds it already (renewal); otherwise
    /// [`DbError::LeaseHeld`] names the holder.
    pub async fn claim(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> Result<Lease> {
        self.claim_or_take_over(name, owner, ttl, now, |_| false)
            .await
    }

    /// [`Store::claim`], also taking over a live lease whose holder `gone` says is provably
    /// gone (a process of this host that no longer exists). Taking over an expired or a
    /// gone holder's lease is recorded in the history (`take_over_lease`, naming the
    /// holder). Guarded by the holder read, so two processes racing to take over one lease
    /// cannot both win.
    pub async fn claim_or_take_over(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: impl Fn(&str) -> bool,
    ) -> Result<Lease> {
        use dataset_status::Column as C;
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        for _ in 0..5 {
            let row = DatasetStatus::find()
                .filter(C::Name.eq(name.as_str()))
                .one(&self.db)
                .await?
                .ok_or_else(|| DbError::NotFound(name.to_string()))?;
            let held = row.lease_owner.as_deref().map(|h| (h, row.lease_until));
            let takeover = may_claim(name, held, owner, now, &gone)?;
            let (_turn, txn) = self.write_txn().await?;
            let mut q = DatasetStatus::update_many()
                .col_expr(C::LeaseOwner, Expr::value(owner))
                .col_expr(C::LeaseUntil, Expr::value(until))
                .filter(C::Id.eq(row.id));
            q = match &row.lease_owner {
                None => q.filter(C::LeaseOwner.is_null()),
                Some(h) => q.filter(C::LeaseOwner.eq(h.as_str())),
            };
            if let Some(u) = row.lease_until {
                q = q.filter(C::LeaseUntil.eq(u));
            }
            if q.exec(&txn).await?.rows_affected != 1 {
                // Someone else claimed, renewed or released it since the read: look again.
                continue;
            }
            if let (Some(why), Some(holder)) = (takeover, &row.lease_owner) {
                write::history(
                    &txn,
                    vec![write::HistoryRow {
                        dataset_id: row.id,
                        entity: "dataset",
                        entity_id: row.id,
                        from: format!("lease {holder}"),
                        to: format!("lease {owner}"),
                        via: "take_over_lease".into(),
                        reason: Some(why),
                    }],
                    owner,
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            return Ok(Lease {
                dataset: name.to_string(),
                owner: owner.to_owned(),
                until,
                site: row.site,
            });
        }
        let row = DatasetStatus::find()
            .filter(C::Name.eq(name.as_str()))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Err(DbError::LeaseHeld {
            dataset: name.to_string(),
            owner: row.lease_owner.unwrap_or_default(),
            until: row.lease_until.unwrap_or(now),
        })
    }

    /// Records that `owner` ran a tick at `now` for each of `sites` (`""` for datasets
    /// without a site): what `/metrics` exports as the last tick per site.
    pub async fn record_tick(
        &self,
        sites: &[String],
        owner: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        use entity::site_tick;
        use sea_orm::sea_query::OnConflict;
        if sites.is_empty() {
            return Ok(());
        }
        let _turn = self.turn().await;
        let rows = sites.iter().map(|s| site_tick::ActiveModel {
            site: Set(s.clone()),
            last_tick_at: Set(now),
            last_owner: Set(owner.to_owned()),
        });
        SiteTick::insert_many(rows)
            .on_conflict(
                OnConflict::column(site_tick::Column::Site)
                    .update_columns([site_tick::Column::LastTickAt, site_tick::Column::LastOwner])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// When each site last had a tick, and by whom: `(site, at, owner)`, by site.
    pub async fn last_ticks(&self) -> Result<Vec<(String, NaiveDateTime, String)>> {
        use entity::site_tick;
        use sea_orm::QueryOrder;
        Ok(SiteTick::find()
            .order_by_asc(site_tick::Column::Site)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.site, r.last_tick_at, r.last_owner))
            .collect())
    }

    /// The sites datasets are registered at (`""` for none), each once.
    pub async fn sites(&self) -> Result<Vec<String>> {
        use sea_orm::QuerySelect;
        let rows: Vec<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(dataset_status::Column::Site)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out: Vec<String> = rows.into_iter().map(Option::unwrap_or_default).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// One page of the history, oldest first: the moves in the rows after id `after` (at
    /// most `limit` rows; a row that stands for a bulk move gives one entry per file or job
    /// it moved) about `entities` (`"file"`, `"reco_job"`, `"merge_job"`, ...), as (row id,
    /// dataset id, entity, entity id, to state, when). The next page is after the last
    /// entry's row id. For tools that read a campaign's history whole, such as
    /// `repro simulate --calibrate-from`.
    pub async fn history_page(
        &self,
        entities: &[&str],
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, i64, String, i64, String, NaiveDateTime)>> {
        use entity::transitions::Column as T;
        use sea_orm::{QueryOrder, QuerySelect};
        type Row = (
            i64,
            i64,
            String,
            i64,
            String,
            NaiveDateTime,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = Transitions::find()
            .select_only()
            .columns([
                T::Id,
                T::DatasetId,
                T::Entity,
                T::EntityId,
                T::ToState,
                T::At,
                T::N,
                T::Ids,
            ])
            .filter(T::Id.gt(after))
            .filter(T::Entity.is_in(entities.iter().copied()))
            .order_by_asc(T::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, dataset, entity, entity_id, to, at, n, ids) in rows {
            for e in query::ids_of(id, entity_id, n, ids.as_deref())? {
                out.push((id, dataset, entity.clone(), e, to.clone(), at));
            }
        }
        Ok(out)
    }

    /// The site of every dataset that has one, by dataset name.
    pub async fn dataset_sites(&self) -> Result<std::collections::BTreeMap<String, String>> {
        use sea_orm::QuerySelect;
        let rows: Vec<(String, Option<String>)> = DatasetStatus::find()
            .select_only()
            .columns([dataset_status::Column::Name, dataset_status::Column::Site])
            .filter(dataset_status::Column::Site.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, site)| Some((name, site?)))
            .collect())
    }

    /// Gives a lease back. Releasing a lease that expired and was taken over does nothing.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        self.release_noting(lease, None).await
    }

    /// Gives a lease back and records, in the same statement, what of the dataset waited
    /// for budget in the run that held it (`Some(None)`: nothing; see
    /// [`Store::set_waiting`]). A lease that expired and was taken over is left to its
    /// new holder, with what it records.
    pub async fn release_noting(&self, lease: &Lease, waiting: Option<Option<&str>>) -> Result<()> {
        use dataset_status::Column as C;
        let _turn = self.turn().await;
        let mut q = DatasetStatus::update_many()
            .col_expr(C::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(C::LeaseUntil, Expr::value(Option::<NaiveDateTime>::None));
        if let Some(waiting) = waiting {
            q = q.col_expr(C::Waiting, Expr::value(waiting.map(str::to_owned)));
        }
        q.filter(C::Name.eq(lease.dataset.as_str()))
            .filter(C::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Puts a dataset into `sample`, or into none; recorded in its history.
    pub async fn set_sample(
        &self,
        name: &DatasetName,
        sample: Option<&SampleName>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let to = sample.map_or("-".to_owned(), |s| s.to_string());
        self.set_setting(name, actor, reason, "set_sample", |row| {
            let from = row.sample.clone().unwrap_or_else(|| "-".into());
            // The dataset's counts move to the new sample with it, in the same transaction.
            let mut m: dataset_status::ActiveModel = row.into();
            m.sample = Set(sample.map(|s| s.to_string()));
            (m, from, to)
        })
        .await
    }

    /// Gives a dataset priority `priority` (higher gets budget first); recorded in its
    /// history.
    pub async fn set_priority(
        &self,
        name: &DatasetName,
        priority: i32,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.set_setting(name, actor, reason, "set_priority", |row| {
            let from = row.priority.to_string();
            let mut m: dataset_status::ActiveModel = row.into();
            m.priority = Set(priority);
            (m, from, priority.to_string())
        })
        .await
    }

    /// Keeps `lost` as the number of the dataset's raw files failed for good that an
    /// operator accepts losing (`repro_core::operator::accept` says what may be kept),
    /// with a history row `accept` and the reason.
    pub async fn accept_lost(
        &self,
        name: &DatasetName,
        lost: u64,
        actor: &str,
        reason: &str,
    ) -> Result<()> {
        self.set_setting(name, actor, Some(reason), "accept", |row| {
            let from = row.accepted_lost.to_string();
            let mut m: dataset_status::ActiveModel = row.into();
            m.accepted_lost = Set(i64::try_from(lost).unwrap_or(i64::MAX));
            (m, from, lost.to_string())
        })
        .await
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

    /// Records what of a dataset waited for budget in the run that just worked on it
    /// (`None`: nothing); writes only when that changed (and, should another process change
    /// it between the read and the write, only if it still differs).
    pub async fn set_waiting(&self, name: &DatasetName, waiting: Option<&str>) -> Result<()> {
        use dataset_status::Column as C;
        use sea_orm::Condition;
        use sea_orm::QuerySelect;
        // Read first: on SQLite even an UPDATE that changes nothing waits for the write lock,
        // behind whichever dataset's bulk write holds it.
        let stored: Option<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(C::Waiting)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        if stored.is_none_or(|w| w.as_deref() == waiting) {
            return Ok(());
        }
        let changed = match waiting {
            Some(w) => Condition::any()
                .add(C::Waiting.is_null())
                .add(C::Waiting.ne(w)),
            None => Condition::all().add(C::Waiting.is_not_null()),
        };
        let _turn = self.turn().await;
        DatasetStatus::update_many()
            .col_expr(C::Waiting, Expr::value(waiting.map(str::to_owned)))
            .filter(C::Name.eq(name.as_str()))
            .filter(changed)
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Per sample, the datasets of `site` (or all) and their files per state, the datasets
    /// in no sample last; empty when none of them is in a sample.
    pub async fn samples(&self, site: Option<&str>) -> Result<Vec<SampleSummary>> {
        query::samples(&self.db, site).await
    }

    /// Deletes a dataset and everything recorded about it.
    pub async fn delete(&self, name: &DatasetName) -> Result<()> {
        let _turn = self.turn().await;
        let res = DatasetStatus::delete_many()
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(DbError::NotFound(name.to_string()));
        }
        Ok(())
    }

    /// Runs a raw statement: for tests that reach under the API (feature `raw-sql`), such
    /// as corrupting a row on purpose. Nothing it writes is checked; a tool that needs its
    /// own SQL opens its own connection (sea-orm or sqlx), outside our guarantees.
    #[cfg(feature = "raw-sql")]
    pub async fn execute_unprepared(&self, sql: &str) -> Result<u64> {
        Ok(self.db.execute_unprepared(sql).await?.rows_affected())
    }
}

/// How to connect to `url`, waiting at most `timeout`; a URL this build cannot use is
/// [`DbError::BadUrl`].
fn connect_options(url: &str, timeout: Duration) -> Result<ConnectOptions> {
    let bad = |why: &str| DbError::BadUrl {
        url: redact(url),
        why: why.to_owned(),
    };
    let scheme = url.split("://").next().unwrap_or("");
    if !url.contains("://") {
        return Err(bad(
            "expected sqlite://PATH, sqlite::memory:, mysql://... or postgres://...",
        ));
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    // Statements are traced under the `sqlx::query` target, off unless asked for
    // (`REPRO_LOG=sqlx=debug` shows each with its time; `sqlx=info` the slow ones).
    opts.sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Info, Duration::from_secs(1))
        .acquire_timeout(timeout.max(Duration::from_secs(30)))
        .connect_timeout(timeout);
    match scheme {
        "sqlite" => {
            opts.max_connections(4).map_sqlx_sqlite_opts(|o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(60))
                    .foreign_keys(true)
                    .statement_cache_capacity(STATEMENT_CACHE)
            });
        }
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => {
            opts.max_connections(8)
                .map_sqlx_mysql_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            // A cached statement's generic plan sees `id IN ($5, ..., $10004)` as
            // parameters, cannot hash them, and compares every row with every id (a
            // 50,000-file move took 20 s). Plans made for the values at hand look
            // the ids up by key.
            opts.max_connections(8).map_sqlx_postgres_opts(|o| {
                o.statement_cache_capacity(STATEMENT_CACHE)
                    .options([("plan_cache_mode", "force_custom_plan")])
            });
        }
        #[cfg(not(feature = "mysql"))]
        "mysql" | "mariadb" => {
            return Err(bad(
                "this build has no MariaDB/MySQL support (feature `mysql`)",
            ));
        }
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => {
            return Err(bad(
                "this build has no PostgreSQL support (feature `postgres`)",
            ));
        }
        other => {
            return Err(bad(&format!(
                "unknown scheme {other:?}; use sqlite, mysql or postgres"
            )));
        }
    }
    Ok(opts)
}

/// Inserts dataset `name`'s row at `c`, with its site, sample and priority; its row id.
async fn insert_dataset(
    txn: &sea_orm::DatabaseTransaction,
    name: &DatasetName,
    c: &repro_core::Columns,
    opts: &Register,
    now: chrono::NaiveDateTime,
) -> Result<i64> {
    let inserted = DatasetStatus::insert(dataset_status::ActiveModel {
        name: Set(name.to_string()),
        lock_state: Set(c.lock.as_str().into()),
        prestage_state: Set(c.prestage.as_str().into()),
        reco_state: Set(c.reco.as_str().into()),
        merge_state: Set(c.merge.as_str().into()),
        cleanup_state: Set(c.cleanup.as_str().into()),
        site: Set(opts.site.clone()),
        sample: Set(opts.sample.as_ref().map(|s| s.to_string())),
        priority: Set(opts.priority),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => DbError::Exists(name.to_string()),
        _ => DbError::from(e),
    })?;
    Ok(inserted.last_insert_id)
}

/// Inserts dataset `id`'s raw `files`, `registered`, in bulk.
async fn insert_files(
    txn: &sea_orm::DatabaseTransaction,
    id: i64,
    files: &[NewFile],
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let state = FileState::Registered.as_str();
    for chunk in files.chunks(INSERT_CHUNK) {
        let rows = chunk
            .iter()
            .map(|f| {
                Ok(file_status::ActiveModel {
                    dataset_id: Set(id),
                    lfn: Set(f.lfn.clone()),
                    size: Set(i64::try_from(f.size).map_err(|_| DbError::OutOfRange {
                        what: "file size",
                        value: f.size.to_string(),
                    })?),
                    state: Set(state.into()),
                    attempts: Set(0),
                    attempt_base: Set(0),
                    last_error: Set(None),
                    tmb_path: Set(None),
                    tmb_size: Set(None),
                    merge_group: Set(None),
                    updated_at: Set(now),
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        FileStatus::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
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

/// Whether a connection error is about the URL itself rather than the server.
fn is_configuration(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match e {
        sea_orm::DbErr::Conn(RuntimeErr::SqlxError(inner)) => match inner.as_ref() {
            Error::Configuration(_) => true,
            // The server answered, but with a refusal about itself, not about what was
            // asked (SQLSTATE class 08, connection exception; class 57, operator
            // intervention: PostgreSQL shutting down or starting up, MariaDB's "server
            // shutdown in progress"): it cannot be reached now, the URL is fine.
            Error::Database(db) => !db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            _ => false,
        },
        _ => false,
    }
}

/// Whether a database error is a lost race that a retry of the whole transaction fixes:
/// a deadlock or a serialization failure.
fn is_transient(e: &sea_orm::DbErr) -> bool {
    let m = e.to_string();
    m.contains("1213")
        || m.contains("40001")
        || m.contains("40P01")
        || m.contains("Deadlock")
        || m.contains("deadlock")
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
