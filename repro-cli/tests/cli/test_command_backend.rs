//! The `command` backend against small scripts playing the site's tools, including ones
//! that fail, hang past the timeout, print garbage, and lose a job after printing its id.

use crate::support::{Env, render, tick_settled};

/// A fake batch system, stager and catalog in one script. Its behaviour is switched by
/// files in `state/`: `garbage` (submit prints HTML), `hang` (submit hangs), `refuse`
/// (submit exits 1), `lose` (every job vanishes), `crash` (every job fails), `hold` (every
/// job stays queued), `garbled` (the cursor prints two lines). Every call is logged in
/// `calls`, beside `state/`.
const TOOL: &str = r#"#!/bin/sh
state="$(dirname "$0")/state"
mkdir -p "$state/jobs"
cmd="$1"; shift
echo "$cmd" >> "$(dirname "$0")/calls"
case "$cmd" in
  cursor)            # cursor DATASET: moves with anything `status` answers from
    [ -e "$state/garbled" ] && { printf 'one\ntwo\n'; exit 0; }
    { ls "$state"; cat "$state"/jobs/* 2>/dev/null; } | cksum | cut -d' ' -f1 ;;
  submit)            # submit JOB OUTPUT [INPUTS]
    [ -e "$state/hang" ] && sleep 30
    [ -e "$state/garbage" ] && { echo "<html><body>Service Unavailable</body></html>"; exit 0; }
    [ -e "$state/refuse" ] && { echo "condor_submit: ERROR: queue full" >&2; exit 1; }
    n=$(( $(cat "$state/counter" 2>/dev/null || echo 100) + 1 )); echo $n > "$state/counter"
    echo "$1" > "$state/jobs/$n"
    # `bad` lists jobs (without their attempt) that crash: a broken tape, say.
    if grep -qx "${1%.a*}" "$state/bad" 2>/dev/null; then echo crash >> "$state/jobs/$n"
    elif [ -e "$state/crash" ]; then echo crash >> "$state/jobs/$n"
    elif [ -e "$state/lose" ]; then echo lose >> "$state/jobs/$n"
    elif [ -n "$3" ]; then cat $(cat "$3") > "$2"
    else echo "reconstructed $1" > "$2"; fi
    echo "$n.0 - $n.0" ;;
  status)            # status BATCH_ID
    id="${1%.0}"
    [ -f "$state/jobs/$id" ] || { echo "unknown job $1" >&2; exit 2; }
    grep -q cancelled "$state/jobs/$id" && { echo "FAILED 143 cancelled"; exit 0; }
    [ -e "$state/hold" ] && { echo PENDING; exit 0; }
    if grep -q lose "$state/jobs/$id"; then echo LOST
    elif grep -q crash "$state/jobs/$id"; then echo "FAILED 139 segmentation violation"
    else echo DONE; fi ;;
  cancel)            # cancel BATCH_ID: the job ends, failed (after a while, with `slowcancel`)
    [ -e "$state/slowcancel" ] && sleep 3
    id="${1%.0}"; [ -f "$state/jobs/$id" ] && echo cancelled >> "$state/jobs/$id" ;;
  lookup)            # lookup JOB
    grep -lx "$1" "$state"/jobs/* 2>/dev/null | head -1 | xargs -r basename ;;
  declare)  echo "$1" >> "$state/catalog" ;;
  delete)   rm -f "$1" ;;
  stage-many)        # stage-many LIST: one bulk request
    cat "$1" >> "$state/requested" ;;
  staged-many)       # staged-many LIST: LFN STAGED, or FAILED for one never requested
    while read -r lfn; do
      if grep -qx "$lfn" "$state/requested"; then echo "$lfn STAGED"
      else echo "$lfn FAILED never requested"; fi
    done < "$1" ;;
  delete-many)       # delete-many LIST: LFN [TMB] a line
    while read -r lfn tmb; do [ -n "$tmb" ] && rm -f "$tmb"; done < "$1" ;;
  *) echo "unknown command $cmd" >&2; exit 64 ;;
esac
"#;

fn setup(env: &Env, timeout_s: u64) {
    setup_with(env, timeout_s, "");
}

/// [`setup`], with more `[backend.command]` keys (`{t}` is the tool).
fn setup_with(env: &Env, timeout_s: u64, more: &str) {
    let tool = env.write("tool.sh", TOOL);
    let mut perm = std::fs::metadata(&tool).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&tool, perm).unwrap();
    let t = tool.display();
    let more = more.replace("{t}", &t.to_string());
    env.write(
        "repro.toml",
        &format!(
            r#"[backend]
kind = "command"
[backend.command]
timeout_s = {timeout_s}
parallel = 3
workdir = "work"
reco_submit = ["{t}", "submit", "{{job}}", "{{output}}"]
merge_submit = ["{t}", "submit", "{{job}}", "{{output}}", "{{files}}"]
job_status = ["{t}", "status", "{{batch_id}}"]
job_lookup = ["{t}", "lookup", "{{job}}"]
declare = ["{t}", "declare", "{{file}}"]
delete = ["{t}", "delete", "{{tmb}}"]
{more}
[policy]
max_attempts = 3
merge_group_files = 2
"#
        ),
    );
    env.ok(&["init"]);
}

fn state(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["--json", "dataset", "show", name])).unwrap()
}

fn switch(env: &Env, mode: &str, on: bool) {
    let p = env.path("state").join(mode);
    std::fs::create_dir_all(env.path("state")).unwrap();
    if on {
        std::fs::write(p, "").unwrap();
    } else {
        let _ = std::fs::remove_file(p);
    }
}

fn tick_until_rest(env: &Env, name: &str) -> serde_json::Value {
    for _ in 0..12 {
        let out = env.run(&["tick"]);
        assert!(out.status.success(), "{}", render(&out));
        let v = state(env, name);
        if v["cleanup"] == "CLEANED"
            || [&v["prestage"], &v["reco"], &v["merge"], &v["cleanup"]]
                .iter()
                .any(|w| **w == "FAILED")
        {
            return v;
        }
    }
    state(env, name)
}

#[test]
fn site_tools_take_a_dataset_to_cleaned() {
    let env = Env::new();
    setup(&env, 10);
    env.add("cmd", 5, &["--unlock"]);
    let v = tick_until_rest(&env, "cmd");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    assert_eq!(v["merge"], "MERGED_DBUP");
    let catalog = std::fs::read_to_string(env.path("state/catalog")).unwrap();
    let mut declared: Vec<&str> = catalog.lines().collect();
    declared.sort_unstable();
    assert_eq!(
        declared,
        ["cmd.merged.0001", "cmd.merged.0002", "cmd.merged.0003"]
    );
    // The merged files hold the TMB files' contents; the TMB files are gone.
    let merged = std::fs::read_to_string(env.path("work/merged/cmd/cmd.merged.0001")).unwrap();
    assert_eq!(
        merged,
        "reconstructed cmd.reco.f1.a1\nreconstructed cmd.reco.f2.a1\n"
    );
    assert!(!env.path("work/tmb/cmd/raw_001.dat.a1.tmb").exists());
}

/// With bulk steps, staging, its status and the deletions are one call per dataset, tick
/// and `bulk_size` files, and the per-file steps are not used.
#[test]
fn bulk_steps_take_a_dataset_to_cleaned_in_one_call_per_chunk() {
    let env = Env::new();
    setup_with(
        &env,
        10,
        r#"bulk_size = 3
stage_bulk = ["{t}", "stage-many", "{files}"]
stage_status_bulk = ["{t}", "staged-many", "{files}"]
delete_bulk = ["{t}", "delete-many", "{files}"]"#,
    );
    env.add("bulk", 5, &["--unlock"]);
    let v = tick_until_rest(&env, "bulk");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    let calls = std::fs::read_to_string(env.path("calls")).unwrap();
    let count = |c: &str| calls.lines().filter(|l| *l == c).count();
    // Five files, three a call: two stage requests, two deletions, none per file.
    assert_eq!(count("stage-many"), 2, "{calls}");
    assert_eq!(count("delete-many"), 2, "{calls}");
    assert_eq!(count("delete"), 0, "{calls}");
    assert!(count("staged-many") >= 2, "{calls}");
    let requested = std::fs::read_to_string(env.path("state/requested")).unwrap();
    assert_eq!(
        requested.lines().count(),
        5,
        "each file asked for once: {requested}"
    );
    assert!(!env.path("work/tmb/bulk/raw_001.dat.a1.tmb").exists());
}

/// `repro cancel` kills the live jobs through the `cancel` step, records each as a failed
/// attempt with the reason and LOCKs the dataset, which ticks then leave alone; after
/// `unlock` it carries on to CLEANED, each raw file merged once from a job that finished.
#[test]
fn cancel_kills_the_live_jobs_and_unlock_carries_on_with_nothing_done_twice() {
    let env = Env::new();
    setup_with(&env, 10, r#"cancel = ["{t}", "cancel", "{batch_id}"]"#);
    env.add("c", 3, &["--unlock"]);
    switch(&env, "hold", true);
    for _ in 0..4 {
        if state(&env, "c")["reco"] == "RUNNING" {
            break;
        }
        env.ok(&["tick"]);
    }
    let out = env.ok(&[
        "cancel",
        "c",
        "--phase",
        "reco",
        "--reason",
        "wrong release",
    ]);
    assert!(out.starts_with("c: 3 jobs cancelled; LOCKed"), "{out}");
    assert_eq!(calls(&env, "cancel"), 3);
    let files = env.ok(&["dataset", "files", "c"]);
    assert_eq!(
        files.matches("cancelled: wrong release").count(),
        3,
        "{files}"
    );
    // A LOCKed dataset is left alone, even with the batch system free again.
    switch(&env, "hold", false);
    env.ok(&["tick"]);
    assert_eq!(state(&env, "c")["lock"], "LOCK");
    assert_eq!(
        env.ok(&["cancel", "c", "--reason", "again"]),
        "c: 0 jobs cancelled; still LOCKed: `repro unlock c` lets it carry on, the cancelled attempts retried\n"
    );
    env.ok(&["unlock", "c"]);
    let v = tick_until_rest(&env, "c");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    let merged = |n| std::fs::read_to_string(env.path(&format!("work/merged/c/c.merged.000{n}")));
    let all = format!("{}{}", merged(1).unwrap(), merged(2).unwrap());
    assert_eq!(
        all, "reconstructed c.reco.f1.a2\nreconstructed c.reco.f2.a2\nreconstructed c.reco.f3.a2\n",
        "each raw file once, from the attempt after the cancel"
    );
}

/// Waits until the tool has had `n` calls of `what`: a process that holds the dataset's
/// lease has got that far.
fn wait_for_call(env: &Env, what: &str, n: usize) {
    let t0 = std::time::Instant::now();
    while calls(env, what) < n {
        assert!(t0.elapsed().as_secs() < 60, "no {what} call came");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `c` on a thread of its own: its output when joined.
fn background(mut c: std::process::Command) -> std::thread::JoinHandle<std::process::Output> {
    std::thread::spawn(move || c.output().unwrap())
}

/// A cancel and a tick that meet on one dataset take turns under its lease: a tick
/// that comes while a slow cancel works leaves the dataset alone, and a cancel that comes
/// while a tick works is refused, changing nothing. Nothing is lost either way.
#[test]
fn a_cancel_and_a_tick_that_race_take_turns_and_lose_nothing() {
    let env = Env::new();
    setup_with(&env, 10, r#"cancel = ["{t}", "cancel", "{batch_id}"]"#);
    env.add("r", 2, &["--unlock"]);
    switch(&env, "hold", true);
    for _ in 0..4 {
        env.ok(&["tick"]);
    }
    assert_eq!(state(&env, "r")["reco"], "RUNNING");
    // A tick while the cancel works.
    switch(&env, "slowcancel", true);
    let cancel = background(env.spawnable(&["cancel", "r", "--reason", "stop"]));
    wait_for_call(&env, "cancel", 1);
    switch(&env, "hold", false);
    let tick = env.run(&["tick", "--name", "r"]);
    let cancel = cancel.join().unwrap();
    assert!(cancel.status.success(), "{}", render(&cancel));
    assert!(
        tick.status.code() == Some(4),
        "the tick waits its turn: {}",
        render(&tick)
    );
    assert!(render(&tick).contains("lease"), "{}", render(&tick));
    let files = env.ok(&["dataset", "files", "r"]);
    assert_eq!(files.matches("cancelled: stop").count(), 2, "{files}");
    // A cancel while a tick works: its submissions hang until the timeout kills them.
    switch(&env, "slowcancel", false);
    env.ok(&["unlock", "r"]);
    switch(&env, "hang", true);
    let submits = calls(&env, "submit");
    let tick = background(env.spawnable(&["tick", "--name", "r"]));
    wait_for_call(&env, "submit", submits + 1);
    let before = state(&env, "r");
    let refused = env.run(&["cancel", "r", "--reason", "too soon"]);
    assert_eq!(refused.status.code(), Some(4), "{}", render(&refused));
    assert!(render(&refused).contains("lease"), "{}", render(&refused));
    assert_eq!(state(&env, "r")["lock"], before["lock"]);
    tick.join().unwrap();
    switch(&env, "hang", false);
    let v = tick_until_rest(&env, "r");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    let files = env.ok(&["dataset", "files", "r"]);
    assert!(
        !files.contains("too soon"),
        "the refused cancel recorded nothing: {files}"
    );
}

/// Without a `cancel` step nothing can be killed, so `repro cancel` says so, exits
/// non-zero and records nothing: the dataset stays unlocked and its jobs live.
#[test]
fn cancel_without_a_cancel_step_refuses_and_records_nothing() {
    let env = Env::new();
    setup(&env, 10);
    env.add("n", 2, &["--unlock"]);
    switch(&env, "hold", true);
    for _ in 0..4 {
        env.ok(&["tick"]);
    }
    let before = state(&env, "n");
    assert_eq!(before["reco"], "RUNNING", "{before}");
    let out = env.run(&["cancel", "n", "--reason", "stop"]);
    assert!(!out.status.success());
    assert!(
        render(&out)
            .contains("no `cancel` step is configured in [backend.command], so no job was killed"),
        "{}",
        render(&out)
    );
    assert_eq!(state(&env, "n"), before);
}

#[test]
fn garbage_from_a_tool_fails_the_attempt_with_what_it_printed() {
    let env = Env::new();
    setup(&env, 10);
    env.add("g", 2, &["--unlock"]);
    switch(&env, "garbage", true);
    env.ok(&["tick"]); // prestage
    env.ok(&["tick"]); // staged, reco submitted: garbage
    let files = env.ok(&["dataset", "files", "g"]);
    assert!(files.contains("printed no job id"), "{files}");
    assert!(files.contains("Service Unavailable"), "{files}");
    switch(&env, "garbage", false);
    let v = tick_until_rest(&env, "g");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
}

#[test]
fn a_refusing_tool_fails_the_attempt_with_its_stderr_and_attempts_run_out() {
    let env = Env::new();
    setup(&env, 10);
    env.add("r", 1, &["--unlock"]);
    switch(&env, "refuse", true);
    let v = tick_until_rest(&env, "r");
    assert_eq!(v["reco"], "FAILED", "{v}");
    let files = env.ok(&["dataset", "files", "r"]);
    assert!(files.contains("reco_failed_for_good"), "{files}");
    assert!(
        files.contains("attempt 3:")
            && files.contains("exited 1: condor_submit: ERROR: queue full"),
        "{files}"
    );
}

#[test]
fn a_hanging_tool_is_killed_at_the_timeout_and_the_attempt_fails() {
    let env = Env::new();
    setup(&env, 1);
    env.add("h", 1, &["--unlock"]);
    switch(&env, "hang", true);
    env.ok(&["tick"]);
    let t = std::time::Instant::now();
    env.ok(&["tick"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "the tick waited for the hanging tool"
    );
    let files = env.ok(&["dataset", "files", "h"]);
    assert!(files.contains("timed out after 1 s"), "{files}");
}

#[test]
fn a_job_that_vanishes_after_its_id_was_printed_is_lost_and_retried() {
    let env = Env::new();
    setup(&env, 10);
    env.add("l", 1, &["--unlock"]);
    switch(&env, "lose", true);
    env.ok(&["tick"]);
    env.ok(&["tick"]); // submitted, id recorded
    switch(&env, "lose", false);
    let v = tick_until_rest(&env, "l");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    let h: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "history", "l", "--entity", "reco_job"])).unwrap();
    let lost = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "lost")
        .count();
    assert_eq!(lost, 1, "{h}");
    let jobs = std::fs::read_dir(env.path("state/jobs")).unwrap().count();
    assert!(
        jobs >= 2,
        "the lost job was not resubmitted as a new attempt"
    );
}

#[test]
fn a_crashing_job_keeps_its_exit_code_and_reason() {
    let env = Env::new();
    setup(&env, 10);
    env.add("c", 1, &["--unlock"]);
    switch(&env, "crash", true);
    env.ok(&["tick"]);
    env.ok(&["tick"]);
    env.ok(&["tick"]);
    let h: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "history", "c", "--entity", "reco_job"])).unwrap();
    let failed = h
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "failed")
        .expect("a failed job");
    assert_eq!(failed["reason"], "segmentation violation", "{h}");
}

#[test]
fn a_command_config_without_its_steps_names_the_missing_key() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write(
        "repro.toml",
        "[backend]\nkind = \"command\"\n[backend.command]\nreco_submit = [\"x\"]\n",
    );
    let out = env.run(&["dataset", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key `backend.command.merge_submit` = unset"),
        "{}",
        render(&out)
    );
}

#[test]
fn files_that_failed_for_good_are_recovered_after_cleaned_without_redoing_what_was_merged() {
    let env = Env::new();
    setup(&env, 60); // a loaded CI machine is slow; a timeout would be a failed attempt
    // One tool at a time: the fake batch system's job counter is not safe against itself.
    let config = std::fs::read_to_string(env.path("repro.toml"))
        .unwrap()
        .replace("parallel = 3", "parallel = 1");
    env.write("repro.toml", &format!("{config}merge_partial = true\n"));
    env.add("tape", 4, &["--unlock"]);
    std::fs::create_dir_all(env.path("state")).unwrap();
    env.write("state/bad", "tape.reco.f4\n");
    let v = tick_until_rest(&env, "tape");
    assert_eq!(
        (v["reco"].as_str(), v["cleanup"].as_str()),
        (Some("PARTIAL"), Some("CLEANED")),
        "{v}"
    );
    assert_eq!(v["files"]["reco_failed_for_good"], 1);
    let declared_before = std::fs::read_to_string(env.path("state/catalog")).unwrap();
    // A week later the tape is fixed; the operator brings the file back.
    std::fs::remove_file(env.path("state/bad")).unwrap();
    insta::assert_snapshot!(env.show(&env.run(&["retry", "tape", "--reason", "tape fixed"])), @r#"
    status: 0
    --- stdout
    tape: retried; 1 raw file with fresh attempts; now lock=UNLOCK prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE
    --- stderr
    "#);
    let v = tick_until_rest(&env, "tape");
    assert_eq!(
        (
            v["reco"].as_str(),
            v["merge"].as_str(),
            v["cleanup"].as_str()
        ),
        (Some("COMPLETED"), Some("MERGED_DBUP"), Some("CLEANED")),
        "{v}\n{}\n{}",
        env.ok(&["dataset", "files", "tape"]),
        env.ok(&["dataset", "jobs", "tape"])
    );
    assert_eq!(v["files"]["cleaned"], 4, "{v}");
    // What was merged and declared stayed; the recovered file got a group of its own.
    let declared = std::fs::read_to_string(env.path("state/catalog")).unwrap();
    // Declarations run in parallel, so the first two may come in either order.
    assert!(declared.starts_with(&declared_before), "{declared}");
    let mut names: Vec<&str> = declared.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["tape.merged.0001", "tape.merged.0002", "tape.merged.0003"]
    );
    assert_eq!(
        declared.lines().last(),
        Some("tape.merged.0003"),
        "declared after recovery"
    );
    let h = env.ok(&["history", "tape", "--entity", "dataset"]);
    assert!(h.contains("recover") && h.contains("tape fixed"), "{h}");
}

/// How many times the tool was called with `cmd`.
fn calls(env: &Env, cmd: &str) -> usize {
    std::fs::read_to_string(env.path("calls"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == cmd)
        .count()
}

#[test]
fn with_a_cursor_tool_ticks_leave_a_waiting_dataset_alone_until_the_cursor_moves() {
    let env = Env::new();
    setup_with(&env, 10, r#"cursor = ["{t}", "cursor", "{dataset}"]"#);
    switch(&env, "hold", true);
    env.add("cmd", 4, &["--unlock"]);
    // Jobs submitted and queued: within a few ticks one finds nothing new and nothing to
    // do, and from then on ticks leave the dataset alone.
    let mut quiet = false;
    for _ in 0..6 {
        if tick_settled(&env, "cmd") {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the dataset never settled: {}", state(&env, "cmd"));
    assert_eq!(state(&env, "cmd")["reco"], "RUNNING");
    let (asked, cursors) = (calls(&env, "status"), calls(&env, "cursor"));
    for _ in 0..3 {
        assert!(tick_settled(&env, "cmd"));
    }
    assert_eq!(calls(&env, "status"), asked, "a settled dataset was polled");
    assert_eq!(calls(&env, "cursor"), cursors + 3, "one cursor call a tick");

    // The jobs are let go: the cursor moves, the next tick looks and the dataset goes on.
    switch(&env, "hold", false);
    assert!(!tick_settled(&env, "cmd"));
    assert!(calls(&env, "status") > asked);
    let v = tick_until_rest(&env, "cmd");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
}

#[test]
fn a_cursor_tool_that_prints_garbage_fails_the_tick_naming_it() {
    let env = Env::new();
    setup_with(&env, 10, r#"cursor = ["{t}", "cursor", "{dataset}"]"#);
    env.add("cmd", 2, &["--unlock"]);
    switch(&env, "garbled", true);
    let out = env.run(&["tick"]);
    assert!(!out.status.success(), "{}", render(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cursor for cmd")
            && err.contains("tool.sh printed no cursor")
            && err.contains("one\\ntwo"),
        "{err}"
    );
    // Nothing was lost: with the tool mended, the dataset goes on to the end.
    switch(&env, "garbled", false);
    let v = tick_until_rest(&env, "cmd");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
}

#[test]
fn an_empty_command_in_the_configuration_names_its_key() {
    let env = Env::new();
    setup(&env, 10);
    let config = std::fs::read_to_string(env.path("repro.toml")).unwrap();
    env.write(
        "repro.toml",
        &config.replace("[policy]", "cursor = []\n[policy]"),
    );
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(2), "{}", render(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backend.command.cursor"), "{err}");
}

#[test]
fn a_batch_system_refusing_every_job_is_one_outage_line_that_clears_by_itself() {
    let env = Env::new();
    setup_with(
        &env,
        10,
        "[backend.command.errors.reco_submit]\ntransient = [\"queue full\"]\n\
         [policy.outage]\nfailures = 3\nfirst_delay_s = 2\nmax_delay_s = 4\n",
    );
    env.add("ds", 4, &["--unlock"]);
    switch(&env, "refuse", true);
    // Staged, then every reco submission refused: one line for cron's mail, not four
    // failures, and no attempt spent.
    let mut mail = String::new();
    for _ in 0..3 {
        mail.push_str(&env.ok(&["-q", "tick"]));
    }
    let lines: Vec<&str> = mail.lines().collect();
    assert_eq!(lines.len(), 1, "{mail}");
    assert!(
        lines[0].starts_with("ds: batch system (reco) unavailable since ")
            && lines[0].contains("(attempt 1: transient: ")
            && lines[0].contains("queue full")
            && lines[0].contains("), next try "),
        "{mail}"
    );
    let v = state(&env, "ds");
    assert_eq!(v["outages"][0]["step"], "reco", "{v}");
    assert_eq!(v["outages"][0]["tries"], 1, "{v}");
    // Each made its first attempt, and each was given back: none counts against the cap.
    let files: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "files", "ds"])).unwrap();
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        assert_eq!(
            (&f["state"], &f["attempts"], &f["attempt_base"]),
            (&"reco_failed".into(), &1.into(), &1.into()),
            "{f}"
        );
    }
    let show = env.ok(&["dataset", "show", "ds"]);
    assert!(
        show.contains("outage    batch system (reco) unavailable"),
        "{show}"
    );
    // The batch system is back: the next try, once due, ends it and the dataset goes on.
    switch(&env, "refuse", false);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let back = env.ok(&["-q", "tick"]);
    assert!(
        back.starts_with("ds: batch system (reco) is back after "),
        "{back}"
    );
    let v = tick_until_rest(&env, "ds");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    assert!(v.get("outages").is_none(), "{v}");
}
