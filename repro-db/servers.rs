// Marks which database servers this build's tests may use, so that a test on a server
// that is not there is reported ignored, not passed: `cfg(repro_mysql)` when
// `REPRO_TEST_MYSQL_URL` is set, `cfg(repro_postgres)` when `REPRO_TEST_POSTGRES_URL` is;
// both under `CI`, where a missing server fails its tests.

fn main() {
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var_os("CI").is_some();
    for (var, cfg) in [
        ("REPRO_TEST_MYSQL_URL", "repro_mysql"),
        ("REPRO_TEST_POSTGRES_URL", "repro_postgres"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if ci || std::env::var_os(var).is_some() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
