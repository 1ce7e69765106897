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

/// Runs `sql`, which breaks a check, past the checks. On SQLite they are constraints of
/// the tables (migration 14), which cannot be dropped, only ignored by the connection that
/// writes: one call, so one connection.
async fn corrupt(store: &repro_db::Store, sql: &str) {
    if store.backend() == sea_orm::DbBackend::Sqlite {
        store
            .execute_unprepared(&format!(
                "PRAGMA ignore_check_constraints = ON; {sql}; PRAGMA ignore_check_constraints = OFF"
            ))
            .await
            .unwrap();
    } else {
        store.execute_unprepared(sql).await.unwrap();
    }
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
    corrupt(&store, sql).await;
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
        corrupt(&store, "UPDATE dataset_status SET lock_state = 'lock'").await;
        let err = store.list(&Default::default()).await.unwrap_err();
        assert!(err.to_string().contains("\"lock\" is not a lock state"), "{err}");
    }
}

on_every_backend! {
    async fn a_bulk_history_row_whose_ids_do_not_read_names_the_row(db: &TestDb) {
        let store = repro_db::Store::open(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let name = DatasetName::new("bad.history").unwrap();
        store.delete(&name).await.ok();
        let files = [NewFile { lfn: "a".into(), size: 1 }, NewFile { lfn: "b".into(), size: 2 }];
        store.register(&name, &files, &Register::default(), "t").await.unwrap();
        for (n, ids, reasons, why) in [
            ("3", "'7-8'", "NULL", "holds 2 ids, the row says 3"),
            ("2", "'8-7'", "NULL", "runs backwards"),
            ("2", "'x,9'", "NULL", "is not an id"),
            ("2", "NULL", "NULL", "n is 2 without ids"),
            ("2", "'1-900000000000'", "NULL", "more than the row's 2 ids"),
            ("2", "'7-8'", "'[\"one\"]'", "reasons lists 1 for 2 ids"),
            ("2", "'7-8'", "'{}'", "reasons is not a JSON list"),
        ] {
            store.execute_unprepared(&format!(
                "INSERT INTO transitions (dataset_id, entity, entity_id, from_state, to_state, via, actor, at, n, ids, reasons) \
                 SELECT id, 'file', 7, 'registered', 'staging', 'stage', 'hand', updated_at, {n}, {ids}, {reasons} \
                 FROM dataset_status WHERE name = 'bad.history'"
            )).await.unwrap();
            let err = store.history(&name, Some("file")).await.unwrap_err();
            assert!(matches!(err, DbError::CorruptRow { table: "transitions", .. }), "{err}");
            assert!(err.to_string().contains(why), "{why}: {err}");
            store.execute_unprepared("DELETE FROM transitions WHERE actor = 'hand'").await.unwrap();
        }
        // What the hand left is gone, and the rest reads again.
        assert!(store.history(&name, None).await.is_ok());
    }
}

on_every_backend! {
    async fn a_corrupt_outage_names_the_row_and_what_is_wrong(db: &TestDb) {
        let err = corrupt_and_load(db, "UPDATE dataset_status SET outages = 'declare 10 soon 1 x'").await;
        let msg = err.to_string();
        assert!(msg.starts_with("corrupt row in dataset_status (id "), "{msg}");
        assert!(msg.contains("outages") && msg.contains("soon"), "{msg}");
    }
}
