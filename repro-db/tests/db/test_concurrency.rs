//! Several processes on one database: guarded writes and leases.

use std::time::Duration;

use repro_core::{DatasetName, Policy, plan};
use repro_db::{DbError, NewFile, Register, Store};

use crate::support::on_every_backend;

on_every_backend! {
    async fn two_connections_racing_one_transition_one_wins_one_conflicts(db: &TestDb) {
        let a = db.store().await;
        let b = Store::open(&db.url).await.unwrap();
        let name = DatasetName::new("race").unwrap();
        let files: Vec<NewFile> = (0..50).map(|i| NewFile { lfn: format!("f{i}"), size: 1 }).collect();
        a.register(&name, &files, &Register { unlock: true, site: None }, "t").await.unwrap();
        // Both processes read the same snapshot and decide the same thing.
        let view_a = a.load(&name).await.unwrap();
        let view_b = b.load(&name).await.unwrap();
        let plan_a = plan(&view_a, &Policy::default());
        let plan_b = plan(&view_b, &Policy::default());
        assert_eq!(plan_a, plan_b);
        let (ra, rb) = tokio::join!(a.apply(&name, &plan_a.changes, "a"), b.apply(&name, &plan_b.changes, "b"));
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "exactly one wins: {ra:?} / {rb:?}");
        let loser = if ra.is_err() { ra } else { rb };
        let err = loser.unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)), "the loser gets Conflict, got {err}");
        assert!(err.is_conflict());
        // The winner's changes are there exactly once: one transition, 50 stage requests.
        let reloaded = a.load(&name).await.unwrap();
        assert_eq!(reloaded.status.columns().prestage.to_string(), "RUNNING");
        assert!(reloaded.files.values().all(|f| f.attempts == 1));
        let h = a.history(&name, Some("dataset")).await.unwrap();
        assert_eq!(h.iter().filter(|e| e.via == "start_prestage").count(), 1);
        // The loser re-reads and finds nothing more to reserve.
        let again = plan(&reloaded, &Policy::default());
        assert!(again.actions.is_empty(), "{:?}", again.actions);
    }

    async fn a_lease_excludes_others_until_it_expires_then_is_taken_over(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("leased").unwrap();
        store.register(&name, &[NewFile { lfn: "f".into(), size: 1 }], &Register::default(), "t").await.unwrap();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let ttl = Duration::from_secs(60);
        let a = store.claim(&name, "host-a:1", ttl, t0).await.unwrap();
        // Renewal by the holder is fine.
        store.claim(&name, "host-a:1", ttl, t0 + chrono::Duration::seconds(5)).await.unwrap();
        match store.claim(&name, "host-b:2", ttl, t0 + chrono::Duration::seconds(30)).await {
            Err(DbError::LeaseHeld { owner, .. }) => assert_eq!(owner, "host-a:1"),
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
        // host-a crashed: once its lease is past, host-b takes over.
        let b = store.claim(&name, "host-b:2", ttl, t0 + chrono::Duration::seconds(66)).await.unwrap();
        // host-a's late release does not free host-b's lease.
        store.release(&a).await.unwrap();
        let err = store.claim(&name, "host-a:1", ttl, t0 + chrono::Duration::seconds(70)).await.unwrap_err();
        assert!(err.to_string().contains("being worked on by host-b:2"), "{err}");
        store.release(&b).await.unwrap();
        store.claim(&name, "host-a:1", ttl, t0 + chrono::Duration::seconds(71)).await.unwrap();
        let missing = DatasetName::new("nope").unwrap();
        assert!(matches!(store.claim(&missing, "x", ttl, t0).await, Err(DbError::NotFound(_))));
    }

    async fn a_stale_plan_is_refused_after_another_process_moved_on(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("stale").unwrap();
        store.register(&name, &[NewFile { lfn: "f".into(), size: 1 }], &Register { unlock: true, site: None }, "t").await.unwrap();
        let old = store.load(&name).await.unwrap();
        let p = plan(&old, &Policy::default());
        store.apply(&name, &p.changes, "first").await.unwrap();
        // Applying the same decisions again writes nothing.
        let before = store.load(&name).await.unwrap();
        let err = store.apply(&name, &p.changes, "second").await.unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)), "{err}");
        assert_eq!(store.load(&name).await.unwrap(), before);
    }
}
