//! The schema: created, checked, and taken down and up again.

use migration::{Migrator, MigratorTrait};
use repro_core::DatasetName;
use repro_db::{DbError, NewFile, Register, Store};

use crate::support::on_every_backend;

on_every_backend! {
    async fn migrations_go_up_down_and_up_again(db: &TestDb) {
        let store = Store::open(&db.url).await.unwrap();
        match store.check_schema().await {
            Err(DbError::SchemaOutdated { what }) => assert_eq!(what, "missing"),
            other => panic!("a fresh database has no schema: {other:?}"),
        }
        store.migrate().await.unwrap();
        store.migrate().await.unwrap(); // idempotent
        store.check_schema().await.unwrap();
        let name = DatasetName::new("m").unwrap();
        store.register(&name, &[NewFile { lfn: "f".into(), size: 1 }], &Register::default(), "t").await.unwrap();

        Migrator::down(store.connection(), Some(1)).await.unwrap();
        let err = store.check_schema().await.unwrap_err();
        assert_eq!(err.to_string(), "the database schema is 1 migration(s) behind; run `repro init` to create or upgrade it");
        // Going up again fills the counts from the rows and the history that are there.
        store.migrate().await.unwrap();
        assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());
        assert_eq!(store.totals().await.unwrap().files.total, 1);
        let since = repro_db::now() - chrono::Duration::hours(1);
        let registered = store.per_hour(Some(&name), "dataset", "register", since).await.unwrap();
        assert_eq!(registered.iter().map(|(_, n)| n).sum::<u64>(), 1);
        Migrator::down(store.connection(), None).await.unwrap();
        assert!(matches!(store.check_schema().await, Err(DbError::SchemaOutdated { .. })));
        store.migrate().await.unwrap();
        store.check_schema().await.unwrap();
        // The schema is whole again and empty.
        assert!(store.list(&Default::default()).await.unwrap().is_empty());
        store.register(&name, &[NewFile { lfn: "f".into(), size: 1 }], &Register::default(), "t").await.unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_the_password_and_given_up_on_soon() {
    let started = std::time::Instant::now();
    let err = Store::open_with_timeout(
        "mysql://root:hunter2@127.0.0.1:1/none",
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DbError::Unreachable { .. }), "{msg}");
    assert!(
        msg.starts_with("cannot reach the database at mysql://root@127.0.0.1:1/none: "),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"));
    // Not a timing assertion on speed, only that the timeout is honoured at all.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn a_bad_url_is_an_error_naming_it() {
    let err = Store::open("oracle://x").await.unwrap_err();
    assert!(
        err.to_string().contains("unknown scheme \"oracle\""),
        "{err}"
    );
    let err = Store::open("repro.db").await.unwrap_err();
    assert!(err.to_string().contains("expected sqlite://PATH"), "{err}");
}

/// Migration 14 rebuilds SQLite's checked tables with their checks as constraints: what
/// they held is kept, ids are never reused, foreign keys still hold and cascade, and the
/// checks still refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checks_move_into_their_tables_and_keep_every_row() {
    use crate::support::{Backend, TestDb};
    use sea_orm::{ConnectionTrait, Statement};
    let db = TestDb::new(Backend::Sqlite).await;
    let store = Store::open(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let triggers = async |store: &Store| {
        let sql = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'";
        let row = store
            .connection()
            .query_one_raw(Statement::from_string(store.backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    };
    let files = |n: usize| -> Vec<NewFile> {
        (0..n)
            .map(|i| NewFile {
                lfn: format!("f{i}"),
                size: i as u64 + 1,
            })
            .collect()
    };
    let (kept, gone) = (
        DatasetName::new("kept").unwrap(),
        DatasetName::new("gone").unwrap(),
    );
    store
        .register(&kept, &files(3), &Register::default(), "t")
        .await
        .unwrap();
    store
        .register(&gone, &files(4), &Register::default(), "t")
        .await
        .unwrap();
    // The last ids taken belong to a dataset that is deleted: never to be handed out again.
    store.delete(&gone).await.unwrap();
    let before = store.load(&kept).await.unwrap();
    // Back to before 14 (and every migration after it).
    let after_13 = Migrator::migrations().len() as u32 - 13;
    Migrator::down(store.connection(), Some(after_13))
        .await
        .unwrap();
    assert_eq!(
        triggers(&store).await,
        30,
        "migration 7's triggers, before 14"
    );
    let highest = *before.files.keys().max().unwrap();

    store.migrate().await.unwrap();
    store.check_schema().await.unwrap();
    assert_eq!(triggers(&store).await, 0);
    assert_eq!(store.load(&kept).await.unwrap(), before);
    assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());
    // The checks refuse as the triggers did, naming themselves.
    for (sql, check) in [
        (
            "UPDATE file_status SET state = 'eaten'",
            "ck_file_status_state",
        ),
        (
            "UPDATE file_status SET attempts = -1",
            "ck_file_status_attempts",
        ),
        (
            "UPDATE dataset_status SET lock_state = 'lock'",
            "ck_dataset_status_lock_state",
        ),
    ] {
        let err = store.execute_unprepared(sql).await.unwrap_err();
        assert!(err.to_string().contains(check), "{sql}: {err}");
    }
    assert_eq!(store.load(&kept).await.unwrap(), before);
    // New rows get ids past every id ever taken, deleted ones included.
    let again = DatasetName::new("again").unwrap();
    store
        .register(&again, &files(2), &Register::default(), "t")
        .await
        .unwrap();
    let lowest_new = *store
        .load(&again)
        .await
        .unwrap()
        .files
        .keys()
        .min()
        .unwrap();
    assert!(
        lowest_new.0 > highest.0 + 4,
        "{lowest_new:?} reuses an id of the deleted dataset"
    );
    // Deleting a dataset still takes its files with it (the foreign keys came through).
    store.delete(&kept).await.unwrap();
    let left = store
        .execute_unprepared(
            "DELETE FROM file_status WHERE dataset_id NOT IN (SELECT id FROM dataset_status)",
        )
        .await
        .unwrap();
    assert_eq!(left, 0, "files outlived their dataset");
    // And back before 14 again: the triggers return, the constraints go.
    Migrator::down(store.connection(), Some(after_13))
        .await
        .unwrap();
    assert_eq!(triggers(&store).await, 30);
    let err = store
        .execute_unprepared("UPDATE file_status SET state = 'eaten'")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("file_status.state must be one of"),
        "{err}"
    );
    store.migrate().await.unwrap();
    db.drop_db().await;
}
