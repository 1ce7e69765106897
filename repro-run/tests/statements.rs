//! How many SQL statements a tick sends, at two sizes of the same campaign: the work a tick
//! does is set-based, so its statements grow with the datasets it works on, not with their
//! files. Counted (never timed) from the store's own trace: every statement the store sends
//! is an event of target `sqlx::query`, on SQLite always and on MariaDB and PostgreSQL when
//! `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL` are set.
//!
//! On SQLite the same trace gives each statement's text, and the test asks SQLite how it
//! would run every statement that names rows by a list of ids or job names: by that key,
//! never by walking every row of the dataset (which made the reco submission quadratic in
//! the files).
//!
//! One test in its own binary, because the counter is the process's global subscriber.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use repro_core::DatasetName;
use repro_db::{NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Driver, Op};
use tracing_subscriber::layer::SubscriberExt;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// The distinct texts of the statements sent, parameters as placeholders.
static TEXTS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Counts the store's statements and keeps their texts. The statements a new pooled
/// connection runs to set itself up (SQLite's `PRAGMA`s, MariaDB's `SET sql_mode`) are not
/// the store's work, and when the pool opens one is a race (a connection handed back a
/// moment late): they are left out.
struct Count;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut t = Text::default();
            event.record(&mut t);
            let setup = t.summary.starts_with("PRAGMA journal_mode")
                || t.summary.starts_with("SET sql_mode");
            if setup {
                return;
            }
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
            if !t.statement.is_empty() {
                TEXTS.lock().unwrap().insert(t.statement);
            }
        }
    }
}

/// The `summary` and `db.statement` fields of an event.
#[derive(Default)]
struct Text {
    summary: String,
    statement: String,
}

impl tracing::field::Visit for Text {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.trim().to_owned(),
            "db.statement" => self.statement = value.trim().to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

fn statements() -> usize {
    STATEMENTS.load(Ordering::Relaxed)
}

/// A URL with its database replaced: `mysql://root@host/test` -> `mysql://root@host/NAME`.
fn with_db(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let base = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    format!("{}/{name}", &url[..base])
}

/// A fresh, migrated store: a SQLite file in `dir`, or a new database on the server behind
/// the environment variable `server` (dropped again by [`drop_server_db`]).
async fn fresh(server: Option<&str>, dir: &Path, tag: &str) -> (Store, Option<(String, String)>) {
    let (store, drop) = match server {
        None => {
            let url = repro_run::demo::sqlite_url(&dir.join(format!("{tag}.db")));
            (Store::open(&url).await.unwrap(), None)
        }
        Some(var) => {
            let admin = std::env::var(var).unwrap();
            let name = format!("repro_stmt_{}_{tag}", std::process::id());
            let a = Store::open(&admin).await.unwrap();
            a.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .unwrap();
            a.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let store = Store::open(&with_db(&admin, &name)).await.unwrap();
            (store, Some((admin, name)))
        }
    };
    store.migrate().await.unwrap();
    (store, drop)
}

async fn drop_server_db(store: Store, server: Option<(String, String)>) {
    drop(store);
    if let Some((admin, name)) = server {
        let force = if admin.starts_with("postgres") {
            " WITH (FORCE)"
        } else {
            ""
        };
        if let Ok(a) = Store::open(&admin).await {
            a.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await
                .ok();
        }
    }
}

const DATASETS: u32 = 3;

/// What the campaign's world does.
#[derive(Clone, Copy, PartialEq, Debug)]
enum World {
    /// Jobs finish at once (`duration_s` 0); ticked to `CLEANED`.
    Finishing,
    /// Jobs never finish (`duration_s` huge).
    NeverFinishing,
    /// The tape refuses every stage request, and a failure waits a day to be retried.
    TapeDown,
}

/// Statements of each tick of a campaign of [`DATASETS`] x `files` in `world`, for at most
/// `ticks` ticks (a finishing one stops at `CLEANED`).
async fn per_tick(server: Option<&str>, files: u32, world: World, ticks: usize) -> Vec<usize> {
    let never_finish = world != World::Finishing;
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{files}_{world:?}").to_lowercase();
    let (store, db) = fresh(server, dir.path(), &tag).await;
    let mut names = Vec::new();
    for d in 0..DATASETS {
        let name = DatasetName::new(format!("count.ds{d}")).unwrap();
        let list: Vec<NewFile> = (0..files)
            .map(|f| {
                NewFile::new(
                    format!("/store/{name}/raw/f{f:06}.raw"),
                    1_000 + u64::from(f),
                )
            })
            .collect();
        let opts = Register {
            unlock: true,
            site: Some("sim".into()),
            ..Register::default()
        };
        store.register(&name, &list, &opts, "count").await.unwrap();
        names.push(name);
    }
    let config = SimConfig {
        world: dir.path().join("world"),
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        duration_s: if world == World::NeverFinishing {
            1e9
        } else {
            0.0
        },
        stage_failure: if world == World::TapeDown { 1.0 } else { 0.0 },
        ..SimConfig::default()
    };
    let backend = SimBackend::new(config, 0.0);
    let mut policy = repro_core::Policy::default();
    policy.retry.all.first_delay_s = 86_400;
    let mut counts = Vec::new();
    for _ in 0..ticks {
        let before = statements();
        // One dataset at a time: with several, a write that meets another's lock is
        // tried again, and the count would vary from run to run.
        let run = Driver::new(&store, &backend)
            .with_policy(policy.clone())
            .with_workers(1)
            .run_many(Op::Tick, &names, false)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        counts.push(statements() - before);
        if !never_finish
            && store
                .list(&repro_db::ListFilter::default())
                .await
                .unwrap()
                .iter()
                .all(|d| repro_core::plan::at_rest(d.status.state))
        {
            break;
        }
    }
    drop_server_db(store, db).await;
    counts
}

/// Every statement sent so far that names rows by a list of ids or job names, with the
/// steps of SQLite's plan for it that walk a whole dataset (or table) to find them.
async fn key_lists_walking_datasets() -> Vec<(String, Vec<String>)> {
    use sea_orm::{ConnectionTrait, Statement};
    let store = Store::open_memory().await.unwrap();
    store.migrate().await.unwrap();
    let texts: Vec<String> = TEXTS.lock().unwrap().iter().cloned().collect();
    let mut explained = 0;
    let mut bad = Vec::new();
    for sql in texts {
        if !(sql.contains(r#""id" IN ("#) || sql.contains(r#""name" IN ("#)) {
            continue;
        }
        let rows = store
            .connection()
            .query_all_raw(Statement::from_string(
                store.backend(),
                format!("EXPLAIN QUERY PLAN {sql}"),
            ))
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN {sql}: {e}"));
        explained += 1;
        let walks: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .filter(|d| d.starts_with("SCAN") || d.ends_with("(dataset_id=?)"))
            // The transitions table is written, never searched, by these statements.
            .filter(|d| !d.contains("transitions"))
            .collect();
        if !walks.is_empty() {
            bad.push((sql, walks));
        }
    }
    assert!(explained > 10, "only {explained} statements had key lists");
    bad
}

async fn check(server: Option<&str>) {
    let label = server.unwrap_or("sqlite");
    if server.is_none() {
        TEXTS.lock().unwrap().clear();
    }
    // With everything in flight and nothing finishing, a tick is one call to the backend
    // per dataset and the same statements at 100 and at 2,000 files a dataset.
    let small = per_tick(server, 100, World::NeverFinishing, 4).await;
    let big = per_tick(server, 2_000, World::NeverFinishing, 4).await;
    println!(
        "{label}: nothing finishing, statements per tick: {small:?} at 100 files, {big:?} at 2,000"
    );
    assert_eq!(
        small[2..],
        big[2..],
        "{label}: a poll-only tick's statements grew with the files"
    );
    // The second tick found nothing new and nothing to do; from then on a tick reads one
    // row per dataset (its revision and what settled it) and nothing else.
    assert_eq!(
        big[2..],
        [DATASETS as usize; 2],
        "{label}: a quiet tick did more than read each dataset's row"
    );

    // Every stage request refused, every file waiting a day to be tried again: the ticks
    // that follow do nothing per waiting file, at 100 files a dataset as at 2,000, and once
    // settled (until the first retry is due) read one row per dataset.
    let small = per_tick(server, 100, World::TapeDown, 5).await;
    let big = per_tick(server, 2_000, World::TapeDown, 5).await;
    println!(
        "{label}: files waiting to retry, statements per tick: {small:?} at 100 files, {big:?} at 2,000"
    );
    assert_eq!(
        small[3..],
        big[3..],
        "{label}: a tick with only waiting files grew with them"
    );
    assert_eq!(
        big[3..],
        [DATASETS as usize; 2],
        "{label}: waiting files were looked at"
    );

    // A whole campaign to CLEANED: same ticks, and per tick few more statements at 20 times
    // the files. What grows is what records one value per row (TMB paths, batch ids: 100
    // rows to a statement) and the merge groups (50 files each), which are still written a
    // group at a time: a few statements each.
    let small = per_tick(server, 100, World::Finishing, 20).await;
    let big = per_tick(server, 2_000, World::Finishing, 20).await;
    println!("{label}: to CLEANED, statements per tick: {small:?} at 100 files, {big:?} at 2,000");
    assert_eq!(small.len(), big.len(), "{label}: ticks to CLEANED differ");
    let per_row_chunks = (2_000 / 100) * DATASETS as usize;
    let more_groups = (2_000 / 50 - 100 / 50) * DATASETS as usize;
    for (i, (s, b)) in small.iter().zip(&big).enumerate() {
        assert!(
            *b <= s + 2 * per_row_chunks + 5 * more_groups,
            "{label}: tick {i} sent {b} statements at 2,000 files a dataset against {s} at 100"
        );
    }
    if server.is_none() {
        let bad = key_lists_walking_datasets().await;
        assert!(
            bad.is_empty(),
            "statements naming rows by key walk whole datasets instead: {bad:#?}"
        );
    }
}

#[test]
fn a_ticks_statements_grow_with_its_datasets_not_their_files() {
    let subscriber = tracing_subscriber::registry().with(Count);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        check(None).await;
        for var in ["REPRO_TEST_MYSQL_URL", "REPRO_TEST_POSTGRES_URL"] {
            if std::env::var(var).is_ok() {
                check(Some(var)).await;
            }
        }
    });
}
