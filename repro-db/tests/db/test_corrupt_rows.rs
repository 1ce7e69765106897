//! Rows that do not fit the lifecycle are clear errors naming the row, never a panic and
//! never silently fixed.

use repro_core::DatasetName;
use repro_db::{DbError, NewFile, Register};

use crate::support::{TestDb, on_every_backend};

/// A store whose database has no checks of its own (rows from before the migration that
/// added them, or a tool that dropped them): the converter is the last line.
async fn without_checks(db: &TestDb) -> repro_db::Store {
    let store = repro_db::Store::open(&db.url).await.unwrap();
    // A corrupt row left by an earlier call would stop the checks from being added again.
    store
        .execute_unprepared("DELETE FROM dataset_status")
        .await
        .ok();
    store.migrate().await.unwrap();
    // Remove the checks, keeping every other migration (undoing the checks' migration
    // would undo every later one too). An earlier call in the same test removed them
    // already: a check that is not there is not an error here.
    for sql in migration::check_statements(store.backend(), false) {
        store.execute_unprepared(&sql).await.ok();
    }
    store
}

async fn corrupt_and_load(db: &TestDb, sql: &str) -> DbError {
    let store = without_checks(db).await;
    let name = DatasetName::new("bad.row").unwrap();
    let files = [
        NewFile {
            lfn: "a".into(),
            size: 1,
        },
        NewFile {
            lfn: "b".into(),
            size: 2,
        },
    ];
    store
        .register(&name, &files, &Register::default(), "t")
        .await
        .unwrap();
    store.execute_unprepared(sql).await.unwrap();
    let err = store.load(&name).await.unwrap_err();
    // Nothing was repaired: the row is still as corrupt as it was.
    assert!(store.load(&name).await.is_err());
    err
}

on_every_backend! {
    async fn an_unknown_state_word_names_the_table_row_and_word(db: &TestDb) {
        let err = corrupt_and_load(db, "UPDATE dataset_status SET reco_state = 'DONE-ISH'").await;
        let msg = err.to_string();
        assert!(matches!(err, DbError::CorruptRow { table: "dataset_status", .. }), "{msg}");
        assert!(msg.contains("\"DONE-ISH\" is not a reco state"), "{msg}");
    }

    async fn phase_columns_that_contradict_the_chain_are_refused(db: &TestDb) {
        let err = corrupt_and_load(db, "UPDATE dataset_status SET reco_state = 'RUNNING'").await;
        let msg = err.to_string();
        assert!(msg.starts_with("corrupt row in dataset_status (id "), "{msg}");
        assert!(msg.contains("before prestage reached PRESTAGE"), "{msg}");
    }

    async fn a_corrupt_file_row_names_the_file(db: &TestDb) {
        let err = corrupt_and_load(db, "UPDATE file_status SET state = 'eaten' WHERE lfn = 'b'").await;
        assert!(matches!(&err, DbError::CorruptRow { table: "file_status", .. }), "{err}");
        assert!(err.to_string().contains("\"eaten\" is not a file state"), "{err}");
        let err = corrupt_and_load(db, "UPDATE file_status SET state = 'reconstructed'").await;
        assert!(err.to_string().contains("no TMB file recorded"), "{err}");
        let err = corrupt_and_load(db, "UPDATE file_status SET attempts = -3").await;
        assert!(err.to_string().contains("attempts is negative (-3)"), "{err}");
    }

    async fn summaries_refuse_corrupt_rows_too(db: &TestDb) {
        let store = without_checks(db).await;
        let name = DatasetName::new("bad.list").unwrap();
        store.register(&name, &[NewFile { lfn: "a".into(), size: 1 }], &Register::default(), "t").await.unwrap();
        store.execute_unprepared("UPDATE dataset_status SET lock_state = 'lock'").await.unwrap();
        let err = store.list(&Default::default()).await.unwrap_err();
        assert!(err.to_string().contains("\"lock\" is not a lock state"), "{err}");
    }
}
