//! Limits per site, checked in the write's own transaction: a batch that would take a site
//! past a limit is refused whole, and two processes racing for the last slot cannot both
//! take it.

use repro_core::{DatasetName, Limits, SiteLimits};
use repro_db::{DbError, NewFile, Register, Store};

use crate::support::on_every_backend;

fn files(n: usize) -> Vec<NewFile> {
    (0..n)
        .map(|i| NewFile {
            lfn: format!("raw_{i}"),
            size: 100,
        })
        .collect()
}

/// A dataset at fnal with `n` files, and the plan that starts its prestage.
async fn ready(store: &Store, name: &str, n: usize) -> (DatasetName, Vec<repro_core::Change>) {
    ready_at(store, name, n, "fnal").await
}

/// A dataset at `site` with `n` files, and the plan that starts its prestage.
async fn ready_at(
    store: &Store,
    name: &str,
    n: usize,
    site: &str,
) -> (DatasetName, Vec<repro_core::Change>) {
    let name = DatasetName::new(name).unwrap();
    let opts = Register {
        unlock: true,
        site: Some(site.into()),
        ..Register::default()
    };
    store.register(&name, &files(n), &opts, "t").await.unwrap();
    let view = store.load(&name).await.unwrap();
    let plan = repro_core::plan(&view, &repro_core::Policy::default());
    (name, plan.changes)
}

fn limited(stage_requests: u64) -> SiteLimits {
    let mut l = SiteLimits::default();
    l.sites.insert(
        "fnal".into(),
        Limits {
            stage_requests: Some(stage_requests),
            ..Limits::default()
        },
    );
    l
}

on_every_backend! {
    async fn a_batch_past_a_limit_is_refused_whole(db: &TestDb) {
        let store = db.store().await.with_limits(limited(3));
        let (a, plan_a) = ready(&store, "a", 2).await;
        let (b, plan_b) = ready(&store, "b", 2).await;
        store.apply(&a, &plan_a, "t").await.unwrap();
        assert_eq!(store.usage(Some("fnal")).await.unwrap().stage_requests, 2);
        let err = store.apply(&b, &plan_b, "t").await.unwrap_err();
        assert!(matches!(err, DbError::OverBudget { limit: repro_core::Limit::StageRequests, used: 4, max: 3, .. }), "{err}");
        assert_eq!(err.to_string(), "over budget at fnal: stage requests would be 4, the limit is 3; nothing was written");
        let s = store.summary(&b).await.unwrap();
        assert_eq!(s.status.columns().prestage.as_str(), "NOT DONE", "nothing of the refused batch was written");
        // Another site, or no limits, is not held back by fnal's.
        let free = db.store().await;
        free.apply(&b, &plan_b, "t").await.unwrap();
        assert_eq!(store.usage(Some("fnal")).await.unwrap().stage_requests, 4);
        assert_eq!(store.usage(None).await.unwrap(), repro_core::Usage::default());
    }

    async fn racing_writers_cannot_both_take_the_last_slot(db: &TestDb) {
        let store = db.store().await.with_limits(limited(3));
        let (a, plan_a) = ready(&store, "a", 2).await;
        store.apply(&a, &plan_a, "t").await.unwrap();
        let mut racers = Vec::new();
        for i in 0..4 {
            let (n, plan) = ready(&store, &format!("r{i}"), 1).await;
            let s = store.clone();
            racers.push(tokio::spawn(async move { s.apply(&n, &plan, "racer").await }));
        }
        let mut won = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(()) => won += 1,
                Err(DbError::OverBudget { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1, "one slot was free");
        assert_eq!(store.usage(Some("fnal")).await.unwrap().stage_requests, 3);
    }

    async fn the_total_over_all_sites_holds_against_racing_writers_at_different_sites(db: &TestDb) {
        // Each site may stage as much as it likes; all of them together, three files.
        let limits = SiteLimits {
            total: Limits {
                stage_requests: Some(3),
                ..Limits::default()
            },
            ..SiteLimits::default()
        };
        let store = db.store().await.with_limits(limits);
        let (a, plan_a) = ready_at(&store, "a", 2, "fnal").await;
        store.apply(&a, &plan_a, "t").await.unwrap();
        let (b, plan_b) = ready_at(&store, "b", 2, "cern").await;
        let err = store.apply(&b, &plan_b, "t").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "over budget at all sites together: stage requests would be 4, the limit is 3; nothing was written"
        );
        let mut racers = Vec::new();
        for i in 0..4 {
            let site = ["cern", "fnal", "in2p3", "cern"][i];
            let (n, plan) = ready_at(&store, &format!("r{i}"), 1, site).await;
            let s = store.clone();
            racers.push(tokio::spawn(async move { s.apply(&n, &plan, "racer").await }));
        }
        let mut won = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(()) => won += 1,
                Err(DbError::OverBudget { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1, "one slot was free over all sites");
        assert_eq!(store.usage_total().await.unwrap().stage_requests, 3);
    }
}
