//! The copy in memory that `repro simulate` plays on keeps the database's rules: the same
//! script of claims, writes, refusals and settled markers, run on a SQLite store and on a
//! `MemoryStore` copied from it, gives the same answers, and whatever either refuses
//! leaves it as it was.

use std::time::Duration;

use repro_core::plan::plan;
use repro_core::{DatasetName, Limits, Policy, SiteLimits};
use repro_db::{NewFile, Register, Revision, Store};
use repro_run::Storage;
use repro_run::memory::MemoryStore;

/// A store with one dataset of five files at fnal, where at most three may stage at once.
async fn sqlite() -> (Store, DatasetName) {
    let mut limits = SiteLimits::default();
    limits.sites.insert(
        "fnal".into(),
        Limits {
            stage_requests: Some(3),
            ..Limits::default()
        },
    );
    let store = Store::open_memory().await.unwrap().with_limits(limits);
    store.migrate().await.unwrap();
    let name = DatasetName::new("mem.a").unwrap();
    let files: Vec<NewFile> = (0..5)
        .map(|i| NewFile::new(format!("/raw/{i}"), 100))
        .collect();
    let opts = Register {
        unlock: true,
        site: Some("fnal".into()),
        ..Register::default()
    };
    store.register(&name, &files, &opts, "t").await.unwrap();
    (store, name)
}

/// What each step of the script answered, in words.
async fn script(
    store: &impl Storage,
    name: &DatasetName,
    now: chrono::NaiveDateTime,
) -> Vec<String> {
    let mut said = Vec::new();
    let ttl = Duration::from_secs(60);
    let gone = |_: &str| false;
    // Leases: a second holder is refused until the first is gone.
    let a = store
        .claim_or_take_over(name, "a", ttl, now, gone)
        .await
        .unwrap();
    said.push(format!("a holds it until +60s, at {:?}", a.site));
    let b = store.claim_or_take_over(name, "b", ttl, now, gone).await;
    said.push(format!(
        "b: {:?}",
        b.map(|l| l.owner).map_err(|e| e.to_string())
    ));
    let b = store
        .claim_or_take_over(name, "b", ttl, now, |h| h == "a")
        .await
        .unwrap();
    said.push(format!("b takes over: {}", b.owner));
    // a's late release leaves b's lease alone.
    store
        .release_noting(&a, Some(Some("a's note")))
        .await
        .unwrap();
    let c = store.claim(name, "c", ttl, now).await;
    said.push(format!(
        "c after a's release: {:?}",
        c.map(|l| l.owner).map_err(|e| e.to_string())
    ));
    store
        .release_noting(&b, Some(Some("waiting: b")))
        .await
        .unwrap();
    let c = store.claim(name, "c", ttl, now).await.unwrap();
    said.push(format!("c after b's release: {}", c.owner));

    // A plan that ignores the limit stages all five: refused, nothing written.
    let (before, stamp) = store.load_stamped(name).await.unwrap();
    let all = plan(&before, &Policy::default());
    let refused = store.apply_revised(name, &all.changes, "t").await;
    said.push(format!(
        "staging five: {:?}",
        refused.map_err(|e| e.to_string())
    ));
    let (after, same) = store.load_stamped(name).await.unwrap();
    said.push(format!("unchanged: {} {}", after == before, same == stamp));
    said.push(format!(
        "usage: {:?}",
        store.usage(Some("fnal")).await.unwrap()
    ));

    // Three of them is within it.
    let mut three = all.changes.clone();
    let keep: Vec<_> = {
        let mut staged = 0;
        three
            .iter()
            .map(|c| {
                let stage = matches!(c, repro_core::Change::File { .. });
                staged += usize::from(stage);
                !stage || staged <= 3
            })
            .collect()
    };
    let mut k = keep.iter();
    three.retain(|_| *k.next().unwrap());
    let written = store.apply_revised(name, &three, "t").await.unwrap();
    said.push(format!(
        "staging three: {:?}",
        written.map(|r| r.0 - stamp.revision.0)
    ));
    said.push(format!(
        "usage: {:?}",
        store.usage(Some("fnal")).await.unwrap()
    ));
    said.push(format!("total: {:?}", store.usage_total().await.unwrap()));
    said.push(format!(
        "at no site: {:?}",
        store.usage(None).await.unwrap()
    ));

    // The same changes again find the files moved: a conflict, nothing written.
    let again = store.apply_revised(name, &three, "t").await;
    said.push(format!("again: {:?}", again.map_err(|e| e.to_string())));
    let now_at = store.stamp(name).await.unwrap();
    said.push(format!(
        "revision moved by {}",
        now_at.revision.0 - stamp.revision.0
    ));

    // Settled markers hold only at the revision they were set at.
    let stale = store.settle(name, stamp.revision, "tok").await.unwrap();
    let fresh = store.settle(name, now_at.revision, "tok").await.unwrap();
    said.push(format!("settle stale {stale}, fresh {fresh}"));
    let held = [
        store.is_settled(name, "tok").await.unwrap(),
        store.is_settled(name, "other").await.unwrap(),
    ];
    said.push(format!("settled under tok, other: {held:?}"));
    store.apply_revised(name, &[], "t").await.unwrap();
    said.push(format!(
        "after writing nothing: {}",
        store.is_settled(name, "tok").await.unwrap()
    ));
    // A file staged is a write like any other.
    let view = store.load(name).await.unwrap();
    let file = view
        .files
        .values()
        .find(|f| f.state == repro_core::FileState::Staging)
        .unwrap()
        .id;
    let staged = repro_core::outcome::record(&view, &repro_core::Outcome::Staged { file }).unwrap();
    let w = store.apply_revised(name, &staged, "t").await.unwrap();
    said.push(format!(
        "one staged: {:?}",
        w.map(|r| r.0 - now_at.revision.0)
    ));
    said.push(format!(
        "after a write: {}",
        store.is_settled(name, "tok").await.unwrap()
    ));
    let _ = store.settle(name, Revision(0), "x").await.unwrap();

    // Unknown datasets are not found.
    let nobody = DatasetName::new("nobody").unwrap();
    said.push(format!(
        "{:?}",
        store.stamp(&nobody).await.map_err(|e| e.to_string())
    ));
    said.push(format!("{:?}", store.dataset_sites().await.unwrap()));
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_in_memory_answers_as_the_database_does() {
    let (db, name) = sqlite().await;
    let copy = MemoryStore::copy_of(&db).await.unwrap();
    assert_eq!(copy.limits(), db.limits());
    let now = repro_db::now();
    let in_db = script(&db, &name, now).await;
    let in_memory = script(&copy, &name, now).await;
    assert_eq!(in_memory, in_db);
    // What the script shows, so that agreeing is not agreeing on nothing.
    let show = in_db.join("\n");
    assert!(
        show.contains("b: Err(\"dataset \\\"mem.a\\\" is being worked on by a"),
        "{show}"
    );
    assert!(show.contains("c after a's release: Err("), "{show}");
    assert!(
        show.contains(
            "staging five: Err(\"over budget at fnal: stage requests would be 5, the limit is 3"
        ),
        "{show}"
    );
    assert!(show.contains("unchanged: true true"), "{show}");
    assert!(show.contains("staging three: Some(1)"), "{show}");
    assert!(show.contains("stage_requests: 3"), "{show}");
    assert!(
        show.contains("again: Err(\"conflict: dataset mem.a: expected"),
        "{show}"
    );
    assert!(show.contains("revision moved by 1"), "{show}");
    assert!(show.contains("settle stale false, fresh true"), "{show}");
    assert!(
        show.contains("settled under tok, other: [true, false]"),
        "{show}"
    );
    assert!(show.contains("after writing nothing: true"), "{show}");
    assert!(show.contains("one staged: Some(1)"), "{show}");
    assert!(show.contains("after a write: false"), "{show}");
    assert!(
        show.contains("Err(\"no dataset named \\\"nobody\\\"\")"),
        "{show}"
    );
    // What the release noted is on the row, as the list shows it.
    let row = &copy.list(false)[0];
    assert_eq!(row.waiting.as_deref(), Some("waiting: b"));
    assert_eq!(row.lease.as_ref().map(|l| l.0.as_str()), Some("c"));
    let staging = |s| row.files.get(s);
    use repro_core::FileState::{Registered, Staged, Staging};
    assert_eq!(
        (staging(Registered), staging(Staging), staging(Staged)),
        (2, 2, 1)
    );
    // The database's own list says the same.
    let listed = db.list(&repro_db::ListFilter::default()).await.unwrap();
    assert_eq!(
        (listed[0].files.clone(), listed[0].waiting.clone()),
        (row.files.clone(), row.waiting.clone())
    );
}
