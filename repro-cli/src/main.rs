//! `repro`: the dataset reprocessing lifecycle from the command line and cron.

mod cli;
mod error;
mod output;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use repro_core::{DatasetName, FileState, operator};
use repro_db::{ListFilter, Register, Store};
use repro_run::driver::default_actor as actor;
use repro_run::{Config, Driver, Op, Report, filelist, web};

use crate::cli::{
    AddArgs, Cli, Command, DatasetCommand, DemoArgs, FilesArgs, LogFormat, SampleCommand,
    SimulateArgs, Target,
};
use crate::error::CliError;

/// mimalloc, not the system allocator: rows are allocated on SQLite's worker threads and
/// freed on the runtime's, and glibc kept what was freed in per-thread arenas (a
/// 1,000,000-file campaign peaked at several times its live heap).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repro: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("repro: {e}");
            e.exit_code()
        }
    }
}

/// `repro simulate | head` closes the pipe early: the run ends quietly, with the status a
/// shell gives a tool that SIGPIPE ended (141), as `cat` and `grep` do, instead of a panic's
/// message. Only stdout's own broken pipe: a site tool's pipe is an error of its step.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPRO_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "repro={level},repro_run={level},repro_db={level},sea_orm=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The configuration: `--config FILE`, else `./repro.toml` when present, else defaults.
fn load_config(explicit: Option<&Path>) -> Result<Config, CliError> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => (PathBuf::from("repro.toml"), false),
    };
    if !must_exist && !path.exists() {
        return Ok(Config::default());
    }
    let mut config = Config::load(&path).map_err(repro_run::Error::from)?;
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    config.resolve_paths(&base);
    Ok(config)
}

/// Opens the database; every command but `init` needs the schema to be current.
/// Only `init` creates a database: every other command opens a SQLite file read-write
/// without creating it, and a missing one is "the schema is missing; run `repro init`".
async fn open(url: &str, needs_schema: bool) -> Result<Store, CliError> {
    let url = if needs_schema {
        url.replace("mode=rwc", "mode=rw")
    } else {
        url.to_owned()
    };
    if needs_schema
        && let Some(rest) = url.strip_prefix("sqlite://")
        && let path = rest.split('?').next().unwrap_or_default()
        && !path.is_empty()
        && !path.starts_with(':')
        && !Path::new(path).exists()
    {
        // Name the directory a relative path was looked for in: from cron or `/`, it is
        // rarely the one the operator meant.
        let looked = std::path::absolute(path).unwrap_or_else(|_| path.into());
        return Err(repro_db::DbError::SchemaOutdated {
            what: format!(
                "missing ({} does not exist; give the database with --db or REPRO_DATABASE_URL)",
                looked.display()
            ),
        }
        .into());
    }
    let store = Store::open(&url).await?;
    if needs_schema {
        store.check_schema().await?;
    }
    Ok(store)
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn name(s: &str) -> Result<DatasetName, CliError> {
    Ok(DatasetName::new(s)?)
}

fn sample(s: Option<&str>) -> Result<Option<repro_core::SampleName>, CliError> {
    Ok(s.map(repro_core::SampleName::new).transpose()?)
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let Cli {
        command,
        db,
        config,
        json,
        quiet,
        ..
    } = cli;
    let config = config.as_deref();
    // The campaign's store (its schema current) and configuration, for the commands on it.
    let live = async || -> Result<(Store, Config), CliError> {
        let config = load_config(config)?;
        let store = open(&db, true).await?.with_limits(config.limits());
        Ok((store, config))
    };
    let op = async |op: Op, target: &Target| {
        let (store, config) = live().await?;
        operation(&store, &config, op, target, json, quiet).await
    };
    match command {
        Command::Completions { shell } => Ok(completions(shell)),
        Command::Man { dir } => man(dir.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::Cron(args) => {
            print!("{}", cron(&db, config, args.bin.as_deref())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(&args, json).await,
        Command::Simulate(args) => simulate(&args, &load_config(config)?, &db, json).await,
        Command::Init => init(&db, config).await,
        Command::Dataset(cmd) => dataset(&live().await?.0, cmd, json).await,
        Command::Sample(cmd) => samples(&live().await?.0, cmd, json).await,
        Command::Priority(args) => priority(&live().await?.0, &args).await,
        Command::Lock(args) => lock(&live().await?.0, &args, true).await,
        Command::Unlock(args) => lock(&live().await?.0, &args, false).await,
        Command::Prestage(t) => op(Op::Prestage, &t).await,
        Command::Reconstruct(t) => op(Op::Reconstruct, &t).await,
        Command::Merge(m) => op(Op::Merge { partial: m.partial }, &m.target).await,
        Command::Dbup(t) => op(Op::Dbup, &t).await,
        Command::Cleanup(t) => op(Op::Cleanup, &t).await,
        Command::Check(t) => op(Op::Check, &t).await,
        Command::Tick(t) => op(Op::Tick, &tick_target(t)).await,
        Command::Plan(t) => {
            let (store, config) = live().await?;
            plan(&store, &config, tick_target(t), json).await
        }
        Command::Retry(args) => retry(&live().await?.0, args).await,
        Command::Accept(args) => accept(&live().await?.0, args).await,
        Command::Reset(args) => reset(&live().await?.0, args).await,
        Command::Recover(args) => recover(&live().await?.0, args).await,
        Command::Cancel(args) => {
            let (store, config) = live().await?;
            cancel(&store, &config, args, json).await
        }
        Command::History(args) => history(&live().await?.0, args, json).await,
        Command::Serve(args) => serve(live().await?.0, args.bind).await,
        Command::Recount(args) => recount(&live().await?.0, args, json).await,
    }
}

/// The shell's completion script on stdout.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "repro", &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

/// `repro init`: the schema created or brought up to date (the configuration checked too).
async fn init(db: &str, config: Option<&Path>) -> Result<ExitCode, CliError> {
    load_config(config)?;
    let store = open(db, false).await?;
    store.migrate().await?;
    println!("schema is current at {}", repro_db::redact(db));
    Ok(ExitCode::SUCCESS)
}

/// What `tick` and `plan` work on: the named dataset, or all.
fn tick_target(t: cli::TickArgs) -> Target {
    Target {
        all: t.name.is_none(),
        name: t.name,
        site: t.site,
        sample: t.sample,
    }
}

async fn priority(store: &Store, args: &cli::PriorityArgs) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    store
        .set_priority(&n, args.priority, &actor(), args.reason.as_deref())
        .await?;
    println!("{n}: priority {}", args.priority);
    Ok(ExitCode::SUCCESS)
}

/// `repro plan`: what a tick would do now, without doing it.
async fn plan(
    store: &Store,
    config: &Config,
    target: Target,
    json: bool,
) -> Result<ExitCode, CliError> {
    let names = targets(store, config, &target).await?;
    // Each site's budget and the total, taken by the datasets in the order a
    // tick takes them.
    let ledger = repro_run::ledger::Ledger::new();
    let policy = config.policy();
    let now = chrono::Utc::now().timestamp();
    let mut previews = Vec::new();
    for n in names {
        previews.push(repro_run::preview_dataset(store, &ledger, &n, &policy, now).await?);
    }
    if json {
        print!("{}", output::json(&previews));
    } else {
        for p in previews {
            if let Some(w) = &p.waiting {
                println!("{}: {w}", p.name);
            }
            if let Some(r) = &p.retrying {
                println!("{}: {r}", p.name);
            }
            if p.transitions.is_empty() && p.actions.is_empty() && p.polls == 0 {
                continue;
            }
            let moves: Vec<String> = p.transitions.iter().map(ToString::to_string).collect();
            println!(
                "{}: {}; would poll {}, move [{}], perform {} action(s)",
                p.name,
                p.state,
                p.polls,
                moves.join(", "),
                p.actions.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `repro retry`.
async fn retry(store: &Store, args: cli::RetryArgs) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let view = store.load(&n).await?;
    let file = match &args.file {
        Some(lfn) => Some(
            view.files
                .values()
                .find(|f| f.lfn == *lfn)
                .map(|f| f.id)
                .ok_or_else(|| CliError::Usage(format!("{n} has no raw file {lfn:?}")))?,
        ),
        None => None,
    };
    let changes = operator::retry(&view, args.phase, args.reason.as_deref(), file)?;
    store.apply(&n, &changes, &actor()).await?;
    let after = store.summary(&n).await?;
    let count = |group: bool| {
        let n = changes
            .iter()
            .filter(|c| match c {
                repro_core::Change::File { .. } => !group,
                repro_core::Change::Group { .. } => group,
                _ => false,
            })
            .count();
        n as u64
    };
    let mut rearmed = vec![repro_core::words::count(count(false), "raw file")];
    if count(true) > 0 {
        rearmed.push(repro_core::words::count(count(true), "merge group"));
    }
    println!(
        "{n}: retried; {} with fresh attempts; now {}",
        rearmed.join(" and "),
        after.status.columns()
    );
    Ok(ExitCode::SUCCESS)
}

/// `repro accept`.
async fn accept(store: &Store, args: cli::RecoverArgs) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let d = store.summary(&n).await?;
    let lost = operator::accept(&n, d.files.failed_for_good(), d.accepted_lost, &args.reason)?;
    store.accept_lost(&n, lost, &actor(), &args.reason).await?;
    println!(
        "{n}: the loss of {} accepted; it asks for a person again if more fail for good",
        repro_core::words::count(lost, "raw file")
    );
    Ok(ExitCode::SUCCESS)
}

/// `repro reset`.
async fn reset(store: &Store, args: cli::ResetArgs) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let view = store.load(&n).await?;
    let changes = operator::reset(&view, args.to, &args.reason)?;
    store.apply(&n, &changes, &actor()).await?;
    let after = store.summary(&n).await?;
    println!("{n}: reset to {}; now {}", args.to, after.status.columns());
    Ok(ExitCode::SUCCESS)
}

/// `repro recover`.
async fn recover(store: &Store, args: cli::RecoverArgs) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let view = store.load(&n).await?;
    let changes = operator::recover(&view, &args.reason)?;
    let files = changes
        .iter()
        .filter(|c| matches!(c, repro_core::Change::File { .. }))
        .count();
    store.apply(&n, &changes, &actor()).await?;
    let after = store.summary(&n).await?;
    println!(
        "{n}: recovering {}; now {}",
        repro_core::words::count(files as u64, "raw file"),
        after.status.columns()
    );
    Ok(ExitCode::SUCCESS)
}

/// `repro cancel`.
async fn cancel(
    store: &Store,
    config: &Config,
    args: cli::CancelArgs,
    json: bool,
) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let backend = repro_run::backend_for(config, store, now_secs()).await?;
    let driver = Driver::new(store, backend.as_ref())
        .with_policy(config.policy())
        .with_lease_ttl(Duration::from_secs(config.lease.ttl_s));
    let done = driver.cancel(&n, args.phase, &args.reason).await?;
    if json {
        print!("{}", output::json(&done));
        return Ok(ExitCode::SUCCESS);
    }
    let count = |n: usize| repro_core::words::count(n as u64, "job");
    let mut line = format!("{n}: {} cancelled", count(done.cancelled));
    if done.finished > 0 {
        line.push_str(&format!(", {} finished first (kept)", count(done.finished)));
    }
    let lock = if done.locked {
        "LOCKed"
    } else {
        "still LOCKed"
    };
    println!("{line}; {lock}: `repro unlock {n}` lets it carry on, the cancelled attempts retried");
    Ok(ExitCode::SUCCESS)
}

/// `repro history`.
async fn history(store: &Store, args: cli::HistoryArgs, json: bool) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let entity = match args.entity.as_str() {
        "all" => None,
        e @ ("dataset" | "file" | "group" | "reco_job" | "merge_job") => Some(e),
        other => {
            return Err(CliError::Usage(format!(
                "unknown history entity {other:?}; expected dataset, file, group, reco_job, merge_job or all"
            )));
        }
    };
    let h = store.history(&n, entity).await?;
    if json {
        print!("{}", output::json(&h));
    } else {
        // Raw files by their logical names: the ids mean nothing to an operator.
        let lfns = if h.iter().any(|e| e.entity == "file") {
            let view = store.load(&n).await?;
            view.files.into_values().map(|f| (f.id.0, f.lfn)).collect()
        } else {
            std::collections::BTreeMap::new()
        };
        print!("{}", output::history(&h, &lfns));
    }
    Ok(ExitCode::SUCCESS)
}

/// `repro recount`.
async fn recount(store: &Store, args: cli::RecountArgs, json: bool) -> Result<ExitCode, CliError> {
    let drift = if args.check {
        store.count_drift().await?
    } else {
        store.recount().await?
    };
    if json {
        print!("{}", output::json(&drift));
    } else {
        for d in &drift {
            println!("{d}");
        }
        match (drift.is_empty(), args.check) {
            (true, _) => println!("the totals agree with the rows and the history"),
            (false, true) => {
                println!("{} difference(s); `repro recount` mends them", drift.len())
            }
            (false, false) => println!("{} difference(s) mended", drift.len()),
        }
    }
    Ok(if args.check && !drift.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn serve(store: Store, bind: std::net::SocketAddr) -> Result<ExitCode, CliError> {
    if !bind.ip().is_loopback() {
        eprintln!(
            "repro: serving on {bind}, beyond this machine: anyone who reaches it can read the whole campaign"
        );
    }
    let io = |what: String| move |source| CliError::Io { what, source };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(io(format!("cannot listen on {bind}")))?;
    let addr = listener
        .local_addr()
        .map_err(io("cannot read the listening address".into()))?;
    eprintln!("repro: serving http://{addr}/ (read-only)");
    web::serve(store, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(io("the web server stopped".into()))?;
    Ok(ExitCode::SUCCESS)
}

/// `repro lock` and `repro unlock`: idempotent, and all or none: every name is checked
/// before any dataset changes.
async fn lock(store: &Store, args: &cli::Names, locking: bool) -> Result<ExitCode, CliError> {
    let (via, word) = if locking {
        (repro_core::Transition::Lock, repro_core::LockWord::Lock)
    } else {
        (repro_core::Transition::Unlock, repro_core::LockWord::Unlock)
    };
    let mut due = Vec::new();
    for n in &args.names {
        let n = name(n)?;
        let mut loaded = store.load_dataset(&n).await?;
        if let Some(r) = &args.reason {
            loaded = loaded.because(r.as_str());
        }
        match loaded.take(via) {
            Ok(moved) => due.push((n, Some(moved))),
            // Asking again for what is already so is not an error.
            Err(repro_core::Refused::AlreadyThere { .. }) => due.push((n, None)),
            Err(e) => return Err(repro_core::OperatorError::from(e).into()),
        }
    }
    for (n, moved) in due {
        match moved {
            Some(m) => {
                store.save(m, &actor()).await?;
                println!("{n}: {word}");
            }
            None => println!("{n}: already {word}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the datasets `names` into `sample` (or none), each name valid and each dataset
/// known before anything is changed.
async fn move_to_sample(
    store: &Store,
    names: &[String],
    sample: Option<&repro_core::SampleName>,
    reason: Option<&str>,
) -> Result<(), CliError> {
    let names = names
        .iter()
        .map(|n| name(n))
        .collect::<Result<Vec<_>, _>>()?;
    for n in &names {
        store.summary(n).await?;
    }
    for n in &names {
        store.set_sample(n, sample, &actor(), reason).await?;
        match sample {
            Some(s) => println!("{n}: sample {s}"),
            None => println!("{n}: in no sample"),
        }
    }
    Ok(())
}

async fn samples(store: &Store, cmd: SampleCommand, json: bool) -> Result<ExitCode, CliError> {
    match cmd {
        SampleCommand::Set {
            sample: s,
            names,
            reason,
        } => {
            let s = repro_core::SampleName::new(s)?;
            move_to_sample(store, &names, Some(&s), reason.as_deref()).await?;
        }
        SampleCommand::Clear(args) => {
            move_to_sample(store, &args.names, None, args.reason.as_deref()).await?;
        }
        SampleCommand::List(args) => {
            let list = store.samples(args.site.as_deref()).await?;
            if json {
                let v: Vec<output::SampleJson> = list.iter().map(Into::into).collect();
                print!("{}", output::json(&v));
            } else if list.is_empty() {
                println!(
                    "no dataset is in a sample; `repro sample set SAMPLE NAME...` puts them in one"
                );
            } else {
                print!("{}", output::samples(&list));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn dataset(store: &Store, cmd: DatasetCommand, json: bool) -> Result<ExitCode, CliError> {
    match cmd {
        DatasetCommand::Add(args) => dataset_add(store, args, json).await,
        DatasetCommand::List(args) => {
            if let Some(w) = &args.state {
                check_word(w)?;
            }
            let list = store
                .list(&ListFilter {
                    state_word: args.state,
                    site: args.site,
                    sample: sample(args.sample.as_deref())?,
                    ..ListFilter::default()
                })
                .await?;
            if json {
                let v: Vec<output::DatasetJson> = list.iter().map(Into::into).collect();
                print!("{}", output::json(&v));
            } else {
                print!("{}", output::datasets(&list));
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Show { name: n } => {
            let n = name(&n)?;
            let now = chrono::Utc::now().timestamp();
            let g = store.glance(&n, now, output::JOBS_SHOWN).await?;
            if json {
                let d = output::DatasetJson::from(&g.summary).with_retrying(g.waiting);
                print!("{}", output::json(&d));
            } else {
                let rate = recent_rate(store, &g.summary).await?;
                print!("{}", output::dataset(&g, rate));
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Jobs { name: n, page } => {
            let n = name(&n)?;
            let offset = (page.page - 1) * page.per_page;
            let jobs = store.jobs_page(&n, offset, page.per_page).await?;
            if json {
                print!("{}", output::json(&jobs));
            } else {
                let g = store.glance(&n, 0, 0).await?;
                print!("{}", output::jobs(&n, &g.jobs, &jobs, page));
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Files(args) => dataset_files(store, args, json).await,
    }
}

/// `repro dataset add`: the file list read and checked whole, then registered.
async fn dataset_add(store: &Store, args: AddArgs, json: bool) -> Result<ExitCode, CliError> {
    let n = name(&args.name)?;
    let (text, source) = if args.files.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|source| CliError::Io {
                what: "cannot read the file list from stdin".into(),
                source,
            })?;
        (s, "-".to_owned())
    } else {
        let p = &args.files;
        let s = std::fs::read_to_string(p)
            .map_err(|e| CliError::Usage(format!("cannot read file list {}: {e}", p.display())))?;
        (s, p.display().to_string())
    };
    let files = filelist::parse(&text, &source)?;
    let opts = Register {
        unlock: args.unlock,
        site: args.site,
        sample: sample(args.sample.as_deref())?,
        priority: args.priority,
    };
    store.register(&n, &files, &opts, &actor()).await?;
    let s = store.summary(&n).await?;
    if json {
        print!("{}", output::json(&output::DatasetJson::from(&s)));
    } else {
        println!(
            "registered {n}: {} raw files, {}",
            files.len(),
            s.status.columns().lock
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `repro dataset files`: one page of a dataset's raw files, of one state if asked.
async fn dataset_files(store: &Store, args: FilesArgs, json: bool) -> Result<ExitCode, CliError> {
    let state = match &args.state {
        None => None,
        Some(s) => Some(
            s.parse::<FileState>()
                .map_err(|e| CliError::Usage(e.to_string()))?,
        ),
    };
    let n = name(&args.name)?;
    let p = args.page;
    let view = store
        .files_page(&n, state, (p.page - 1) * p.per_page, p.per_page)
        .await?;
    if json {
        let files: Vec<&repro_core::RawFile> = view.files.values().collect();
        print!("{}", output::json(&files));
    } else {
        let s = store.summary(&n).await?;
        let total = state.map_or(s.files.total, |st| s.files.get(st));
        print!("{}", output::files(&view, total, p));
    }
    Ok(ExitCode::SUCCESS)
}

/// Files per hour that finished the running phase's step over the last six hours, from the
/// history; `None` when no phase is running.
async fn recent_rate(
    store: &Store,
    d: &repro_db::DatasetSummary,
) -> Result<Option<output::Rate>, CliError> {
    use repro_core::StageKind as K;
    let via = match d.status.state.kind() {
        K::PrestageRunning => "stage_done",
        K::RecoRunning => "reco_done",
        K::MergeRunning => "merge",
        K::CleanupNotDone => "clean",
        _ => return Ok(None),
    };
    const HOURS: u32 = 6;
    let since = repro_db::now() - chrono::Duration::hours(i64::from(HOURS));
    let done: u64 = store
        .per_hour(Some(&d.name), "file", via, since)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    Ok(Some(output::Rate {
        per_hour: done as f64 / f64::from(HOURS),
        hours: HOURS,
    }))
}

/// A state word must be one of the predecessor scripts' words.
fn check_word(w: &str) -> Result<(), CliError> {
    repro_run::check_state_word(w).map_err(CliError::Usage)
}

/// The datasets a command works on: the one named, or every active one in the order a
/// run gives them work (with the configuration's sample weights).
async fn targets(store: &Store, config: &Config, t: &Target) -> Result<Vec<DatasetName>, CliError> {
    if let Some(n) = &t.name {
        return Ok(vec![name(n)?]);
    }
    let scope = repro_run::Scope {
        site: t.site.clone(),
        sample: sample(t.sample.as_deref())?,
    };
    Ok(repro_run::targets_weighted(store, &scope, &config.weights()).await?)
}

/// Runs one operation on its target datasets and reports.
async fn operation(
    store: &Store,
    config: &Config,
    op: Op,
    t: &Target,
    json: bool,
    quiet: bool,
) -> Result<ExitCode, CliError> {
    let names = targets(store, config, t).await?;
    let backend = repro_run::backend_for(config, store, now_secs()).await?;
    let driver = Driver::new(store, backend.as_ref())
        .with_policy(config.policy())
        .with_lease_ttl(Duration::from_secs(config.lease.ttl_s))
        .with_workers(config.run.workers);
    let owner = driver.owner.clone();
    let run = driver.run_many(op, &names, t.all).await;
    // A run over every dataset (cron's) is recorded per site, for `/metrics`.
    if t.all {
        let sites = match &t.site {
            Some(s) => vec![s.clone()],
            None => store.sites().await?,
        };
        store.record_tick(&sites, &owner, repro_db::now()).await?;
    }
    for (n, e) in &run.errors {
        let hint = match e {
            repro_run::Error::Backend(_) => {
                "; nothing is lost: what was reserved is polled on the next run"
            }
            _ => "",
        };
        eprintln!("repro: {n}: {e}{hint}");
    }
    let alerts: Vec<&repro_run::driver::Alert> =
        run.reports.iter().flat_map(|r| &r.alerts).collect();
    for e in repro_run::attention::send(&config.alerts, &alerts) {
        eprintln!("repro: the [alerts] command failed: {e}; the alert is printed all the same");
    }
    if json {
        print!("{}", output::json(&run.reports));
    } else if quiet {
        // From cron: nothing when all is well, one line per thing that needs a person
        // and per outage of a site's service found or over.
        for r in &run.reports {
            for o in &r.outages {
                println!("{}: {o}", r.name);
            }
            for a in &r.alerts {
                println!("{a}");
            }
        }
    } else {
        for r in &run.reports {
            print_report(r, !t.all);
        }
    }
    Ok(match run.worst() {
        Some(e) => ExitCode::from(error::code(e.kind())),
        None => ExitCode::SUCCESS,
    })
}

/// `repro demo`: the library's demo campaign, with a progress bar on a terminal.
/// `repro simulate`: the campaign played forward on a copy, and what it predicts.
async fn simulate(
    args: &SimulateArgs,
    config: &Config,
    db: &str,
    json: bool,
) -> Result<ExitCode, CliError> {
    use repro_run::simulate::Scenario;
    let campaign = campaign(args, db)?;
    let (dir, _tmp) = work_dir(args.keep.as_deref())?;
    let mut config = config.clone();
    let calibration = match &args.calibrate_from {
        Some(url) => {
            let c = repro_run::simulate::calibrate(url).await?;
            c.apply(&mut config.backend.sim);
            Some(c)
        }
        None => None,
    };
    let scenario = Scenario {
        config,
        seed: args.seed,
        interval_s: args.every,
        horizon_s: args.horizon,
        ..Scenario::new(campaign, dir)
    };
    let bar = progress_bar(AT_REST_BAR);
    let mut p = repro_run::simulate::simulate(&scenario, |hour, at_rest, all| {
        if let Some(b) = &bar {
            b.set_length(all as u64);
            b.set_position(at_rest as u64);
            b.set_message(format!("(simulated hour {hour:.0})"));
        }
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    p.calibration = calibration;
    if let Some(path) = &args.chart {
        std::fs::write(path, p.chart_svg()).map_err(|source| CliError::Io {
            what: format!("cannot write the chart to {}", path.display()),
            source,
        })?;
    }
    if json {
        print!("{}", output::json(&p));
    } else {
        print!("{}", output::prediction(&p));
        if let Some(path) = &args.chart {
            println!("chart: {}", path.display());
        }
        if let Some(d) = &args.keep {
            println!(
                "the simulation's database: {}",
                repro_run::demo::sqlite_url(&d.join("simulate.db"))
            );
        }
    }
    Ok(if p.end_h.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(5)
    })
}

/// What `repro simulate` plays: a campaign file, N alike datasets, or the database's.
fn campaign(args: &SimulateArgs, db: &str) -> Result<repro_run::simulate::Campaign, CliError> {
    use repro_run::simulate::{Campaign, DatasetSpec};
    Ok(if let Some(path) = &args.campaign {
        Campaign::Described(repro_run::simulate::read_campaign(path)?)
    } else if let (Some(datasets), Some(files)) = (args.datasets, args.files) {
        Campaign::Described(vec![DatasetSpec {
            name: "sim.p17".into(),
            count: Some(datasets),
            files,
            size: args.size,
            site: args.site.clone(),
            sample: args.sample.clone(),
            ..DatasetSpec::default()
        }])
    } else {
        Campaign::Database(db.to_owned())
    })
}

/// The progress bar of `demo` and `simulate`.
const AT_REST_BAR: &str = "{elapsed_precise} [{bar:30}] {pos}/{len} datasets at rest {msg}";

/// A progress bar on stderr drawn with `template`, when stderr is a terminal.
fn progress_bar(template: &str) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

/// Where a demo or simulation keeps its database and world: `keep`, or a temporary
/// directory removed when the returned guard is dropped.
fn work_dir(
    keep: Option<&std::path::Path>,
) -> Result<(std::path::PathBuf, Option<tempfile::TempDir>), CliError> {
    if let Some(d) = keep {
        return Ok((d.to_owned(), None));
    }
    let tmp = tempfile::tempdir().map_err(|source| CliError::Io {
        what: "cannot create a temporary directory".into(),
        source,
    })?;
    Ok((tmp.path().to_owned(), Some(tmp)))
}

async fn demo(args: &DemoArgs, json: bool) -> Result<ExitCode, CliError> {
    let (dir, _tmp) = work_dir(args.keep.as_deref())?;
    let campaign = repro_run::demo::Campaign {
        datasets: args.datasets,
        files: args.files,
        seed: args.seed,
        dir,
        workers: usize::from(args.workers),
        url: None,
        failures: !args.no_failures,
    };
    let bar = progress_bar(AT_REST_BAR);
    if let Some(b) = &bar {
        b.set_length(u64::from(args.datasets));
    }
    let done = repro_run::demo::run(&campaign, |at_rest, ticks| {
        if let Some(b) = &bar {
            b.set_position(at_rest as u64);
            b.set_message(format!("(tick {ticks})"));
        }
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (s, list) = (&done.summary, &done.datasets);
    if json {
        print!(
            "{}",
            output::json(&serde_json::json!({
                "datasets": list.iter().map(output::DatasetJson::from).collect::<Vec<_>>(),
                "summary": s,
            }))
        );
    } else {
        print!("{}", output::datasets(list));
        println!();
        println!(
            "{} datasets: {} CLEANED, {} FAILED; {} raw files: {} cleaned, {} failed for good",
            s.datasets, s.cleaned, s.failed, s.files, s.files_cleaned, s.files_failed_for_good
        );
        println!(
            "{} reco jobs and {} merge jobs, {} of them retries; {} ticks in {:.1} s \
             (registration {:.1} s, ticks {:.1} s)",
            s.reco_jobs,
            s.merge_jobs,
            s.retries,
            s.ticks,
            s.wall_time_s,
            s.registration_s,
            s.ticks_s
        );
        if let Some(d) = &args.keep {
            println!(
                "database, simulated world and journal kept in {}",
                d.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report, always: bool) {
    if let Some(why) = &r.skipped {
        if always {
            println!("{}: skipped: {why}", r.name);
        }
        return;
    }
    if r.transitions.is_empty() && r.actions == 0 && r.outcomes == 0 {
        match &r.waiting {
            Some(w) => println!("{}: {w}", r.name),
            None if always => println!("{}: nothing to do", r.name),
            None => {}
        }
        return;
    }
    let moves: Vec<String> = r.transitions.iter().map(ToString::to_string).collect();
    println!(
        "{}: {} action(s), {} outcome(s) recorded{}",
        r.name,
        r.actions,
        r.outcomes,
        if moves.is_empty() {
            String::new()
        } else {
            format!("; {}", moves.join(" -> "))
        }
    );
    if let Some(w) = &r.waiting {
        println!("  {w}");
    }
    for o in &r.outages {
        println!("  {o}");
    }
    for a in &r.alerts {
        println!("  needs a person: {a}");
    }
}

/// The man page on stdout, or `repro.1` and one `repro-SUB.1` page per subcommand (and
/// per `dataset` subcommand) in `dir`, which the top page's SEE ALSO then names truly.
fn man(dir: Option<&Path>) -> Result<(), CliError> {
    let io = |what: String| move |source| CliError::Io { what, source };
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(io("cannot write the man page".into()))?;
        print!("{}", String::from_utf8_lossy(&page));
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(io(format!("cannot write into {}", dir.display())))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(format!("cannot read {}", dir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    pages.sort();
    for p in pages {
        println!("{}", dir.join(p).display());
    }
    Ok(())
}

/// A SQLite URL with a relative path made absolute against `cwd`; other URLs as they are.
fn absolute_db(url: &str, cwd: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.starts_with('/') || path.starts_with(':') || path.is_empty() {
        return url.to_owned();
    }
    let abs = cwd.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", abs.display()),
        None => format!("sqlite://{}", abs.display()),
    }
}

fn cron(db: &str, config: Option<&Path>, bin: Option<&Path>) -> Result<String, CliError> {
    let bin = match bin {
        Some(b) => b.to_owned(),
        None => std::env::current_exe().map_err(|source| CliError::Io {
            what: "cannot find this binary".into(),
            source,
        })?,
    };
    // Cron runs in $HOME with none of this shell's variables: name the database and the
    // configuration this invocation resolved, by absolute paths.
    let cwd = std::env::current_dir().map_err(|source| CliError::Io {
        what: "cannot read the current directory".into(),
        source,
    })?;
    let mut base = format!("{} -q --db '{}'", bin.display(), absolute_db(db, &cwd));
    let config = match config {
        Some(c) => Some(c.to_owned()),
        None => Some(PathBuf::from("repro.toml")).filter(|p| p.exists()),
    };
    if let Some(c) = config {
        base.push_str(&format!(" --config '{}'", cwd.join(c).display()));
    }
    let lines = [
        (
            "30 */12 * * *",
            "prestage --all",
            "prestage (was: prestage)",
        ),
        (
            "01 */4  * * *",
            "reconstruct --all",
            "reconstruct (was: reconstruct_dataset_new)",
        ),
        ("01 23   * * *", "check --all", "check on dataset status"),
        ("11 */6  * * *", "merge --all", "merge (new)"),
        ("30 */4  * * *", "merge --partial --all", "merge (partial)"),
        (
            "1  0    * * *",
            "check --all",
            "check on merge running (was: 1 */24)",
        ),
        (
            "50 15   * * *",
            "dbup --all",
            "update merge: declare merged files (MERGED_DBUP)",
        ),
        (
            "40 16   * * *",
            "cleanup --all",
            "cleanup (by hand in the predecessor scripts)",
        ),
    ];
    let mut out =
        String::from("# repro: the predecessor scripts' schedule, one operation a line\n");
    for (when, what, why) in lines {
        out.push_str(&format!("{when}  {base} {what}  # {why}\n"));
    }
    out.push_str("\n# or, instead of all of the above, one line that does everything due:\n");
    out.push_str(&format!("# */10 * * * *  {base} tick\n"));
    Ok(out)
}
