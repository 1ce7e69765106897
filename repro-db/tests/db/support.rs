//! One fresh database per test, on every backend the environment offers.
//!
//! SQLite always (a file in a temporary directory). MariaDB/MySQL when
//! `REPRO_TEST_MYSQL_URL` is set and PostgreSQL when `REPRO_TEST_POSTGRES_URL` is set: each
//! test creates a database of its own on that server and drops it afterwards, so tests run
//! in parallel. Under `CI`, a missing URL fails the test instead of skipping it.

use std::sync::atomic::{AtomicU32, Ordering};

use repro_db::Store;
use sea_orm::{ConnectionTrait, Database};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

impl Backend {
    fn env(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Mysql => "REPRO_TEST_MYSQL_URL",
            Backend::Postgres => "REPRO_TEST_POSTGRES_URL",
        }
    }
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    server: Option<(String, String)>, // (admin url, database name)
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    /// A fresh database on `backend`; a server's needs its URL (a test on one is ignored
    /// without it, see the build script).
    pub async fn new(backend: Backend) -> TestDb {
        if backend == Backend::Sqlite {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("repro.db").display()
            );
            return TestDb {
                url,
                server: None,
                _dir: Some(dir),
            };
        }
        // Without its URL the test is ignored (see the build script); run anyway, it fails.
        let Ok(admin) = std::env::var(backend.env()) else {
            panic!(
                "{} is not set: no {backend:?} server to test on",
                backend.env()
            );
        };
        let name = format!(
            "repro_t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let conn = Database::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {backend:?} at {admin}: {e}"));
        conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        conn.close().await.ok();
        TestDb {
            url: replace_db(&admin, &name),
            server: Some((admin, name)),
            _dir: None,
        }
    }

    /// A store on this database, migrated.
    pub async fn store(&self) -> Store {
        let s = Store::open(&self.url).await.expect("open test database");
        s.migrate().await.expect("migrate test database");
        s
    }

    /// Drops a server database (SQLite's directory goes with the value).
    pub async fn drop_db(self) {
        if let Some((admin, name)) = &self.server
            && let Ok(conn) = Database::connect(admin).await
        {
            let force = if admin.starts_with("postgres") {
                " WITH (FORCE)"
            } else {
                ""
            };
            conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await
                .ok();
            conn.close().await.ok();
        }
    }
}

/// Declares `async fn NAME(db: &TestDb)` tests, each run on SQLite, MariaDB and PostgreSQL.
macro_rules! on_every_backend {
    ($(
        $(#[$m:meta])*
        async fn $name:ident($db:ident: &TestDb) $body:block
    )*) => {$(
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($db: &$crate::support::TestDb) $body

            async fn run(backend: $crate::support::Backend) {
                let db = $crate::support::TestDb::new(backend).await;
                body(&db).await;
                db.drop_db().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { run($crate::support::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(repro_mysql), ignore = "needs a MariaDB server: set REPRO_TEST_MYSQL_URL")]
            async fn mysql() { run($crate::support::Backend::Mysql).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(repro_postgres), ignore = "needs a PostgreSQL server: set REPRO_TEST_POSTGRES_URL")]
            async fn postgres() { run($crate::support::Backend::Postgres).await }
        }
    )*};
}
pub(crate) use on_every_backend;

#[test]
fn server_urls_get_their_database_replaced() {
    assert_eq!(
        replace_db("mysql://root@127.0.0.1:3306/test", "x"),
        "mysql://root@127.0.0.1:3306/x"
    );
    assert_eq!(
        replace_db(
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            "x"
        ),
        "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
    );
    assert_eq!(
        replace_db("postgres://postgres@127.0.0.1:5432", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
}

/// A dataset `name` of `files` raw files (`f0.raw`, ...), released and asked to stage
/// every file, as it now stands.
pub async fn staging(
    store: &Store,
    name: &str,
    files: usize,
) -> (repro_core::DatasetName, repro_core::DatasetView) {
    let name = repro_core::DatasetName::new(name).unwrap();
    let list: Vec<repro_db::NewFile> = (0..files)
        .map(|i| repro_db::NewFile::new(format!("f{i}.raw"), 10))
        .collect();
    let opts = repro_db::Register {
        unlock: true,
        ..repro_db::Register::default()
    };
    store.register(&name, &list, &opts, "t").await.unwrap();
    // Prestage starts, then every file is asked for.
    for _ in 0..2 {
        let view = store.load(&name).await.unwrap();
        let plan = repro_core::plan(&view, &repro_core::Policy::default());
        store.apply(&name, &plan.changes, "t").await.unwrap();
    }
    let view = store.load(&name).await.unwrap();
    (name, view)
}
