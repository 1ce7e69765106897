//! How many SQL statements a tick sends, at two sizes of the same campaign: the work a tick
//! does is set-based, so its statements grow with the datasets it works on, not with their
//! files. Counted (never timed) from the store's own trace: every statement the store sends
//! is an event of target `sqlx::query`, on SQLite always and on MariaDB and PostgreSQL when
//! `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL` are set.
//!
//! One test in its own binary, because the counter is the process's global subscriber.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use repro_core::DatasetName;
use repro_db::{NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Driver, Op};
use tracing_subscriber::layer::SubscriberExt;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts the store's statements.
struct Count;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
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

/// Statements of each tick of a campaign of [`DATASETS`] x `files`, with jobs that finish at
/// once (`duration_s` 0, ticked to `CLEANED`) or never (`duration_s` huge, `ticks` ticks).
async fn per_tick(
    server: Option<&str>,
    files: u32,
    never_finish: bool,
    ticks: usize,
) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{files}_{}", u8::from(never_finish));
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
        };
        store.register(&name, &list, &opts, "count").await.unwrap();
        names.push(name);
    }
    let config = SimConfig {
        world: dir.path().join("world"),
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        duration_s: if never_finish { 1e9 } else { 0.0 },
        ..SimConfig::default()
    };
    let backend = SimBackend::new(config, 0.0);
    let mut counts = Vec::new();
    for _ in 0..ticks {
        let before = statements();
        // One dataset at a time: with several, a write that meets another's lock is
        // tried again, and the count would vary from run to run.
        let run = Driver::new(&store, &backend)
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

async fn check(server: Option<&str>) {
    let label = server.unwrap_or("sqlite");
    // With everything in flight and nothing finishing, a tick is one poll per dataset and
    // the same statements at 100 and at 2,000 files a dataset.
    let small = per_tick(server, 100, true, 4).await;
    let big = per_tick(server, 2_000, true, 4).await;
    println!(
        "{label}: nothing finishing, statements per tick: {small:?} at 100 files, {big:?} at 2,000"
    );
    assert_eq!(
        small[2..],
        big[2..],
        "{label}: a poll-only tick's statements grew with the files"
    );

    // A whole campaign to CLEANED: same ticks, and per tick few more statements at 20 times
    // the files. What grows is what records one value per row (TMB paths, batch ids: 100
    // rows to a statement) and the merge groups (50 files each), which are still written a
    // group at a time: a few statements each.
    let small = per_tick(server, 100, false, 20).await;
    let big = per_tick(server, 2_000, false, 20).await;
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
