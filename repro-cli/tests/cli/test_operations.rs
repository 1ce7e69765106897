//! The predecessor scripts' operations: prestage, reconstruct, merge, dbup, cleanup, check, tick, plan.

use crate::support::{Env, journal};

fn state(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["--json", "dataset", "show", name])).unwrap()
}

fn columns(env: &Env, name: &str) -> String {
    let v = state(env, name);
    format!(
        "{} {} {} {} {}",
        v["lock"], v["prestage"], v["reco"], v["merge"], v["cleanup"]
    )
    .replace('"', "")
}

#[test]
fn each_operation_does_its_phase_and_nothing_more() {
    let env = Env::new();
    env.init_reliable();
    env.add("ds", 4, &["--unlock"]);
    // Reco before prestage is done is refused (exit 3), saying why in the predecessor scripts' words.
    insta::assert_snapshot!(env.show(&env.run(&["reconstruct", "ds"])), @r#"
    status: 3
    --- stdout
    --- stderr
    repro: ds: not now: it is at lock=UNLOCK prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE; reconstruct runs when prestage is PRESTAGE and reco is NOT DONE or RUNNING
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["prestage", "ds"])), @r#"
    status: 0
    --- stdout
    ds: 4 action(s), 0 outcome(s) recorded; start_prestage
    --- stderr
    "#);
    assert_eq!(
        columns(&env, "ds"),
        "UNLOCK RUNNING NOT DONE NOT DONE NOT DONE"
    );
    // Running prestage again does nothing twice.
    assert_eq!(env.ok(&["prestage", "ds"]), "ds: nothing to do\n");
    insta::assert_snapshot!(env.show(&env.run(&["check", "ds"])), @r#"
    status: 0
    --- stdout
    ds: 0 action(s), 4 outcome(s) recorded; finish_prestage
    --- stderr
    "#);
    assert_eq!(
        columns(&env, "ds"),
        "UNLOCK PRESTAGE NOT DONE NOT DONE NOT DONE"
    );
    assert_eq!(
        env.ok(&["reconstruct", "ds"]),
        "ds: 4 action(s), 4 outcome(s) recorded; start_reco\n"
    );
    assert_eq!(
        env.ok(&["check", "ds"]),
        "ds: 0 action(s), 4 outcome(s) recorded; complete_reco\n"
    );
    // `merge --partial` leaves a COMPLETED dataset to `merge`.
    let out = env.run(&["merge", "--partial", "ds"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("merge --partial runs when reco is PARTIAL")
    );
    assert_eq!(
        env.ok(&["merge", "ds"]),
        "ds: 1 action(s), 1 outcome(s) recorded; start_merge\n"
    );
    assert_eq!(
        env.ok(&["check", "ds"]),
        "ds: 0 action(s), 1 outcome(s) recorded; finish_merge\n"
    );
    assert_eq!(
        columns(&env, "ds"),
        "UNLOCK PRESTAGE COMPLETED MERGED NOT DONE"
    );
    insta::assert_snapshot!(env.show(&env.run(&["cleanup", "ds"])), @r#"
    status: 3
    --- stdout
    --- stderr
    repro: ds: not now: it is at lock=UNLOCK prestage=PRESTAGE reco=COMPLETED merge=MERGED cleanup=NOT DONE; cleanup runs when merge is MERGED_DBUP and cleanup is NOT DONE
    "#);
    assert_eq!(
        env.ok(&["dbup", "ds"]),
        "ds: 1 action(s), 1 outcome(s) recorded; declare_merged\n"
    );
    assert_eq!(
        env.ok(&["cleanup", "ds"]),
        "ds: 4 action(s), 4 outcome(s) recorded; clean\n"
    );
    assert_eq!(
        columns(&env, "ds"),
        "UNLOCK PRESTAGE COMPLETED MERGED_DBUP CLEANED"
    );
    let j = journal(&env.path("journal.jsonl"));
    let count = |a: &str| j.iter().filter(|e| e.0 == a).count();
    assert_eq!(
        (
            count("stage"),
            count("reco_submit"),
            count("merge_submit"),
            count("declare"),
            count("delete")
        ),
        (4, 4, 1, 1, 4)
    );
    // `dataset show` has what the page has: progress per phase, groups, jobs.
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "show", "ds"])), @r#"
    status: 0
    --- stdout
    name      ds
    site      -
    lock      UNLOCK
    prestage  PRESTAGE     4/4 staged
    reco      COMPLETED    4/4 reconstructed
    merge     MERGED_DBUP  4/4 merged, 1 group(s)
    cleanup   CLEANED      4/4 cleaned
    updated   [TIME] UTC
    files     4
      cleaned               4

    merge groups
    GROUP  STATE     FILES  ATTEMPTS  MERGED FILE     LAST ERROR
    g1     declared  4      1         ds.merged.0001  -

    jobs      reco done 4, merge done 1
    --- stderr
    "#);
    let jobs = env.ok(&["dataset", "jobs", "ds"]);
    assert!(
        jobs.starts_with("jobs      reco done 4, merge done 1\nJOB "),
        "{jobs}"
    );
    assert!(
        jobs.contains("ds.reco.f1.a1") && jobs.contains("ds.merge.g1.a1"),
        "{jobs}"
    );
    assert!(jobs.ends_with("page 1 of 1 (100 a page)\n"), "{jobs}");
    // A page at a time: the second of two jobs a page, and what comes next.
    let second = env.ok(&["dataset", "jobs", "ds", "--page", "2", "--per-page", "2"]);
    assert!(
        second.contains("ds.reco.f3.a1") && second.contains("ds.reco.f4.a1"),
        "{second}"
    );
    assert!(!second.contains("ds.reco.f1.a1"), "{second}");
    assert!(
        second.ends_with("page 2 of 3 (2 a page); --page 3 for the next\n"),
        "{second}"
    );
    let last = env.ok(&["dataset", "jobs", "ds", "--page", "3", "--per-page", "2"]);
    assert!(
        last.contains("ds.merge.g1.a1") && !last.contains("ds.reco"),
        "{last}"
    );
}

#[test]
fn tick_takes_every_unlocked_dataset_to_cleaned_and_leaves_locked_ones() {
    let env = Env::new();
    env.init_reliable();
    env.add("a", 3, &["--unlock", "--site", "prague"]);
    env.add("b", 2, &["--unlock", "--site", "fnal"]);
    env.add("held", 2, &[]);
    // A site filter narrows the tick.
    env.ok(&["tick", "--site", "fnal"]);
    assert_eq!(
        columns(&env, "a"),
        "UNLOCK NOT DONE NOT DONE NOT DONE NOT DONE"
    );
    assert_eq!(
        columns(&env, "b"),
        "UNLOCK RUNNING NOT DONE NOT DONE NOT DONE"
    );
    for _ in 0..6 {
        env.ok(&["tick"]);
    }
    assert_eq!(
        columns(&env, "a"),
        "UNLOCK PRESTAGE COMPLETED MERGED_DBUP CLEANED"
    );
    assert_eq!(
        columns(&env, "b"),
        "UNLOCK PRESTAGE COMPLETED MERGED_DBUP CLEANED"
    );
    assert_eq!(
        columns(&env, "held"),
        "LOCK NOT DONE NOT DONE NOT DONE NOT DONE"
    );
    // A tick with nothing to do prints nothing (cron mails nothing) and exits 0.
    insta::assert_snapshot!(env.show(&env.run(&["tick"])), @r#"
    status: 0
    --- stdout
    --- stderr
    "#);
}

#[test]
fn plan_shows_what_a_tick_would_do_without_doing_it() {
    let env = Env::new();
    env.init_reliable();
    env.add("ds", 3, &["--unlock"]);
    insta::assert_snapshot!(env.show(&env.run(&["plan"])), @r#"
    status: 0
    --- stdout
    ds: lock=UNLOCK prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE; would poll 0, move [start_prestage], perform 3 action(s)
    --- stderr
    "#);
    assert_eq!(
        columns(&env, "ds"),
        "UNLOCK NOT DONE NOT DONE NOT DONE NOT DONE"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "plan", "--name", "ds"])).unwrap();
    assert_eq!(v[0]["transitions"][0], "start_prestage");
    assert_eq!(v[0]["actions"][0]["action"], "stage");
    assert!(
        journal(&env.path("journal.jsonl")).is_empty(),
        "plan performed something"
    );
}

#[test]
fn operations_on_a_missing_dataset_or_without_a_target_are_usage_errors() {
    let env = Env::new();
    env.init_reliable();
    insta::assert_snapshot!(env.show(&env.run(&["prestage", "nope"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: nope: no dataset named "nope"
    "#);
    let out = env.run(&["prestage"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("required arguments were not provided"));
}

#[test]
fn a_dataset_whose_lease_another_process_holds_is_a_conflict_alone_and_skipped_with_all() {
    let env = Env::new();
    env.init_reliable();
    env.add("busy", 2, &["--unlock"]);
    // Another process (on another host) holds the lease for an hour.
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
    let sql =
        format!("UPDATE dataset_status SET lease_owner = 'other-host:99', lease_until = '{until}'");
    let store = rusqlite_free_exec(&env, &sql);
    assert!(store);
    let out = env.run(&["tick", "--name", "busy"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        crate::support::render(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is being worked on by other-host:99"));
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        columns(&env, "busy"),
        "UNLOCK NOT DONE NOT DONE NOT DONE NOT DONE"
    );
}

/// Runs SQL on the test database through the library, as another tool would.
fn rusqlite_free_exec(env: &Env, sql: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = repro_db::Store::open(&env.db).await.unwrap();
        store.execute_unprepared(sql).await.unwrap() == 1
    })
}
