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
