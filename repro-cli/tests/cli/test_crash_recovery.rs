//! `kill -9` of a running `repro tick`, many times at random moments: the next plain ticks
//! take over the dead process's leases at once (no waiting for them to expire), finish
//! every dataset, and the journal shows nothing done twice.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Env, journal, render};

const KILLS: usize = 30;

/// A small deterministic sequence of delays, so a failure can be replayed.
fn delays() -> impl Iterator<Item = Duration> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(x % 80)
    })
}

#[test]
fn ticks_killed_at_random_moments_leave_nothing_stuck_and_nothing_done_twice() {
    let env = Env::new();
    env.write(
        "repro.toml",
        "[backend.sim]\nseed = 5\njournal = \"journal.jsonl\"\nreco_failure = 0.05\nmerge_failure = 0.05\nlost_job = 0.02\n[policy]\nmax_attempts = 6\nmerge_group_files = 10\n[lease]\nttl_s = 3600\n",
    );
    env.ok(&["init"]);
    for d in 0..5 {
        env.add(&format!("crash.{d}"), 60, &["--unlock"]);
    }
    // Until KILLS ticks were killed while running (a tick that finished first does not
    // count), at moments from the sequence.
    let mut killed = 0;
    for delay in delays().take(20 * KILLS) {
        if killed == KILLS {
            break;
        }
        let mut child = env
            .spawnable(&["-q", "tick"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start repro tick");
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert_eq!(
        killed, KILLS,
        "too few ticks were still running when killed"
    );

    // Plain ticks now: with an hour-long lease, any dataset still held by a dead process
    // would be skipped; none may be.
    for round in 0..40 {
        let out = env.run(&["--json", "tick"]);
        assert!(out.status.success(), "{}", render(&out));
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for r in reports.as_array().unwrap() {
            assert!(r["skipped"].is_null(), "round {round}: {r}");
        }
        let list: serde_json::Value =
            serde_json::from_str(&env.ok(&["--json", "dataset", "list"])).unwrap();
        if list
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["cleanup"] == "CLEANED")
        {
            break;
        }
    }
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "list"])).unwrap();
    for d in list.as_array().unwrap() {
        assert_eq!(d["cleanup"], "CLEANED", "{d}");
    }
    let mut seen = HashSet::new();
    for e in journal(&env.path("journal.jsonl")) {
        assert!(seen.insert(e.clone()), "done twice: {e:?}");
    }
    // The takeovers are in the history.
    let took_over: usize = (0..5)
        .map(|d| {
            let h = env.ok(&[
                "--json",
                "history",
                &format!("crash.{d}"),
                "--entity",
                "dataset",
            ]);
            h.matches("take_over_lease").count()
        })
        .sum();
    assert!(
        took_over > 0,
        "no lease was taken over: the kills never hit a held lease"
    );
}
