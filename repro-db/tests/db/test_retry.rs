//! When a failed step may be tried again is stored with its row: what the core scheduled
//! is what the next load finds, on every database, and a success or a re-arm clears it.

use repro_core::Change;
use repro_core::file::{FileEvent, FileState};
use repro_core::retry::{Backoff, Backoffs, Retry, schedule};

use crate::support::on_every_backend;

on_every_backend! {
    async fn retry_times_are_stored_with_the_failure_and_cleared_by_success(db: &TestDb) {
        let store = db.store().await;
        let (name, mut view) = crate::support::staging(&store, "waits", 3).await;
        assert!(view.files.values().all(|f| f.state == FileState::Staging));
        // Two fail (the tape is busy), one is staged.
        let backoffs = Backoffs {
            all: Backoff { first_delay_s: 600, jitter_percent: 20, ..Backoff::default() },
            phase: Default::default(),
        };
        let mut changes: Vec<Change> = view
            .files
            .values()
            .enumerate()
            .map(|(i, f)| {
                let event = if i < 2 { FileEvent::StageFail } else { FileEvent::StageDone };
                Change::file(f, event).unwrap().with_error("tape busy")
            })
            .collect();
        schedule(&view, &mut changes, &backoffs, 1_000_000);
        Change::batch_order(&mut changes);
        store.apply(&name, &changes, "t").await.unwrap();
        view.apply(&changes).unwrap();
        let stored = store.load(&name).await.unwrap();
        assert_eq!(stored.files, view.files, "what the core scheduled is stored");
        let waiting: Vec<Retry> = stored.files.values().filter_map(|f| f.retry).collect();
        assert_eq!(waiting.len(), 2);
        for r in &waiting {
            assert_eq!(r.since, 1_000_000);
            assert!((1_000_480..=1_000_720).contains(&r.at), "{r:?}");
        }
        // An operator's re-arm clears the wait: tried at once.
        let rearm: Vec<Change> = stored
            .files
            .values()
            .filter(|f| f.state == FileState::StageFailed)
            .filter_map(|f| Change::file(f, FileEvent::Rearm))
            .collect();
        store.apply(&name, &rearm, "alice").await.unwrap();
        let after = store.load(&name).await.unwrap();
        assert!(after.files.values().all(|f| f.retry.is_none()), "{:?}", after.files);
    }
}

on_every_backend! {
    async fn an_outage_and_the_attempts_it_gives_back_are_stored_as_the_core_decided(db: &TestDb) {
        use repro_core::outage::{Breaker, Step, trip};
        let store = db.store().await;
        // Every request refused at once: the tape system is out.
        let (name, mut view) = crate::support::staging(&store, "out", 4).await;
        let mut changes: Vec<Change> = view
            .files
            .values()
            .map(|f| Change::file(f, FileEvent::StageFail).unwrap().with_error("transient: busy"))
            .collect();
        view.apply(&changes).unwrap();
        let breaker = Breaker { failures: 3, first_delay_s: 600, max_delay_s: 3600 };
        let tripped = trip(&view, &changes, &breaker, 1_000_000);
        view.apply(&tripped).unwrap();
        changes.extend(tripped);
        Change::batch_order(&mut changes);
        store.apply(&name, &changes, "t").await.unwrap();
        let stored = store.load(&name).await.unwrap();
        assert_eq!(stored.files, view.files, "the excuses are stored as the core made them");
        assert!(stored.files.values().all(|f| f.tried() == 0), "{:?}", stored.files);
        assert_eq!(stored.outages, view.outages);
        assert_eq!(stored.out(Step::Stage, 1_000_000).map(|o| o.until), Some(1_000_600));
        let listed = store.summary(&name).await.unwrap();
        assert_eq!(listed.outages, view.outages, "the list shows it without loading files");
    }
}
