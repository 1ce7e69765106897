//! Set-based work: registering and moving many files.

use repro_core::file::{FileEvent, FileState};
use repro_core::{Change, DatasetName};
use repro_db::{DbError, ListFilter, NewFile, Register};

use crate::support::on_every_backend;

fn files(n: usize) -> Vec<NewFile> {
    (0..n)
        .map(|i| NewFile {
            lfn: format!("/store/raw/run{:03}/file_{i:06}.raw", i % 500),
            size: 2_000_000_000 + i as u64,
        })
        .collect()
}

on_every_backend! {
    async fn registering_100000_files_is_all_or_nothing(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("big").unwrap();
        store.register(&name, &files(100_000), &Register::default(), "t").await.unwrap();
        let s = store.summary(&name).await.unwrap();
        assert_eq!(s.files.total, 100_000);
        assert_eq!(s.files.get(FileState::Registered), 100_000);

        // A second dataset with one duplicated file registers nothing at all.
        let dup = DatasetName::new("dup").unwrap();
        let mut list = files(10);
        list.push(list[3].clone());
        let err = store.register(&dup, &list, &Register::default(), "t").await.unwrap_err();
        assert!(matches!(err, DbError::DuplicateFile { .. }), "{err}");
        assert!(err.to_string().contains("file_000003.raw"), "{err}");
        assert!(matches!(store.summary(&dup).await, Err(DbError::NotFound(_))));
        // The same name twice is refused and the first stays as it was.
        let err = store.register(&name, &files(3), &Register::default(), "t").await.unwrap_err();
        assert!(matches!(err, DbError::Exists(_)), "{err}");
        assert_eq!(store.summary(&name).await.unwrap().files.total, 100_000);
    }

    async fn moving_thousands_of_files_is_one_guarded_batch(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("move").unwrap();
        store.register(&name, &files(12_000), &Register { unlock: true, site: Some("fnal".into()), ..Register::default() }, "t").await.unwrap();
        let view = store.load(&name).await.unwrap();
        let changes: Vec<Change> = view.files.values().map(|f| Change::file(f, FileEvent::RequestStage).unwrap()).collect();
        store.apply(&name, &changes, "bulk").await.unwrap();
        let s = store.summary(&name).await.unwrap();
        assert_eq!(s.files.get(FileState::Staging), 12_000);
        // One file moved by someone else: the whole batch is refused, nothing changes.
        let view = store.load(&name).await.unwrap();
        let mut changes: Vec<Change> = view.files.values().map(|f| Change::file(f, FileEvent::StageDone).unwrap()).collect();
        let first = *view.files.keys().next().unwrap();
        store.apply(&name, &changes[..1], "other").await.unwrap();
        changes.truncate(12_000);
        let err = store.apply(&name, &changes, "bulk").await.unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("expected staging after 1 attempts, found staged after 0 attempts"), "{err}");
        let s = store.summary(&name).await.unwrap();
        assert_eq!(s.files.get(FileState::Staging), 11_999);
        assert_eq!(store.load(&name).await.unwrap().files[&first].state, FileState::Staged);
    }

    async fn listing_counts_files_per_state_and_filters(db: &TestDb) {
        let store = db.store().await;
        for (n, site) in [("a1", "prague"), ("a2", "fnal"), ("a3", "prague")] {
            let name = DatasetName::new(n).unwrap();
            store.register(&name, &files(5), &Register { unlock: n != "a2", site: Some(site.into()), ..Register::default() }, "t").await.unwrap();
        }
        let all = store.list(&ListFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["a1", "a2", "a3"]);
        assert!(all.iter().all(|d| d.files.total == 5));
        let prague = store.list(&ListFilter { site: Some("prague".into()), ..Default::default() }).await.unwrap();
        assert_eq!(prague.len(), 2);
        let locked = store.list(&ListFilter { state_word: Some("LOCK".into()), ..Default::default() }).await.unwrap();
        assert_eq!(locked.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["a2"]);
        let page = store.list(&ListFilter { offset: 1, limit: Some(1), ..Default::default() }).await.unwrap();
        assert_eq!(page[0].name.as_str(), "a2");
        assert_eq!(store.count(&ListFilter { active_only: true, ..Default::default() }).await.unwrap(), 2);
    }
}
