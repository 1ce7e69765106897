//! Operator actions: lock, unlock, retry, reset, history.

use crate::support::Env;

fn failing_stager(env: &Env) {
    env.write(
        "repro.toml",
        "[backend.sim]\nstage_failure = 1.0\njournal = \"journal.jsonl\"\n[policy]\nmax_attempts = 2\n",
    );
    env.ok(&["init"]);
}

#[test]
fn lock_and_unlock_are_idempotent_and_logged() {
    let env = Env::new();
    env.init_reliable();
    env.add("a", 1, &[]);
    env.add("b", 1, &[]);
    insta::assert_snapshot!(env.show(&env.run(&["unlock", "a", "b", "--reason", "approved by run coordinator"])), @r#"
    status: 0
    --- stdout
    a: UNLOCK
    b: UNLOCK
    --- stderr
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["unlock", "a"])), @r#"
    status: 0
    --- stdout
    a: already UNLOCK
    --- stderr
    "#);
    env.ok(&["lock", "a"]);
    // Automation leaves a locked dataset exactly where it is.
    env.ok(&["tick"]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "a"])).unwrap();
    assert_eq!(
        (v["lock"].as_str(), v["prestage"].as_str()),
        (Some("LOCK"), Some("NOT DONE"))
    );
    let h: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "history", "a"])).unwrap();
    let vias: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["via"].as_str().unwrap())
        .collect();
    assert_eq!(vias, ["register", "unlock", "lock"]);
    assert_eq!(h[1]["reason"], "approved by run coordinator");
    assert_eq!(h[1]["actor"], "tester");
    // A dataset move shows only the columns it changed: the table stays narrow.
    insta::assert_snapshot!(env.show(&env.run(&["history", "a"])), @r#"
    status: 0
    --- stdout
    AT (UTC)             ENTITY     VIA       FROM         TO                         ACTOR   REASON
    [TIME]  dataset 1  register  -            lock=LOCK (rest NOT DONE)  tester  1 raw file
    [TIME]  dataset 1  unlock    lock=LOCK    lock=UNLOCK                tester  approved by run coordinator
    [TIME]  dataset 1  lock      lock=UNLOCK  lock=LOCK                  tester
    --- stderr
    "#);
    let table = env.ok(&["history", "a"]);
    assert!(table.lines().all(|l| l.chars().count() <= 120), "{table}");
}

#[test]
fn a_phase_that_failed_for_good_waits_for_retry() {
    let env = Env::new();
    failing_stager(&env);
    env.add("tape", 2, &["--unlock"]);
    // From cron (`-q`), a tick prints nothing while all is well, and one line for each
    // thing that newly needs a person, with the command that fixes it.
    let mut mail = String::new();
    for _ in 0..6 {
        mail.push_str(&env.ok(&["-q", "tick"]));
    }
    insta::assert_snapshot!(mail, @r#"
    tape: 2 raw files failed for good in prestage (last: sim: tape read error); `repro retry tape` gives them fresh attempts, or `repro accept tape --reason "why"` accepts the loss
    tape: prestage FAILED: 2 raw files failed for good in prestage (last: sim: tape read error); fix the cause, then `repro retry tape`
    "#);
    // Once said, not said again.
    assert_eq!(env.ok(&["-q", "tick"]), "");
    // `dataset show` says it first, with the reason and the fix.
    let show = env.ok(&["dataset", "show", "tape"]);
    assert_eq!(
        show.lines().next().unwrap(),
        "NEEDS A PERSON: prestage FAILED: 2 raw files failed for good in prestage (last: sim: tape read error); fix the cause, then `repro retry tape`"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "tape"])).unwrap();
    assert_eq!(v["prestage"], "FAILED");
    assert_eq!(v["files"]["stage_failed_for_good"], 2);
    let files = env.ok(&[
        "dataset",
        "files",
        "tape",
        "--state",
        "stage_failed_for_good",
    ]);
    assert!(files.contains("sim: tape read error"), "{files}");
    // The tape robot is fixed; the operator retries.
    env.write("repro.toml", "[backend.sim]\njournal = \"journal.jsonl\"\nreco_failure = 0.0\nmerge_failure = 0.0\nlost_job = 0.0\n");
    insta::assert_snapshot!(env.show(&env.run(&["retry", "tape", "--reason", "robot fixed"])), @r#"
    status: 0
    --- stdout
    tape: retried; 2 raw files with fresh attempts; now lock=UNLOCK prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE
    --- stderr
    "#);
    for _ in 0..6 {
        env.ok(&["tick"]);
    }
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "tape"])).unwrap();
    assert_eq!(v["cleanup"], "CLEANED");
    // Attempt numbers went on from where they were: 1, 2, then 3 after the retry.
    let j = crate::support::journal(&env.path("journal.jsonl"));
    let attempts: Vec<u64> = j
        .iter()
        .filter(|e| e.0 == "stage" && e.2.ends_with("raw_001.dat"))
        .map(|e| e.3)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
}

#[test]
fn refused_operator_actions_exit_3_naming_the_state() {
    let env = Env::new();
    env.init_reliable();
    env.add("fresh", 1, &["--unlock"]);
    insta::assert_snapshot!(env.show(&env.run(&["retry", "fresh"])), @r#"
    status: 3
    --- stdout
    --- stderr
    repro: nothing to retry in fresh: it is at prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE and nothing in prestage failed for good
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["reset", "fresh", "--to", "reco", "--reason", "new calibration"])), @r#"
    status: 3
    --- stdout
    --- stderr
    repro: cannot reset to reco a dataset at prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE: that is done only at reco COMPLETED or PARTIAL (merge NOT DONE), merge MERGED or PARTIAL, merge FAILED
    "#);
    // The parser takes exactly the phases a reset can honour.
    for phase in ["merge", "cleanup", "nonsense"] {
        let out = env.run(&["reset", "fresh", "--to", phase, "--reason", "x"]);
        assert_eq!(out.status.code(), Some(2), "{phase}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "a reset goes back to prestage or reco, not {phase:?}"
            )),
            "{err}"
        );
    }
}

#[test]
fn reset_goes_back_keeping_finished_work() {
    let env = Env::new();
    env.init_reliable();
    env.add("ds", 2, &["--unlock"]);
    // Prestage and reco done, merge not started; the operator holds it there.
    for op in ["prestage", "check", "reconstruct", "check"] {
        env.ok(&[op, "ds"]);
    }
    env.ok(&["lock", "ds"]);
    let before: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "ds"])).unwrap();
    assert_eq!(before["merge"], "NOT DONE", "{before}");
    insta::assert_snapshot!(env.show(&env.run(&["reset", "ds", "--to", "reco", "--reason", "new calibration"])), @r#"
    status: 0
    --- stdout
    ds: reset to reco; now lock=LOCK prestage=PRESTAGE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE
    --- stderr
    "#);
    let after: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "ds"])).unwrap();
    assert_eq!(after["files"], before["files"], "reset lost finished work");
    let h = env.ok(&["history", "ds"]);
    assert!(
        h.contains("reset_to_reco") && h.contains("new calibration"),
        "{h}"
    );
}

#[test]
fn locking_several_datasets_is_all_or_none() {
    let env = Env::new();
    env.init_reliable();
    env.add("first", 1, &["--unlock"]);
    env.add("second", 1, &["--unlock"]);
    let out = env.run(&["lock", "first", "nosuch", "second"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dataset named \"nosuch\""));
    // Neither existing dataset was locked.
    let list = env.run(&["--json", "dataset", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let locks: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["lock"].as_str().unwrap())
        .collect();
    assert_eq!(locks, ["UNLOCK", "UNLOCK"]);
    let out = env.run(&["lock", "first", "second", "--reason", "tape drive down"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "first: LOCK\nsecond: LOCK\n"
    );
}

#[test]
fn a_named_locked_dataset_is_refused_saying_who_locked_it_when_and_why() {
    let env = Env::new();
    env.init_reliable();
    env.add("held", 1, &["--unlock"]);
    env.add("fresh", 1, &[]);
    env.ok(&["lock", "held", "--reason", "tape drive down"]);
    let out = env.run(&["prestage", "held"]);
    assert_eq!(out.status.code(), Some(3), "{}", env.show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("repro: held: LOCKed by "), "{err}");
    assert!(
        err.trim_end().ends_with(
            " UTC (tape drive down): automation leaves it where it is until `repro unlock held`"
        ),
        "{err}"
    );
    // A new dataset is locked since its registration.
    let err = env.run(&["prestage", "fresh"]).stderr;
    assert!(String::from_utf8_lossy(&err).contains("fresh: LOCKed since it was registered by "));
    // `--all` and `tick` skip locked datasets without failing.
    assert_eq!(env.run(&["prestage", "--all"]).status.code(), Some(0));
    assert_eq!(env.run(&["tick"]).status.code(), Some(0));
}

/// A campaign whose tape loses some raw files for good (the same ones on every run: the
/// world is seeded) while the rest goes on.
fn lossy_tape(env: &Env, merge_partial: bool) {
    env.write(
        "repro.toml",
        &format!(
            "[backend.sim]\nseed = 7\nstage_failure = 0.3\nreco_failure = 0.0\nmerge_failure = 0.0\nlost_job = 0.0\n\
             [policy]\nmax_attempts = 1\nmerge_partial = {merge_partial}\n"
        ),
    );
    env.ok(&["init"]);
    env.add("p17", 10, &["--unlock"]);
}

/// The tape is fixed: nothing fails any more.
fn tape_fixed(env: &Env, merge_partial: bool) {
    env.write(
        "repro.toml",
        &format!(
            "[backend.sim]\nseed = 7\nreco_failure = 0.0\nmerge_failure = 0.0\nlost_job = 0.0\n\
             [policy]\nmax_attempts = 1\nmerge_partial = {merge_partial}\n"
        ),
    );
}

/// `n` ticks from cron: what they mailed.
fn ticks(env: &Env, n: usize) -> String {
    (0..n).map(|_| env.ok(&["-q", "tick"])).collect()
}

fn show_json(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["--json", "dataset", "show", name])).unwrap()
}

/// Every `repro …` command quoted in `text` (between backticks), once each, as words.
fn suggested(text: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some(args) = quoted.strip_prefix("repro ") else {
            continue;
        };
        let mut words = Vec::new();
        for (i, part) in args.split('"').enumerate() {
            if i % 2 == 1 {
                words.push(part.to_owned());
            } else {
                words.extend(part.split_whitespace().map(str::to_owned));
            }
        }
        if !out.contains(&words) {
            out.push(words);
        }
    }
    out
}

/// Runs a suggested command: it must succeed, or the message that suggested it was wrong.
fn run_suggested(env: &Env, words: &[String], text: &str) {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let out = env.run(&words);
    assert!(
        out.status.success(),
        "`repro {}`, suggested by {text:?}, failed:\n{}",
        words.join(" "),
        crate::support::render(&out)
    );
}

#[test]
fn files_lost_in_prestage_come_back_by_retry_while_the_dataset_waits_in_merge() {
    let env = Env::new();
    lossy_tape(&env, false);
    let mail = ticks(&env, 8);
    // Reco ended PARTIAL and the policy does not merge partial datasets: it waits.
    let v = show_json(&env, "p17");
    assert_eq!(
        (v["reco"].as_str(), v["merge"].as_str()),
        (Some("PARTIAL"), Some("NOT DONE"))
    );
    let lost = v["files"]["stage_failed_for_good"].as_u64().unwrap();
    assert!(
        lost > 0 && lost < 10,
        "the seeded tape loses some files: {lost}"
    );
    // Each message names the phase the files were lost in, and what answers it.
    assert!(
        mail.contains("p17: ") && mail.contains("failed for good in prestage"),
        "{mail}"
    );
    let show = env.ok(&["dataset", "show", "p17"]);
    let first = show.lines().next().unwrap();
    assert!(
        first.starts_with("NEEDS A PERSON: ")
            && first.contains("failed for good in prestage (last: sim: tape read error)"),
        "{show}"
    );
    // The history names the lost files and keeps their whole error.
    let history = env.ok(&["history", "p17", "--entity", "file"]);
    let lost_row = history.lines().find(|l| l.contains("stage_fail ")).unwrap();
    assert!(
        lost_row.contains("file /store/p17/raw_") && lost_row.ends_with("sim: tape read error"),
        "{history}"
    );
    tape_fixed(&env, false);
    // The retry `dataset show` suggests works: reco is decided again.
    let retry = suggested(first);
    assert_eq!(retry[0], ["retry", "p17"], "{first}");
    run_suggested(&env, &retry[0], first);
    let v = show_json(&env, "p17");
    assert_eq!(
        (v["reco"].as_str(), v["merge"].as_str()),
        (Some("NOT DONE"), Some("NOT DONE"))
    );
    ticks(&env, 10);
    let v = show_json(&env, "p17");
    assert_eq!(
        (v["reco"].as_str(), v["cleanup"].as_str()),
        (Some("COMPLETED"), Some("CLEANED")),
        "{v}"
    );
    assert_eq!(
        v["files"]["cleaned"], 10,
        "every file merged and cleaned once: {v}"
    );
    assert!(
        !env.ok(&["dataset", "show", "p17"])
            .contains("NEEDS A PERSON")
    );
}

#[test]
fn a_partial_dataset_keeps_asking_until_its_loss_is_accepted_or_retried() {
    let env = Env::new();
    lossy_tape(&env, true);
    let mail = ticks(&env, 10);
    let v = show_json(&env, "p17");
    assert_eq!(
        (v["reco"].as_str(), v["cleanup"].as_str()),
        (Some("PARTIAL"), Some("CLEANED"))
    );
    let lost = v["files"]["stage_failed_for_good"].as_u64().unwrap();
    // CLEANED, and still asking, with both answers.
    let show = env.ok(&["dataset", "show", "p17"]);
    let asks = show.lines().next().unwrap();
    assert!(asks.starts_with("NEEDS A PERSON: "), "{show}");
    let answers = suggested(&mail);
    assert_eq!(answers.len(), 2, "a retry and an accept: {mail}");
    // Accepting the loss: no more asking, and the history says who and why.
    let accept = answers.iter().find(|a| a[0] == "accept").unwrap();
    run_suggested(&env, accept, &mail);
    assert!(
        !env.ok(&["dataset", "show", "p17"])
            .contains("NEEDS A PERSON")
    );
    let h: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "history", "p17", "--entity", "dataset"]))
            .unwrap();
    let row = h.as_array().unwrap().iter().find(|e| e["via"] == "accept");
    let row = row.expect("an accept row");
    assert_eq!(row["reason"], "why");
    assert_eq!(row["to"], lost.to_string());
    insta::assert_snapshot!(env.show(&env.run(&["accept", "p17", "--reason", "again"])), @r"
    status: 3
    --- stdout
    --- stderr
    repro: nothing to accept in p17: 5 raw files failed for good, 5 accepted already
    ");
    // The retry the same mail suggested works too, even after acceptance and CLEANED.
    tape_fixed(&env, true);
    let retry = answers.iter().find(|a| a[0] == "retry").unwrap();
    run_suggested(&env, retry, &mail);
    ticks(&env, 10);
    let v = show_json(&env, "p17");
    assert_eq!(v["cleanup"], "CLEANED");
    assert_eq!(v["files"]["cleaned"], 10, "{v}");
}

#[test]
fn the_alerts_command_hears_each_new_line_with_its_dataset_and_class() {
    let env = Env::new();
    env.write(
        "repro.toml",
        "[backend.sim]\nstage_failure = 1.0\n[policy]\nmax_attempts = 1\n\
         [alerts]\ncommand = [\"sh\", \"-c\", \"printf '%s|%s|%s\\\\n' \\\"$REPRO_DATASET\\\" \\\"$REPRO_CLASS\\\" \\\"$REPRO_ALERT\\\" >> alerts.log\"]\n",
    );
    env.ok(&["init"]);
    env.add("tape", 2, &["--unlock"]);
    let mail = ticks(&env, 4);
    let heard = std::fs::read_to_string(env.path("alerts.log")).unwrap();
    let lines: Vec<&str> = heard.lines().collect();
    assert_eq!(
        lines.len(),
        mail.lines().count(),
        "one call per mailed line:\n{heard}\n{mail}"
    );
    for (heard, mailed) in lines.iter().zip(mail.lines()) {
        assert_eq!(*heard, format!("tape|unknown|{mailed}"));
    }
    // A command that fails is said on stderr; the tick and its mail go on.
    env.write(
        "repro.toml",
        "[backend.sim]\nstage_failure = 1.0\n[policy]\nmax_attempts = 1\n[alerts]\ncommand = [\"false\"]\n",
    );
    env.add("tape2", 1, &["--unlock"]);
    let mut stderr = String::new();
    for _ in 0..4 {
        let out = env.run(&["-q", "tick"]);
        assert!(out.status.success());
        stderr.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        stderr.contains("repro: the [alerts] command failed: false exited 1"),
        "{stderr}"
    );
}

#[test]
fn files_waiting_to_retry_are_counted_in_show_and_its_json_with_the_first_time() {
    let env = Env::new();
    env.write(
        "repro.toml",
        "[backend.sim]\nstage_failure = 1.0\n[policy.retry]\nfirst_delay_s = 3600\n",
    );
    env.ok(&["init"]);
    env.add("p17", 4, &["--unlock"]);
    let before = chrono::Utc::now().timestamp();
    ticks(&env, 3);
    let show = env.ok(&["dataset", "show", "p17"]);
    assert!(
        show.contains("retrying  4 waiting to be tried again, the first at "),
        "{show}"
    );
    let json = show_json(&env, "p17");
    assert_eq!(json["retrying"]["count"], 4, "{json}");
    let first = json["retrying"]["first_at"].as_str().unwrap();
    let first = chrono::DateTime::parse_from_rfc3339(first)
        .unwrap()
        .timestamp();
    assert!(
        (before + 3600..=before + 3700).contains(&first),
        "{first} vs {before}"
    );
}
