//! Opening a store: the URL's database, its pool and settings, the schema's migrations.

use super::*;

impl Store {
    /// A store on the pool `opts` describe; an error names `url` (redacted) when it
    /// cannot connect.
    async fn connect(opts: ConnectOptions, url: &str) -> Result<Store> {
        let db = Database::connect(opts).await.map_err(|e| DbError::BadUrl {
            url: redact(url),
            why: e.to_string(),
        })?;
        Ok(Store {
            db,
            limits: Default::default(),
            gate: Default::default(),
        })
    }

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
        Store::connect(opts, MEMORY).await
    }

    /// A SQLite database at `path` that this process alone uses and then throws away
    /// (`repro simulate`'s copy): created if missing, with nothing written for a crash's
    /// sake (no sync; the rollback journal and the statement journals in memory, so every
    /// page is written once, where a write-ahead log writes it twice) and a 64 MiB page
    /// cache per connection. A crash can leave it corrupt: never open a database that must
    /// survive one this way.
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
                o.journal_mode(SqliteJournalMode::Memory)
                    .synchronous(SqliteSynchronous::Off)
                    .busy_timeout(Duration::from_secs(60))
                    .foreign_keys(true)
                    .statement_cache_capacity(STATEMENT_CACHE)
                    .pragma("temp_store", "MEMORY")
                    .pragma("cache_size", "-65536")
            });
        Store::connect(opts, &url).await
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

    /// Closes this store's connections (every clone's: they share them) and waits until
    /// they are closed, so that a SQLite file can then be removed or replaced: a pool that
    /// is only dropped closes its connections in the background, and one that checkpoints
    /// late writes into whatever file has that name by then.
    pub async fn close(self) -> Result<()> {
        self.db.close().await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
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
pub(crate) fn is_transient(e: &sea_orm::DbErr) -> bool {
    let m = e.to_string();
    m.contains("1213")
        || m.contains("40001")
        || m.contains("40P01")
        || m.contains("Deadlock")
        || m.contains("deadlock")
}
