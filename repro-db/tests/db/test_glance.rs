//! What a person looks at first (`dataset show`, the dataset's page) is read without the
//! dataset's files: counts, merge groups, what failed for good, and pages of files and jobs.

use repro_core::Change;
use repro_core::file::{FileEvent, FileState};
use repro_core::retry::{Backoff, Backoffs, schedule};

use crate::support::on_every_backend;

on_every_backend! {
    async fn a_glance_holds_what_failed_for_good_and_pages_hold_the_rest(db: &TestDb) {
        let store = db.store().await;
        // Files 1 and 2 fail for good, file 3 fails and waits, the rest are staging.
        let (name, mut view) = crate::support::staging(&store, "glance", 6).await;
        let ids: Vec<_> = view.files.keys().copied().collect();
        let mut changes: Vec<Change> = ids[..3]
            .iter()
            .map(|id| Change::file(&view.files[id], FileEvent::StageFail).unwrap().with_error("tape"))
            .collect();
        let backoffs = Backoffs {
            all: Backoff { first_delay_s: 600, ..Backoff::default() },
            phase: Default::default(),
        };
        schedule(&view, &mut changes, &backoffs, 1_000);
        view.apply(&changes).unwrap();
        store.apply(&name, &changes, "t").await.unwrap();
        let give_up: Vec<Change> = ids[..2]
            .iter()
            .map(|id| Change::file(&view.files[id], FileEvent::GiveUp).unwrap())
            .collect();
        store.apply(&name, &give_up, "t").await.unwrap();

        let g = store.glance(&name, 1_000, 20).await.unwrap();
        assert_eq!(g.summary.files.total, 6);
        assert_eq!(g.summary.files.get(FileState::Staging), 3);
        let held: Vec<_> = g.view.files.keys().copied().collect();
        assert_eq!(held, ids[..2], "only the files failed for good are read");
        assert!(g.view.files.values().all(|f| f.state == FileState::StageFailedForGood));
        assert_eq!(g.waiting, Some((1, 1_600)), "file 3 waits ten minutes");
        assert_eq!(store.glance(&name, 1_600, 20).await.unwrap().waiting, None);
        assert!(g.jobs.is_empty() && g.view.groups.is_empty());

        let page = store.files_page(&name, None, 2, 2).await.unwrap();
        assert_eq!(page.files.keys().copied().collect::<Vec<_>>(), ids[2..4]);
        let staging = store.files_page(&name, Some(FileState::Staging), 0, 100).await.unwrap();
        assert_eq!(staging.files.keys().copied().collect::<Vec<_>>(), ids[3..]);
        assert!(store.jobs_page(&name, 0, 10).await.unwrap().is_empty());
    }
}
