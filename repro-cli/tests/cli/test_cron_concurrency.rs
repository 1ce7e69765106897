//! Cron gone wild: `repro tick` in a loop from several processes at once against one
//! database and one simulated world. The journal proves nothing was done twice, and every
//! dataset ends CLEANED.

use std::collections::HashSet;
use std::thread;

use crate::support::{Env, journal};

const PROCESSES: usize = 3;
const DATASETS: usize = 6;
const FILES: usize = 25;

fn campaign(env: &Env, db: &str) {
    // Failures and lost jobs on, so retries happen under contention too.
    env.write(
        "repro.toml",
        "[backend.sim]\nseed = 11\njournal = \"journal.jsonl\"\nreco_failure = 0.1\nmerge_failure = 0.1\nlost_job = 0.05\nstage_failure = 0.05\n[policy]\nmax_attempts = 5\nmerge_group_files = 7\n[lease]\nttl_s = 120\n",
    );
    let run = |args: &[&str]| env.ok_at(db, args);
    run(&["init"]);
    for d in 0..DATASETS {
        let name = format!("cron.{d}");
        let list: String = (0..FILES)
            .map(|f| format!("/store/{name}/f{f:03}.raw 1000\n"))
            .collect();
        let file = env.write(&format!("{name}.list"), &list);
        run(&[
            "dataset",
            "add",
            &name,
            "--files",
            file.to_str().unwrap(),
            "--unlock",
        ]);
    }
    thread::scope(|s| {
        for _ in 0..PROCESSES {
            s.spawn(|| {
                for _ in 0..40 {
                    run(&["-q", "tick"]);
                    let v: serde_json::Value =
                        serde_json::from_str(&run(&["--json", "dataset", "list"])).unwrap();
                    if v.as_array()
                        .unwrap()
                        .iter()
                        .all(|d| d["cleanup"] == "CLEANED")
                    {
                        break;
                    }
                }
            });
        }
    });
    let v: serde_json::Value = serde_json::from_str(&run(&["--json", "dataset", "list"])).unwrap();
    for d in v.as_array().unwrap() {
        assert_eq!(d["cleanup"], "CLEANED", "{d}");
        assert_eq!(d["merge"], "MERGED_DBUP", "{d}");
    }
    let j = journal(&env.path("journal.jsonl"));
    let mut seen = HashSet::new();
    for e in &j {
        assert!(seen.insert(e.clone()), "done twice: {e:?}");
    }
    // Every file was staged and deleted; retries only ever added attempts.
    let deletes = j
        .iter()
        .filter(|e| e.0 == "delete")
        .map(|e| (&e.1, &e.2))
        .collect::<HashSet<_>>();
    let reconstructed: usize = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["files"]["cleaned"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(deletes.len(), reconstructed);
    assert!(
        j.iter().any(|e| e.3 > 1),
        "no retries happened; the test lost its teeth"
    );
}

#[test]
fn concurrent_ticks_on_one_sqlite_file_do_nothing_twice() {
    let env = Env::new();
    let db = env.db.clone();
    campaign(&env, &db);
}

#[test]
#[cfg_attr(
    not(repro_mysql),
    ignore = "needs a MariaDB server: set REPRO_TEST_MYSQL_URL"
)]
fn concurrent_ticks_on_one_mariadb_database_do_nothing_twice() {
    // Ignored without it (see the build script); run anyway, it fails.
    let admin = std::env::var("REPRO_TEST_MYSQL_URL")
        .expect("REPRO_TEST_MYSQL_URL is not set: no MariaDB server to test on");
    let name = format!("repro_cli_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: String| {
        rt.block_on(async {
            use sea_orm_free::exec;
            exec(&admin, &sql).await
        })
    };
    exec(format!("DROP DATABASE IF EXISTS {name}"));
    exec(format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let env = Env::new();
    campaign(&env, &format!("{base}/{name}"));
    exec(format!("DROP DATABASE IF EXISTS {name}"));
}

/// Administration through the library's own connection type, as a tool would.
mod sea_orm_free {
    pub async fn exec(url: &str, sql: &str) {
        let store = repro_db::Store::open(url).await.expect("reach the server");
        store
            .execute_unprepared(sql)
            .await
            .expect("administer the server");
    }
}
