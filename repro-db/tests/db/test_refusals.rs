//! Storage refuses what the lifecycle refuses, before it writes: hand-built changes that a
//! rule table does not have, closing transitions the files do not found, and (through the
//! database's own checks) SQL that writes a word outside the lifecycle's.

use migration::CHECKED;
use repro_core::file::{FileEvent, FileState};
use repro_core::group::GroupState;
use repro_core::job::JobState;
use repro_core::typed::{AnyDataset, Known};
use repro_core::{
    BrokenRule, Change, CleanupWord, DatasetName, LockWord, MergeWord, PrestageWord, RecoWord,
    Transition,
};
use repro_db::{DbError, NewFile, Register, Store};

use crate::support::on_every_backend;

async fn registered(store: &Store, name: &str, files: usize) -> DatasetName {
    let name = DatasetName::new(name).unwrap();
    let files: Vec<NewFile> = (0..files)
        .map(|i| NewFile {
            lfn: format!("raw_{i}"),
            size: 10,
        })
        .collect();
    let opts = Register {
        unlock: true,
        ..Register::default()
    };
    store.register(&name, &files, &opts, "t").await.unwrap();
    name
}

/// Every row of the database, as text, to show that a refused write changed none.
async fn snapshot(store: &Store, name: &DatasetName) -> String {
    let view = store.load(name).await.unwrap();
    let history = store.history(name, None).await.unwrap();
    format!("{view:?}\n{}", history.len())
}

/// A typed move of the dataset as stored: the only way to get a dataset change.
async fn typed_move(store: &Store, name: &DatasetName, via: Transition) -> Change {
    let loaded = store.load_dataset(name).await.unwrap();
    loaded.take(via).unwrap().into_changes().pop().unwrap()
}

on_every_backend! {
    async fn a_file_move_the_file_table_does_not_have_is_refused_and_nothing_is_written(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "forged.file", 3).await;
        let view = store.load(&name).await.unwrap();
        let id = *view.files.keys().next().unwrap();
        let before = snapshot(&store, &name).await;
        // A legal first change, then one that jumps a file from registered to cleaned.
        let legal = Change::file(&view.files[&id], FileEvent::RequestStage).unwrap();
        let other = *view.files.keys().nth(1).unwrap();
        let forged = Change::File {
            id: other,
            from: FileState::Registered,
            attempts: 0,
            event: FileEvent::Clean,
            to: FileState::Cleaned,
            error: None,
            tmb: None,
            retry: None,
        };
        let err = store.apply(&name, &[legal, forged], "mallory").await.unwrap_err();
        let DbError::Illegal(illegal) = &err else { panic!("not refused: {err:?}") };
        assert_eq!(illegal.index, 1);
        assert!(matches!(illegal.rule, BrokenRule::Entity(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!("refused before writing: change #1 (raw file {other} registered --clean--> cleaned) is refused: cannot clean raw file {other}: it is registered")
        );
        assert_eq!(snapshot(&store, &name).await, before);
        store.load(&name).await.unwrap();
    }

    async fn a_move_that_lies_about_where_its_table_ends_is_refused(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "forged.end", 1).await;
        let view = store.load(&name).await.unwrap();
        let f = view.files.values().next().unwrap();
        let mut c = Change::file(f, FileEvent::RequestStage).unwrap();
        if let Change::File { to, .. } = &mut c {
            *to = FileState::Staged;
        }
        let before = snapshot(&store, &name).await;
        let err = store.apply(&name, &[c], "mallory").await.unwrap_err();
        assert!(matches!(&err, DbError::Illegal(i) if matches!(i.rule, BrokenRule::WrongEnd { .. })), "{err}");
        assert_eq!(snapshot(&store, &name).await, before);
    }

    async fn a_closing_transition_the_files_do_not_found_is_refused(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "early.finish", 2).await;
        let start = typed_move(&store, &name, Transition::StartPrestage).await;
        store.apply(&name, &[start], "cron").await.unwrap();
        // Prestage RUNNING, both files still registered: finishing it is a legal edge of
        // the table but not founded on the files.
        let before = snapshot(&store, &name).await;
        let finish = typed_move(&store, &name, Transition::FinishPrestage).await;
        let err = store.apply(&name, &[finish], "mallory").await.unwrap_err();
        assert!(matches!(&err, DbError::Illegal(i) if matches!(i.rule, BrokenRule::Unmet(_))), "{err}");
        assert!(err.to_string().ends_with("finish_prestage requires every raw file staged or failed for good"), "{err}");
        assert_eq!(snapshot(&store, &name).await, before);
    }

    async fn a_typed_save_from_a_stale_load_is_a_conflict(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "stale.save", 1).await;
        let first = store.load_dataset(&name).await.unwrap();
        let second = store.load_dataset(&name).await.unwrap();
        let AnyDataset::Unlocked(Known::PrestagePending(d)) = first else { panic!("{first:?}") };
        store.save(d.start_prestage(), "cron").await.unwrap();
        let AnyDataset::Unlocked(Known::PrestagePending(d)) = second else { panic!("{second:?}") };
        let before = snapshot(&store, &name).await;
        let err = store.save(d.lock(), "alice").await.unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)), "{err}");
        assert_eq!(snapshot(&store, &name).await, before);
        let now = store.load_dataset(&name).await.unwrap();
        assert!(matches!(now, AnyDataset::Unlocked(Known::Prestaging(_))), "{now:?}");
    }

    async fn a_typed_operator_move_is_saved_with_its_reason(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "typed.lock", 1).await;
        let AnyDataset::Unlocked(k) = store.load_dataset(&name).await.unwrap() else { panic!() };
        let Known::PrestagePending(d) = k else { panic!() };
        store.save(d.because("tape drive down").lock(), "alice").await.unwrap();
        let h = store.history(&name, Some("dataset")).await.unwrap();
        let last = h.last().unwrap();
        assert_eq!((last.via.as_str(), last.actor.as_str()), ("lock", "alice"));
        assert_eq!(last.reason.as_deref(), Some("tape drive down"));
    }

    async fn the_database_refuses_sql_that_writes_a_word_outside_the_lifecycle(db: &TestDb) {
        let store = db.store().await;
        let name = registered(&store, "raw.sql", 2).await;
        store.apply(&name, &[typed_move(&store, &name, Transition::StartPrestage).await], "t").await.unwrap();
        let before = snapshot(&store, &name).await;
        for sql in [
            "UPDATE dataset_status SET lock_state = 'lock'",
            "UPDATE dataset_status SET prestage_state = 'DONE'",
            "UPDATE dataset_status SET reco_state = 'MERGED'",
            "UPDATE dataset_status SET merge_state = 'MERGED-DBUP'",
            "UPDATE dataset_status SET cleanup_state = 'CLEAN'",
            "UPDATE file_status SET state = 'eaten'",
            "UPDATE file_status SET attempts = -1",
            "INSERT INTO merge_group (dataset_id, group_no, state, attempts, attempt_base, n_files, bytes, updated_at) \
             SELECT id, 1, 'exploded', 0, 0, 1, 1, updated_at FROM dataset_status",
        ] {
            let r = store.execute_unprepared(sql).await;
            assert!(r.is_err(), "the database took {sql:?}");
        }
        assert_eq!(snapshot(&store, &name).await, before);
        // A word of the lifecycle goes through (the checks admit exactly the words).
        store.execute_unprepared("UPDATE file_status SET state = 'staging'").await.unwrap();
    }
}

#[test]
fn the_checked_words_are_exactly_the_cores_words() {
    fn words<T: ToString>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }
    let core: Vec<(&str, &str, Vec<String>)> = vec![
        ("dataset_status", "lock_state", words(LockWord::ALL)),
        ("dataset_status", "prestage_state", words(PrestageWord::ALL)),
        ("dataset_status", "reco_state", words(RecoWord::ALL)),
        ("dataset_status", "merge_state", words(MergeWord::ALL)),
        ("dataset_status", "cleanup_state", words(CleanupWord::ALL)),
        ("file_status", "state", words(FileState::ALL)),
        ("merge_group", "state", words(GroupState::ALL)),
        ("recojob_status", "state", words(JobState::ALL)),
        ("mergejob_status", "state", words(JobState::ALL)),
    ];
    let checked: Vec<(&str, &str, Vec<String>)> = CHECKED
        .iter()
        .map(|c| {
            (
                c.table,
                c.column,
                c.words.iter().map(|w| w.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        checked, core,
        "a state word changed in repro-core: add a migration that admits it"
    );
}
