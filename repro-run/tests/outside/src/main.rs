//! Outside the workspace: drive a dataset to CLEANED with the library's driver and the sim
//! backend, then try to write illegal moves and see them refused with the rows unchanged.

use repro_run::backend::sim::SimBackend;
use repro_run::lifecycle::Change;
use repro_run::lifecycle::file::{FileEvent, FileState};
use repro_run::{CleanupWord, DatasetName, DbError, NewFile, Register, Store};
use repro_run::{Config, Driver, Op};

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("outside-tool.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&repro_run::demo::sqlite_url(&dir.join("o.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let names = [
        DatasetName::new("outside.a").unwrap(),
        DatasetName::new("outside.b").unwrap(),
    ];
    for n in &names {
        let files: Vec<_> = (0..20)
            .map(|i| NewFile::new(format!("{n}/{i}"), 10))
            .collect();
        store
            .register(n, &files, &Register::unlocked(), "outside")
            .await
            .unwrap();
    }

    // (a) the library's driver, with a built-in backend, to CLEANED.
    let mut config = Config::default();
    config.backend.sim.world = dir.join("world");
    (config.backend.sim.reco_failure, config.backend.sim.lost_job) = (0.0, 0.0);
    let sim = SimBackend::new(config.backend.sim.clone(), 0.0);
    for _ in 0..20 {
        let run = Driver::new(&store, &sim)
            .run_many(Op::Tick, &names[..1], false)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
    }
    let a = store.summary(&names[0]).await.unwrap();
    assert_eq!(
        a.status.columns().cleanup,
        CleanupWord::Cleaned,
        "{}",
        a.status.columns()
    );

    // (b) an illegal file move is refused and nothing is written.
    let before = store.load(&names[1]).await.unwrap();
    let f = before.files.values().next().unwrap();
    let forged = Change::File {
        id: f.id,
        from: FileState::Registered,
        attempts: 0,
        event: FileEvent::Clean,
        to: FileState::Cleaned,
        error: None,
        tmb: None,
        retry: None,
    };
    let err = store
        .apply(&names[1], &[forged], "outside")
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Illegal(_)), "{err}");
    assert_eq!(store.load(&names[1]).await.unwrap(), before);
    println!(
        "outside tool: {} CLEANED; an illegal move refused: {err}",
        names[0]
    );
    std::fs::remove_dir_all(&dir).ok();
}
