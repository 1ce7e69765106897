//! A dataset's revision counts the writes that changed it; a tick's finding that there is
//! nothing to do holds only at the revision it was made at.

use repro_core::{DatasetName, Transition};
use repro_db::{DbError, NewFile, Register};

use crate::support::on_every_backend;

on_every_backend! {
    async fn a_settled_finding_holds_until_the_dataset_is_written(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("quiet").unwrap();
        let files = [NewFile::new("a.raw", 10), NewFile::new("b.raw", 20)];
        store.register(&name, &files, &Register::default(), "t").await.unwrap();
        let (_, r0) = store.load_revised(&name).await.unwrap();
        assert!(!store.is_settled(&name, "p|c1").await.unwrap(), "never settled");
        assert!(store.settle(&name, r0, "p|c1").await.unwrap());
        assert!(store.is_settled(&name, "p|c1").await.unwrap());
        assert!(!store.is_settled(&name, "p|c2").await.unwrap(), "another cursor");
        assert!(!store.is_settled(&name, "p").await.unwrap());

        // A state change (an operator's unlock) is a write: the finding is stale, and a
        // finding made before it cannot be recorded any more.
        let moved = store.load_dataset(&name).await.unwrap().take(Transition::Unlock).unwrap();
        store.save(moved, "alice").await.unwrap();
        assert!(!store.is_settled(&name, "p|c1").await.unwrap());
        assert!(!store.settle(&name, r0, "p|c1").await.unwrap(), "made before the unlock");
        assert!(!store.is_settled(&name, "p|c1").await.unwrap());
        let (_, r1) = store.load_revised(&name).await.unwrap();
        assert!(r1 > r0);
        assert!(store.settle(&name, r1, "p|c1").await.unwrap());
        assert!(store.is_settled(&name, "p|c1").await.unwrap());

        // So is a change of a setting (the priority decides who gets budget first).
        store.set_priority(&name, 5, "bob", None).await.unwrap();
        assert!(!store.is_settled(&name, "p|c1").await.unwrap());
        let (_, r2) = store.load_revised(&name).await.unwrap();
        assert!(r2 > r1, "{r2:?} after {r1:?}");
        assert!(store.settle(&name, r2, "p|c1").await.unwrap());

        // What a check would poll, counted without loading: the staging files, none
        // while the dataset is locked.
        let plan = repro_core::plan::plan(&store.load(&name).await.unwrap(), &repro_core::Policy::default());
        store.apply(&name, &plan.changes, "t").await.unwrap();
        assert_eq!(store.polls_due(&name).await.unwrap(), 2);
        let moved = store.load_dataset(&name).await.unwrap().take(Transition::Lock).unwrap();
        store.save(moved, "alice").await.unwrap();
        assert_eq!(store.polls_due(&name).await.unwrap(), 0);
        assert!(repro_core::plan::polls(&store.load(&name).await.unwrap()).is_empty());

        let unknown = DatasetName::new("nobody").unwrap();
        assert!(matches!(store.is_settled(&unknown, "p|c1").await, Err(DbError::NotFound(_))));
        assert!(matches!(store.polls_due(&unknown).await, Err(DbError::NotFound(_))));
        assert!(!store.settle(&unknown, r1, "p|c1").await.unwrap());
    }
}
