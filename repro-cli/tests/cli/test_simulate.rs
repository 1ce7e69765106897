//! `repro simulate`: what an operator planning capacity sees, and that the live database
//! is only read.

use crate::support::Env;

/// A world of 6 batch slots, 2-hour reco jobs, 60 files staged an hour, and limits.
const CONFIG: &str = r#"
[backend.sim]
reco_failure = 0.0
merge_failure = 0.0
lost_job = 0.0
stage_duration_s = 600
reco_duration_s = 7200
merge_duration_s = 1800
slots = 6
stage_rate = 60

[limits]
stage_requests = 10
reco_jobs = 8
merge_jobs = 1
"#;

const CAMPAIGN: &str = r#"
[[dataset]]
name = "p17.wz"
count = 2
files = 12
site = "fnal"
sample = "p17.wz"
priority = 5

[[dataset]]
name = "p17.qcd"
files = 12
site = "fnal"
sample = "p17.qcd"
"#;

/// Stdout without the real time the simulation took.
fn without_wall_time(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, rest) = text.split_once("(simulated in ").expect("the wall time");
    let (_, tail) = rest.split_once(" s)").unwrap();
    format!("{head}(simulated in [WALL] s){tail}")
}

#[test]
fn simulate_prints_when_each_dataset_and_sample_rests_the_peaks_and_the_chart() {
    let env = Env::new();
    env.write("repro.toml", CONFIG);
    env.write("campaign.toml", CAMPAIGN);
    let out = env.run(&[
        "simulate",
        "--campaign",
        "campaign.toml",
        "--every",
        "1h",
        "--chart",
        "chart.svg",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::render(&out)
    );
    insta::assert_snapshot!(without_wall_time(&out), @r"
3 datasets (36 raw files), a tick every 1h: all at rest at 17.0 h after 17 ticks (simulated in [WALL] s)
bottleneck: reco (file-hours: prestage 24%, reco 53%, merge 23%, cleanup 0%)
waited for: reco jobs in flight (13 dataset-ticks), stage requests (9 dataset-ticks)

DATASET     SAMPLE   SITE  AT REST  STATE
p17.wz.000  p17.wz   fnal  8.0 h    PRESTAGE COMPLETED MERGED_DBUP CLEANED
p17.wz.001  p17.wz   fnal  14.0 h   PRESTAGE COMPLETED MERGED_DBUP CLEANED
p17.qcd     p17.qcd  fnal  17.0 h   PRESTAGE COMPLETED MERGED_DBUP CLEANED

SAMPLE   DATASETS  AT REST
p17.wz   2         14.0 h
p17.qcd  1         17.0 h

SITE  PEAK STAGE REQUESTS  PEAK DISK  PEAK RECO JOBS  PEAK MERGE JOBS
fnal  10 of 10             54.0 GB    8 of 8          1 of 1

HOUR  TO STAGE  STAGING  TO RECO  IN RECO  TO MERGE  MERGED  CLEANED  FAILED  RECO JOBS  MERGE JOBS  DISK
0     36        0        0        0        0         0       0        0       0          0           0 B
1     26        10       0        0        0         0       0        0       0          0           54.0 GB
2     16        10       10       0        0         0       0        0       0          0           54.0 GB
3     14        2        12       8        0         0       0        0       8          0           54.0 GB
4     6         8        14       8        0         0       0        0       8          0           54.0 GB
5     4         2        16       8        6         0       0        0       8          0           54.0 GB
6     0         4        18       8        6         0       0        0       8          0           54.0 GB
7     0         0        16       8        12        0       0        0       8          1           54.0 GB
8     0         0        16       8        0         0       12       0       8          0           36.0 GB
9     0         0        11       8        5         0       12       0       8          0           36.0 GB
10    0         0        10       8        6         0       12       0       8          0           36.0 GB
11    0         0        5        8        11        0       12       0       8          0           36.0 GB
12    0         0        4        8        12        0       12       0       8          1           36.0 GB
13    0         0        4        3        17        0       12       0       3          1           36.0 GB
14    0         0        0        6        6         0       24       0       6          0           18.0 GB
15    0         0        0        4        8         0       24       0       4          0           18.0 GB
16    0         0        0        0        12        0       24       0       0          1           18.0 GB
17    0         0        0        0        0         0       36       0       0          0           0 B
chart: chart.svg
    ");
    let svg = std::fs::read_to_string(env.path("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("raw files per phase"));
    // Nothing was written where the operator is: no database appeared.
    assert!(!env.path("repro.db").exists());

    let json = env.run(&[
        "--json",
        "simulate",
        "--campaign",
        "campaign.toml",
        "--every",
        "1h",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["datasets"].as_array().unwrap().len(), 3);
    assert_eq!(v["peaks"][0]["limits"]["reco_jobs"], 8);
    assert!(v["peaks"][0]["peak"]["reco_jobs"].as_u64().unwrap() <= 8);
    assert!(
        v["chart"].as_array().unwrap().len() > 10,
        "a row per simulated hour"
    );
}

#[test]
fn simulate_plays_the_database_forward_without_writing_it() {
    let env = Env::new();
    env.write("repro.toml", CONFIG);
    env.ok(&["init"]);
    env.add("p17.top", 10, &["--unlock", "--site", "fnal"]);
    env.add("p17.held", 4, &[]);
    env.ok(&["tick"]);
    let list = env.ok(&["dataset", "list"]);
    let history = env.ok(&["history", "p17.top"]);
    let out = env.run(&["simulate", "--every", "30m"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::render(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("2 datasets (14 raw files), a tick every 30m: all at rest at "),
        "{text}"
    );
    assert!(
        text.contains(
            "p17.held  -       -     not at rest  LOCK NOT DONE NOT DONE NOT DONE NOT DONE"
        ),
        "{text}"
    );
    assert_eq!(
        env.ok(&["dataset", "list"]),
        list,
        "the live database is only read"
    );
    assert_eq!(env.ok(&["history", "p17.top"]), history);
}

#[test]
fn bad_campaigns_and_spans_are_input_errors_and_a_short_horizon_exits_5() {
    let env = Env::new();
    env.write("repro.toml", CONFIG);
    let err = |args: &[&str]| {
        let out = env.run(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, e) = err(&["simulate", "--campaign", "missing.toml"]);
    assert_eq!(code, Some(2));
    assert!(e.contains("campaign missing.toml: cannot read it"), "{e}");
    env.write("typo.toml", "[[dataset]]\nname = \"a\"\nfile = 3\n");
    let (code, e) = err(&["simulate", "--campaign", "typo.toml"]);
    assert_eq!(code, Some(2));
    assert!(
        e.contains("campaign typo.toml") && e.contains("unknown field `file`"),
        "{e}"
    );
    env.write("name.toml", "[[dataset]]\nname = \"bad name\"\nfiles = 3\n");
    let (code, e) = err(&["simulate", "--campaign", "name.toml"]);
    assert_eq!(code, Some(2));
    assert!(e.contains("bad name"), "{e}");
    for (args, says) in [
        (&["simulate", "--datasets", "2"][..], "--files"),
        (
            &[
                "simulate",
                "--datasets",
                "2",
                "--files",
                "3",
                "--every",
                "0",
            ],
            "at least a second",
        ),
        (
            &[
                "simulate",
                "--datasets",
                "2",
                "--files",
                "3",
                "--every",
                "5w",
            ],
            "the unit is one of s, m, h, d",
        ),
    ] {
        let (code, e) = err(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(e.contains(says), "{args:?}: {e}");
    }
    let out = env.run(&[
        "simulate",
        "--datasets",
        "2",
        "--files",
        "40",
        "--horizon",
        "3h",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        crate::support::render(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT all at rest within the horizon"));
    // A database with nothing unlocked has nothing to play.
    env.ok(&["init"]);
    env.add("p17.held", 3, &[]);
    let (code, e) = err(&["simulate"]);
    assert_eq!(code, Some(2));
    assert!(
        e.contains("nothing to simulate: no dataset is unlocked"),
        "{e}"
    );
}
