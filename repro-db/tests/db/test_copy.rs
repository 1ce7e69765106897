//! A campaign copied as it stands (what `repro simulate` plays forward): every dataset,
//! file, group and job the same in the copy, leases and waits left behind.

use std::time::Duration;

use repro_core::{DatasetName, Outcome, Policy, SampleName, plan::plan};
use repro_db::{ListFilter, NewFile, Register, Store};

use crate::support::on_every_backend;

on_every_backend! {
    async fn a_campaign_is_copied_as_it_stands_without_its_leases(db: &TestDb) {
        let store = db.store().await;
        let a = DatasetName::new("p17.a").unwrap();
        let b = DatasetName::new("p17.b").unwrap();
        let files = |n: u64| -> Vec<NewFile> {
            (0..n).map(|i| NewFile::new(format!("/raw/{i}"), 1000 + i)).collect()
        };
        let opts = Register {
            unlock: true,
            site: Some("fnal".into()),
            sample: Some(SampleName::new("p17").unwrap()),
            priority: 3,
        };
        store.register(&a, &files(5), &opts, "t").await.unwrap();
        store.register(&b, &files(3), &Register::default(), "t").await.unwrap();
        // a: staged, then reco jobs reserved and one of them submitted.
        let policy = Policy::default();
        let view = store.load(&a).await.unwrap();
        store.apply(&a, &plan(&view, &policy).changes, "t").await.unwrap();
        let mut view = store.load(&a).await.unwrap();
        let ids: Vec<_> = view.files.keys().copied().collect();
        for file in ids {
            let changes = repro_core::outcome::record(&view, &Outcome::Staged { file }).unwrap();
            store.apply(&a, &changes, "t").await.unwrap();
            view.apply(&changes).unwrap();
        }
        let p = plan(&view, &policy);
        store.apply(&a, &p.changes, "t").await.unwrap();
        let view = store.load(&a).await.unwrap();
        let job = *view.jobs.keys().next().expect("reco jobs reserved");
        let submitted = Outcome::Submitted { job, batch_id: "4711".into() };
        store.apply(&a, &repro_core::outcome::record(&view, &submitted).unwrap(), "t").await.unwrap();
        store
            .set_waiting(&a, Some("waiting: 2 files for reco jobs in flight"))
            .await
            .unwrap();
        store.claim(&a, "host:1", Duration::from_secs(600), repro_db::now()).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let copy = Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display()))
            .await
            .unwrap();
        copy.migrate().await.unwrap();
        let rows = store.copy_campaign_into(&copy).await.unwrap();
        // 2 datasets, 8 files, 5 reco jobs.
        assert_eq!(rows, 15);
        for name in [&a, &b] {
            assert_eq!(copy.load(name).await.unwrap(), store.load(name).await.unwrap(), "{name}");
        }
        let (live, copied) = (
            store.list(&ListFilter::default()).await.unwrap(),
            copy.list(&ListFilter::default()).await.unwrap(),
        );
        assert_eq!(copied.len(), 2);
        for (l, c) in live.iter().zip(&copied) {
            assert_eq!((&l.name, l.status, &l.site, &l.sample, l.priority), (&c.name, c.status, &c.site, &c.sample, c.priority));
            assert_eq!(l.files, c.files);
            assert_eq!(c.lease, None, "nobody holds anything in the copy");
            assert_eq!(c.waiting, None);
        }
        assert!(live[0].lease.is_some() && live[0].waiting.is_some(), "the live database keeps them");
        // The copy is a store like any other: new rows take ids after the copied ones.
        let c = DatasetName::new("p17.c").unwrap();
        copy.register(&c, &files(2), &Register::unlocked(), "sim").await.unwrap();
        assert_eq!(copy.load(&c).await.unwrap().files.len(), 2);
        assert_eq!(copy.load(&a).await.unwrap(), store.load(&a).await.unwrap());
    }
}
