//! `repro init` and `repro dataset ...`.

use crate::support::Env;

#[test]
fn commands_before_init_say_to_run_init() {
    let env = Env::new();
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list"])), @r#"
    status: 1
    --- stdout
    --- stderr
    repro: the database schema is missing ([DIR]/repro.db does not exist; give the database with --db or REPRO_DATABASE_URL); run `repro init` to create or upgrade it
    "#);
    // Nothing but `init` creates the file.
    assert!(!env.path("repro.db").exists());
}

#[test]
fn init_is_idempotent() {
    let env = Env::new();
    let first = env.ok(&["init"]);
    assert_eq!(env.ok(&["init"]), first);
    assert!(
        first.starts_with("schema is current at sqlite://"),
        "{first}"
    );
}

#[test]
fn add_list_show_and_files() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write("wz.list", "# the W->Z sample\n/store/wz/raw_001.dat 1000\n\n/store/wz/raw_002.dat 2000 # second\n/store/wz/raw_003.dat\n");
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "p17.wz", "--files", "wz.list", "--site", "prague"])), @r#"
    status: 0
    --- stdout
    registered p17.wz: 3 raw files, LOCK
    --- stderr
    "#);
    env.add("p17.qcd", 2, &["--unlock"]);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list"])), @r#"
    status: 0
    --- stdout
    NAME     SITE    LOCK    PRESTAGE  RECO      MERGE     CLEANUP   FILES staged/reco/merged/cleaned  FAILED
    p17.qcd  -       UNLOCK  NOT DONE  NOT DONE  NOT DONE  NOT DONE  0/0/0/0 of 2                      0
    p17.wz   prague  LOCK    NOT DONE  NOT DONE  NOT DONE  NOT DONE  0/0/0/0 of 3                      0
    --- stderr
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list", "--state", "LOCK"])), @r#"
    status: 0
    --- stdout
    NAME    SITE    LOCK  PRESTAGE  RECO      MERGE     CLEANUP   FILES staged/reco/merged/cleaned  FAILED
    p17.wz  prague  LOCK  NOT DONE  NOT DONE  NOT DONE  NOT DONE  0/0/0/0 of 3                      0
    --- stderr
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "show", "p17.wz"])), @r#"
    status: 0
    --- stdout
    name      p17.wz
    site      prague
    lock      LOCK
    prestage  NOT DONE     0/3 staged
    reco      NOT DONE     0/3 reconstructed
    merge     NOT DONE     0/0 merged, 0 group(s)
    cleanup   NOT DONE     0/0 cleaned
    updated   [TIME] UTC
    files     3
      registered            3
    --- stderr
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "files", "p17.wz"])), @r#"
    status: 0
    --- stdout
    ID  LFN                    STATE       ATTEMPTS  TMB  LAST ERROR
    1   /store/wz/raw_001.dat  registered  0         -    -
    2   /store/wz/raw_002.dat  registered  0         -    -
    3   /store/wz/raw_003.dat  registered  0         -    -
    page 1 of 1 (100 a page)
    --- stderr
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "files", "p17.wz", "--per-page", "2", "--page", "2"])), @r#"
    status: 0
    --- stdout
    ID  LFN                    STATE       ATTEMPTS  TMB  LAST ERROR
    3   /store/wz/raw_003.dat  registered  0         -    -
    page 2 of 2 (2 a page)
    --- stderr
    "#);
}

#[test]
fn json_output_uses_the_predecessor_scripts_words_and_counts_every_file_state() {
    let env = Env::new();
    env.ok(&["init"]);
    env.add("p17.wz", 2, &[]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "list"])).unwrap();
    let d = &v[0];
    assert_eq!(d["name"], "p17.wz");
    assert_eq!(d["lock"], "LOCK");
    assert_eq!(d["prestage"], "NOT DONE");
    assert_eq!(d["reco"], "NOT DONE");
    assert_eq!(d["merge"], "NOT DONE");
    assert_eq!(d["cleanup"], "NOT DONE");
    assert_eq!(d["files"]["total"], 2);
    assert_eq!(d["files"]["registered"], 2);
    assert_eq!(d["files"]["reco_failed_for_good"], 0);
    let one: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "show", "p17.wz"])).unwrap();
    assert_eq!(&one, d);
    // Times are RFC 3339 with their zone; what is absent is null.
    let updated = d["updated_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(updated).is_ok(),
        "{updated}"
    );
    assert!(updated.ends_with('Z'), "{updated}");
    let h: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "history", "p17.wz"])).unwrap();
    let registered = &h[0];
    assert_eq!(registered["via"], "register");
    assert!(registered["from"].is_null(), "{registered}");
    assert!(chrono::DateTime::parse_from_rfc3339(registered["at"].as_str().unwrap()).is_ok());
    // `plan --json` gives the state as the same five columns.
    env.ok(&["unlock", "p17.wz"]);
    let p: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "plan"])).unwrap();
    assert_eq!(p[0]["lock"], "UNLOCK");
    assert_eq!(p[0]["prestage"], "NOT DONE");
    assert_eq!(p[0]["transitions"][0], "start_prestage");
}

#[test]
fn bad_input_is_named_and_registers_nothing() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write("bad.list", "/a 1\n/b lots\n/c 3\n");
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "x", "--files", "bad.list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: bad.list:2: size "lots" is not a number of bytes
    "#);
    env.write("dup.list", "/a\n/b\n/a\n");
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "x", "--files", "dup.list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: dup.list:3: file "/a" is listed twice (first on line 1)
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "bad/name", "--files", "dup.list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: dataset name "bad/name" contains '/' at position 4; only letters, digits and `_ - . +` are allowed
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "x", "--files", "missing.list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: cannot read file list missing.list: No such file or directory (os error 2)
    "#);
    // Nothing was registered by any of these.
    assert_eq!(env.ok(&["--json", "dataset", "list"]).trim(), "[]");
    env.add("x", 1, &[]);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "add", "x", "--files", "x.list"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: a dataset named "x" already exists
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "show", "nope"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: no dataset named "nope"
    "#);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list", "--state", "DONE"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: "DONE" is not a state word; expected one of LOCK, UNLOCK, NOT DONE, RUNNING, PRESTAGE, FAILED, PARTIAL, COMPLETED, MERGED, MERGED_DBUP, CLEANED
    "#);
}

#[test]
fn a_file_list_can_come_from_stdin() {
    let env = Env::new();
    env.ok(&["init"]);
    let out = env
        .cmd(&["dataset", "add", "piped", "--files", "-"])
        .write_stdin("/x 1\n/y 2\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "registered piped: 2 raw files, LOCK\n"
    );
}

#[test]
fn samples_group_datasets_and_priorities_order_the_work() {
    let env = Env::new();
    env.ok(&["init"]);
    assert_eq!(
        env.ok(&["sample", "list"]),
        "no dataset is in a sample; `repro sample set SAMPLE NAME...` puts them in one\n"
    );
    env.write("three.list", "/r/a 10\n/r/b 10\n/r/c 10\n");
    for (name, sample) in [("wz.1", "p17.wz"), ("wz.2", "p17.wz"), ("top.1", "p17.top")] {
        env.ok(&[
            "dataset",
            "add",
            name,
            "--files",
            "three.list",
            "--unlock",
            "--sample",
            sample,
        ]);
    }
    env.ok(&[
        "dataset",
        "add",
        "loose",
        "--files",
        "three.list",
        "--priority",
        "-2",
    ]);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "list", "--sample", "p17.wz"])), @r#"
    status: 0
    --- stdout
    NAME  SITE  LOCK    PRESTAGE  RECO      MERGE     CLEANUP   FILES staged/reco/merged/cleaned  FAILED
    wz.1  -     UNLOCK  NOT DONE  NOT DONE  NOT DONE  NOT DONE  0/0/0/0 of 3                      0
    wz.2  -     UNLOCK  NOT DONE  NOT DONE  NOT DONE  NOT DONE  0/0/0/0 of 3                      0
    --- stderr
    "#);
    // A tick over one sample leaves the others alone.
    env.ok(&["tick", "--sample", "p17.top"]);
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "list"])).unwrap();
    let prestage: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["prestage"].as_str().unwrap()))
        .collect();
    assert_eq!(
        prestage,
        [
            ("loose", "NOT DONE"),
            ("top.1", "RUNNING"),
            ("wz.1", "NOT DONE"),
            ("wz.2", "NOT DONE")
        ]
    );
    insta::assert_snapshot!(env.show(&env.run(&["sample", "list"])), @r#"
    status: 0
    --- stdout
    SAMPLE   DATASETS  CLEANED  FAILED  LOCKED  FILES staged/reco/merged/cleaned  FAILED FILES
    p17.top  1         0        0       0       0/0/0/0 of 3                      0
    p17.wz   2         0        0       0       0/0/0/0 of 6                      0
    (none)   1         0        0       1       0/0/0/0 of 3                      0
    --- stderr
    "#);
    env.ok(&["sample", "set", "p17.top", "wz.2", "--reason", "misfiled"]);
    env.ok(&["priority", "wz.2", "7"]);
    insta::assert_snapshot!(env.show(&env.run(&["dataset", "show", "wz.2"])).lines().take(4).collect::<Vec<_>>().join("\n"), @r"
    status: 0
    --- stdout
    name      wz.2
    site      -
    ");
    let show = env.ok(&["dataset", "show", "wz.2"]);
    assert!(show.contains("sample    p17.top\npriority  7\n"), "{show}");
    let history = env.ok(&["history", "wz.2"]);
    assert!(
        history.contains("set_sample") && history.contains("misfiled"),
        "{history}"
    );
    assert!(history.contains("set_priority"), "{history}");
    let json = env.ok(&["--json", "sample", "list"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["sample"], "p17.top");
    assert_eq!(v[0]["datasets"], 2);
    assert_eq!(v[0]["files"]["total"], 6);
    assert_eq!(v[2]["sample"], serde_json::Value::Null);
    env.ok(&["sample", "clear", "wz.2"]);
    assert!(!env.ok(&["dataset", "show", "wz.2"]).contains("sample "));

    // Bad names are usage errors that change nothing.
    insta::assert_snapshot!(env.show(&env.run(&["sample", "set", "p17 W/Z", "wz.1"])), @r#"
    status: 2
    --- stdout
    --- stderr
    repro: sample name "p17 W/Z" contains ' ' at position 4; only letters, digits and `_ - . +` are allowed
    "#);
    let out = env.run(&["sample", "set", "p17.x", "wz.1", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.show(&out));
    assert!(
        env.ok(&["dataset", "show", "wz.1"])
            .contains("sample    p17.wz"),
        "a set with an unknown dataset changed another"
    );
    let out = env.run(&[
        "dataset",
        "add",
        "bad",
        "--files",
        "three.list",
        "--sample",
        "a/b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        env.ok(&["dataset", "list"])
            .lines()
            .all(|l| !l.starts_with("bad "))
    );
}
