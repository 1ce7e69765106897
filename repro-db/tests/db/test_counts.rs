//! The counts tables: what the page and `/metrics` read instead of counting every file and
//! history row. Every write keeps them (the lifecycle test checks them against the rows at
//! each step); here, what they answer, and a hand edit found and mended.

use repro_core::file::FileState;
use repro_core::{DatasetName, Policy, SampleName};
use repro_db::{NewFile, Register};

use crate::support::on_every_backend;
use crate::test_lifecycle::drive_to_cleaned;

fn files(n: usize) -> Vec<NewFile> {
    (0..n)
        .map(|i| NewFile {
            lfn: format!("raw_{i}"),
            size: 100,
        })
        .collect()
}

on_every_backend! {
    async fn totals_samples_and_hours_come_from_the_counts_and_a_hand_edit_is_mended(db: &TestDb) {
        let store = db.store().await;
        let wz = SampleName::new("p17.wz").unwrap();
        let (done, waiting) = (DatasetName::new("done").unwrap(), DatasetName::new("waiting").unwrap());
        let opts = Register { unlock: true, sample: Some(wz.clone()), ..Register::default() };
        store.register(&done, &files(7), &opts, "t").await.unwrap();
        store.register(&waiting, &files(5), &Register::default(), "t").await.unwrap();
        let since = repro_db::now() - chrono::Duration::hours(1);
        drive_to_cleaned(&store, &done, &Policy::default()).await;

        let t = store.totals().await.unwrap();
        assert_eq!((t.files.total, t.files.get(FileState::Cleaned), t.files.get(FileState::Registered)), (12, 7, 5));
        assert_eq!(t.reco_jobs.get("done"), Some(&7), "{:?}", t.reco_jobs);
        assert_eq!(t.merge_jobs.values().sum::<u64>(), 1, "{:?}", t.merge_jobs);
        let hours = |d: Option<&DatasetName>, via: &'static str| {
            let store = store.clone();
            let d = d.cloned();
            async move {
                let per = store.per_hour(d.as_ref(), "file", via, since).await.unwrap();
                per.iter().map(|(_, n)| n).sum::<u64>()
            }
        };
        assert_eq!(hours(None, "reco_done").await, 7);
        assert_eq!(hours(Some(&done), "clean").await, 7);
        assert_eq!(hours(Some(&waiting), "reco_done").await, 0);

        // Per sample, and after a move to another sample.
        let per = store.samples(None).await.unwrap();
        assert_eq!(per[0].sample.as_ref(), Some(&wz));
        assert_eq!((per[0].files.total, per[0].files.get(FileState::Cleaned)), (7, 7));
        assert_eq!(per[1].files.get(FileState::Registered), 5);
        store.set_sample(&waiting, Some(&wz), "t", None).await.unwrap();
        let per = store.samples(None).await.unwrap();
        assert_eq!(per.len(), 1, "every dataset is in p17.wz now: {per:?}");
        assert_eq!((per[0].datasets, per[0].files.total), (2, 12));
        assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());

        // A row changed behind repro's back is found, named, and mended.
        let moved = store.execute_unprepared("UPDATE file_status SET state = 'staged' WHERE lfn = 'raw_0' AND state = 'registered'").await.unwrap();
        assert_eq!(moved, 1);
        let drift = store.count_drift().await.unwrap();
        assert_eq!(drift.len(), 4, "{drift:?}");
        assert!(drift.iter().any(|d| d.contains("registered: 5 counted, 4 rows")), "{drift:?}");
        assert!(drift.iter().any(|d| d.contains("staged: 0 counted, 1 rows")), "{drift:?}");
        // The file's bytes went with it (100 bytes a file here).
        assert!(drift.iter().any(|d| d.contains("registered bytes: 500 counted, 400 rows")), "{drift:?}");
        assert!(drift.iter().any(|d| d.contains("staged bytes: 0 counted, 100 rows")), "{drift:?}");
        assert_eq!(store.recount().await.unwrap(), drift);
        assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());
        assert_eq!(store.totals().await.unwrap().files.get(FileState::Staged), 1);
        assert_eq!(hours(None, "reco_done").await, 7, "the hours are rebuilt from the history");

        // A deleted dataset takes its counts with it.
        store.delete(&done).await.unwrap();
        let t = store.totals().await.unwrap();
        assert_eq!((t.files.total, t.reco_jobs.values().sum::<u64>()), (5, 0));
        assert_eq!(hours(None, "reco_done").await, 0);
        assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());
    }
}
