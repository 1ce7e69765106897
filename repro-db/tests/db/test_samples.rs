//! Samples and priorities: what a dataset belongs to and the order in which it gets work.

use repro_core::file::FileState;
use repro_core::{DatasetName, SampleName};
use repro_db::{DbError, ListFilter, NewFile, Register};

use crate::support::on_every_backend;

fn files(n: usize) -> Vec<NewFile> {
    (0..n)
        .map(|i| NewFile {
            lfn: format!("raw_{i}"),
            size: 10,
        })
        .collect()
}

fn names(list: &[repro_db::DatasetSummary]) -> Vec<&str> {
    list.iter().map(|d| d.name.as_str()).collect()
}

on_every_backend! {
    async fn datasets_are_listed_and_summed_per_sample(db: &TestDb) {
        let store = db.store().await;
        let wz = SampleName::new("p17.wz").unwrap();
        store.register(&DatasetName::new("early").unwrap(), &files(2), &Register::default(), "t").await.unwrap();
        assert_eq!(store.samples(None).await.unwrap(), [], "no summary while no dataset is in a sample");
        store.delete(&DatasetName::new("early").unwrap()).await.unwrap();
        let top = SampleName::new("p17.top").unwrap();
        for (n, sample, unlock, count) in [
            ("w1", Some(&wz), true, 3),
            ("w2", Some(&wz), false, 4),
            ("t1", Some(&top), true, 5),
            ("loose", None, true, 1),
        ] {
            let opts = Register { unlock, sample: sample.cloned(), ..Register::default() };
            store.register(&DatasetName::new(n).unwrap(), &files(count), &opts, "t").await.unwrap();
        }
        let only = store.list(&ListFilter { sample: Some(wz.clone()), ..Default::default() }).await.unwrap();
        assert_eq!(names(&only), ["w1", "w2"]);
        assert!(only.iter().all(|d| d.sample.as_ref() == Some(&wz)));

        let per = store.samples(None).await.unwrap();
        let samples: Vec<Option<&str>> = per.iter().map(|s| s.sample.as_ref().map(SampleName::as_str)).collect();
        assert_eq!(samples, [Some("p17.top"), Some("p17.wz"), None], "by name, the datasets in none last");
        let w = &per[1];
        assert_eq!((w.datasets, w.locked, w.cleaned, w.failed), (2, 1, 0, 0));
        assert_eq!(w.files.total, 7);
        assert_eq!(w.files.get(FileState::Registered), 7);
        assert_eq!(per[2].files.total, 1);

        // Moving a dataset to another sample, and out of any, is in its history.
        let w2 = DatasetName::new("w2").unwrap();
        store.set_sample(&w2, Some(&top), "alice", Some("belongs with top")).await.unwrap();
        store.set_sample(&w2, None, "bob", None).await.unwrap();
        assert_eq!(store.summary(&w2).await.unwrap().sample, None);
        let h = store.history(&w2, Some("dataset")).await.unwrap();
        let moves: Vec<(&str, &str, &str, &str)> = h.iter()
            .filter(|e| e.via == "set_sample")
            .map(|e| (e.from.as_str(), e.to.as_str(), e.actor.as_str(), e.reason.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(moves, [("p17.wz", "p17.top", "alice", "belongs with top"), ("p17.top", "-", "bob", "")]);
        let missing = DatasetName::new("nope").unwrap();
        assert!(matches!(store.set_sample(&missing, Some(&top), "t", None).await, Err(DbError::NotFound(_))));
    }

    async fn work_goes_to_the_highest_priority_then_the_oldest(db: &TestDb) {
        let store = db.store().await;
        for (n, priority) in [("old", 0), ("urgent", 5), ("newer", 0), ("later", -1), ("also_urgent", 5)] {
            let opts = Register { unlock: true, priority, ..Register::default() };
            store.register(&DatasetName::new(n).unwrap(), &files(1), &opts, "t").await.unwrap();
        }
        let order = |store: repro_db::Store| async move {
            let l = store.list(&ListFilter { by_priority: true, active_only: true, ..Default::default() }).await.unwrap();
            names(&l).into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(order(store.clone()).await, ["urgent", "also_urgent", "old", "newer", "later"]);
        let later = DatasetName::new("later").unwrap();
        store.set_priority(&later, 9, "carol", Some("the conference")).await.unwrap();
        assert_eq!(order(store.clone()).await, ["later", "urgent", "also_urgent", "old", "newer"]);
        assert_eq!(store.summary(&later).await.unwrap().priority, 9);
        let h = store.history(&later, Some("dataset")).await.unwrap();
        let last = h.iter().rfind(|e| e.via == "set_priority").unwrap();
        assert_eq!((last.from.as_str(), last.to.as_str(), last.actor.as_str()), ("-1", "9", "carol"));
        // By name stays the default.
        let by_name = store.list(&ListFilter::default()).await.unwrap();
        assert_eq!(names(&by_name), ["also_urgent", "later", "newer", "old", "urgent"]);
    }

    async fn a_corrupt_sample_name_is_a_corrupt_row(db: &TestDb) {
        let store = db.store().await;
        let n = DatasetName::new("odd").unwrap();
        store.register(&n, &files(1), &Register::default(), "t").await.unwrap();
        store.execute_unprepared("UPDATE dataset_status SET sample = 'has space' WHERE name = 'odd'").await.unwrap();
        let err = store.summary(&n).await.unwrap_err();
        assert!(matches!(err, DbError::CorruptRow { table: "dataset_status", .. }), "{err}");
        assert!(err.to_string().contains("sample name \"has space\""), "{err}");
    }
}
