//! cron, completions, man, config errors, the demo, exit codes in --help.

use crate::support::Env;

#[test]
fn cron_prints_the_predecessor_schedule_and_the_one_line_alternative() {
    let env = Env::new();
    insta::assert_snapshot!(env.show(&env.run(&["cron", "--bin", "/opt/repro/bin/repro"])), @r#"
    status: 0
    --- stdout
    # repro: the predecessor scripts' schedule, one operation a line
    30 */12 * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' prestage --all  # prestage (was: prestage)
    01 */4  * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' reconstruct --all  # reconstruct (was: reconstruct_dataset_new)
    01 23   * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' check --all  # check on dataset status
    11 */6  * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' merge --all  # merge (new)
    30 */4  * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' merge --partial --all  # merge (partial)
    1  0    * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' check --all  # check on merge running (was: 1 */24)
    50 15   * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' dbup --all  # update merge: declare merged files (MERGED_DBUP)
    40 16   * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' cleanup --all  # cleanup (by hand in the predecessor scripts)

    # or, instead of all of the above, one line that does everything due:
    # */10 * * * *  /opt/repro/bin/repro -q --db 'sqlite://[DIR]/repro.db?mode=rwc' tick
    --- stderr
    "#);
}

#[test]
fn cron_names_the_database_and_config_by_absolute_paths() {
    let env = Env::new();
    env.write("repro.toml", "[lease]\nttl_s = 300\n");
    let out = env
        .cmd(&[
            "--db",
            "sqlite://campaign.db?mode=rwc",
            "cron",
            "--bin",
            "/r",
        ])
        .env_remove("REPRO_DATABASE_URL")
        .output()
        .unwrap();
    let text = env.show(&out);
    assert!(
        text.contains(
            "/r -q --db 'sqlite://[DIR]/campaign.db?mode=rwc' --config '[DIR]/repro.toml' tick"
        ),
        "{text}"
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for line in [
        "0  ok (also: nothing to do)",
        "2  usage error or bad input",
        "3  refused",
        "4  conflict",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}");
    }
}

#[test]
fn completions_and_man_page_are_generated() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]);
    assert!(bash.contains("_repro()") && bash.contains("reconstruct"));
    let man = env.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH repro"),
        "{}",
        &man[..man.len().min(200)]
    );
    // With --dir, a page per subcommand: every page the top page names exists.
    let written = env.ok(&["man", "--dir", "man"]);
    for page in [
        "repro.1",
        "repro-tick.1",
        "repro-dataset.1",
        "repro-dataset-add.1",
        "repro-reset.1",
    ] {
        assert!(
            env.path("man").join(page).exists(),
            "{page} missing; wrote:\n{written}"
        );
    }
    let top = std::fs::read_to_string(env.path("man").join("repro.1")).unwrap();
    for named in top.split("repro\\-").skip(1) {
        let sub: String = named
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !sub.is_empty() {
            assert!(
                env.path("man").join(format!("repro-{sub}.1")).exists(),
                "repro.1 names repro-{sub}(1)"
            );
        }
    }
}

#[test]
fn a_bad_config_names_the_key_and_exits_2() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write("repro.toml", "[backend.sim]\nreco_failure = 1.5\n");
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: config repro.toml: key `backend.sim.reco_failure` = 1.5: a probability is between 0 and 1
    "#);
    env.write("repro.toml", "[backend.sim]\nseeed = 1\n");
    let out = env.run(&["dataset", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `seeed`"));
    let out = env.run(&["--config", "nowhere.toml", "dataset", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config nowhere.toml"));
}

#[test]
fn a_bad_database_url_exits_2() {
    let env = Env::new();
    let out = env.run(&["--db", "oracle://x/y", "dataset", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme \"oracle\""));
}

#[test]
fn an_unreachable_database_exits_1_naming_it() {
    let env = Env::new();
    let out = env.run(&[
        "--db",
        "mysql://root:secret@127.0.0.1:1/x",
        "dataset",
        "list",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        crate::support::render(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("repro: cannot reach the database at mysql://root@127.0.0.1:1/x: "),
        "{err}"
    );
    assert!(!err.contains("secret"));
}

#[test]
fn the_demo_runs_a_campaign_to_rest() {
    let env = Env::new();
    let out = env.run(&[
        "--json",
        "demo",
        "--datasets",
        "3",
        "--files",
        "40",
        "--keep",
        "demo",
    ]);
    assert!(out.status.success(), "{}", crate::support::render(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(s["datasets"], 3);
    assert_eq!(
        s["cleaned"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
        3
    );
    assert_eq!(s["files"], 120);
    assert!(s["reco_jobs"].as_u64().unwrap() >= 120 - s["files_failed_for_good"].as_u64().unwrap());
    for d in v["datasets"].as_array().unwrap() {
        assert!(
            d["cleanup"] == "CLEANED"
                || [&d["prestage"], &d["reco"], &d["merge"], &d["cleanup"]]
                    .contains(&&serde_json::json!("FAILED")),
            "{d}"
        );
    }
    // The kept journal shows nothing done twice.
    let j = crate::support::journal(&env.path("demo/sim-journal.jsonl"));
    let mut seen = std::collections::HashSet::new();
    for e in &j {
        assert!(seen.insert(e.clone()), "done twice: {e:?}");
    }
}

#[test]
fn the_demo_without_failures_cleans_every_file_with_one_job_each() {
    let env = Env::new();
    let out = env.run(&[
        "--json",
        "demo",
        "--datasets",
        "2",
        "--files",
        "60",
        "--no-failures",
    ]);
    assert!(out.status.success(), "{}", crate::support::render(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(s["cleaned"], 2, "{s}");
    assert_eq!(s["files_cleaned"], 120, "{s}");
    assert_eq!(s["files_failed_for_good"], 0, "{s}");
    assert_eq!(s["reco_jobs"], 120, "no retries: {s}");
    assert_eq!(s["retries"], 0, "{s}");
}

#[test]
fn recount_finds_totals_a_hand_edit_left_wrong_and_mends_them() {
    let env = Env::new();
    env.init_reliable();
    env.add("p17.a", 3, &["--unlock"]);
    assert!(env.ok(&["recount", "--check"]).contains("the totals agree"));
    // An operator's old script moves a file behind repro's back.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(repro_db::Store::open(&env.db)).unwrap();
    let moved = rt
        .block_on(store.execute_unprepared(
            "UPDATE file_status SET state = 'staged' WHERE id = (SELECT MIN(id) FROM file_status)",
        ))
        .unwrap();
    assert_eq!(moved, 1);
    let out = env.run(&["recount", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", env.show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("registered: 3 counted, 2 rows")
            && text.contains("staged: 0 counted, 1 rows"),
        "{text}"
    );
    // The file's bytes moved with it, which the budgets count.
    assert!(
        text.contains("registered bytes: ") && text.contains("staged bytes: 0 counted, "),
        "{text}"
    );
    assert!(env.ok(&["recount"]).contains("4 difference(s) mended"));
    assert!(env.ok(&["recount", "--check"]).contains("the totals agree"));
    let list = env.ok(&["--json", "dataset", "list"]);
    assert!(list.contains("\"staged\": 1"), "{list}");
}

#[test]
fn a_placeholder_typo_is_a_config_error_before_any_job_is_submitted() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write(
        "repro.toml",
        "[backend]\nkind = \"command\"\n[backend.command]\n\
         reco_submit = [\"sbatch\", \"--wrap\", \"reco {file} {ouptut}\"]\n\
         merge_submit = [\"sbatch\", \"{files}\"]\njob_status = [\"st\", \"{batch_id}\"]\n",
    );
    insta::assert_snapshot!(env.show(&env.run(&["plan"])), @r"
    status: 2
    --- stdout
    --- stderr
    repro: config repro.toml: key `backend.command.reco_submit` = {ouptut}: {ouptut} is not a placeholder; this step fills {dataset}, {file}, {output}, {job}, {attempt}
    ");
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    use std::io::Read;
    let env = Env::new();
    for args in [&["completions", "bash"][..], &["man"]] {
        let mut child = env
            .spawnable(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 1`: read a byte, then close the pipe.
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        out.read_exact(&mut byte).unwrap();
        drop(out);
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(err, "", "{args:?}: nothing on stderr");
        assert!(matches!(status.code(), Some(0 | 141)), "{args:?}: {status}");
    }
}
