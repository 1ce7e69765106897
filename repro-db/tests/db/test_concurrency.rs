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
        a.register(&name, &files, &Register { unlock: true, site: None, ..Register::default() }, "t").await.unwrap();
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

    async fn a_release_notes_what_waited_and_the_claim_reads_the_site(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("noted").unwrap();
        let reg = Register { site: Some("fnal".into()), ..Register::default() };
        store.register(&name, &[NewFile::new("f", 1)], &reg, "t").await.unwrap();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let ttl = Duration::from_secs(60);
        let waiting = async || {
            let list = store.list(&repro_db::ListFilter::default()).await.unwrap();
            list.into_iter().find(|d| d.name == name).unwrap().waiting
        };
        let a = store.claim(&name, "host-a:1", ttl, t0).await.unwrap();
        assert_eq!(a.site.as_deref(), Some("fnal"));
        store.release_noting(&a, Some(Some("waiting: 1 file for stage requests"))).await.unwrap();
        assert_eq!(waiting().await.as_deref(), Some("waiting: 1 file for stage requests"));
        // A release that says nothing (a failed run) leaves it; one that says nothing waits clears it.
        let a = store.claim(&name, "host-a:1", ttl, t0).await.unwrap();
        store.release_noting(&a, None).await.unwrap();
        assert_eq!(waiting().await.as_deref(), Some("waiting: 1 file for stage requests"));
        let a = store.claim(&name, "host-a:1", ttl, t0).await.unwrap();
        store.release_noting(&a, Some(None)).await.unwrap();
        assert_eq!(waiting().await, None);
        // A late release of a lease taken over writes nothing: what waits is the new holder's.
        let a = store.claim(&name, "host-a:1", ttl, t0).await.unwrap();
        let b = store.claim(&name, "host-b:2", ttl, t0 + chrono::Duration::seconds(61)).await.unwrap();
        store.release_noting(&a, Some(Some("stale"))).await.unwrap();
        assert_eq!(waiting().await, None);
        assert!(store.claim(&name, "host-c:3", ttl, t0 + chrono::Duration::seconds(62)).await.is_err(), "b still holds it");
        store.release_noting(&b, Some(Some("waiting: at fnal"))).await.unwrap();
        assert_eq!(waiting().await.as_deref(), Some("waiting: at fnal"));
    }

    async fn a_gone_holders_lease_is_taken_over_at_once_and_recorded(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("gone").unwrap();
        store.register(&name, &[NewFile::new("f", 1)], &Register::default(), "t").await.unwrap();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let ttl = Duration::from_secs(600);
        store.claim(&name, "here:41:7", ttl, t0).await.unwrap();
        // A live holder keeps it, whatever the claimant thinks of others.
        let alive = |h: &str| h != "here:41:7";
        let err = store.claim_or_take_over(&name, "here:42:9", ttl, t0, alive).await.unwrap_err();
        assert!(matches!(err, DbError::LeaseHeld { .. }), "{err}");
        // Gone: taken over long before the lease would expire.
        let dead = |h: &str| h == "here:41:7";
        let lease = store.claim_or_take_over(&name, "here:42:9", ttl, t0, dead).await.unwrap();
        assert_eq!(lease.owner, "here:42:9");
        // An expired lease taken over is recorded too.
        let later = t0 + chrono::Duration::seconds(601);
        store.claim(&name, "there:1:1", ttl, later).await.unwrap();
        let h = store.history(&name, Some("dataset")).await.unwrap();
        let takeovers: Vec<(&str, &str, Option<&str>)> = h
            .iter()
            .filter(|e| e.via == "take_over_lease")
            .map(|e| (e.from.as_str(), e.to.as_str(), e.reason.as_deref()))
            .collect();
        assert_eq!(takeovers.len(), 2, "{h:?}");
        assert_eq!(takeovers[0], ("lease here:41:7", "lease here:42:9", Some("here:41:7 is gone")));
        assert_eq!(takeovers[1].1, "lease there:1:1");
        assert!(takeovers[1].2.unwrap().starts_with("the lease of here:42:9 expired at "), "{:?}", takeovers[1]);
    }

    async fn a_stale_plan_is_refused_after_another_process_moved_on(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("stale").unwrap();
        store.register(&name, &[NewFile { lfn: "f".into(), size: 1 }], &Register { unlock: true, site: None, ..Register::default() }, "t").await.unwrap();
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
