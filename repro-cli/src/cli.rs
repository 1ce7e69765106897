//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, shown in `--help` and relied on by scripts.
pub const EXIT_CODES: &str = "\
Exit status:
  0  ok (also: nothing to do)
  1  other failure (database unreachable, backend failure, ...)
  2  usage error or bad input (names, files, config, URLs)
  3  refused: the lifecycle does not allow that transition now
  4  conflict: another process changed the dataset first, or holds its lease
  5  simulate: the campaign did not come to rest within the horizon";

/// Runs the reprocessing lifecycle of physics datasets (prestage, reco, merge, catalog
/// update, cleanup) from cron, with every file and job tracked in a database.
#[derive(Debug, Parser)]
#[command(name = "repro", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// Database URL: sqlite://PATH?mode=rwc, mysql://USER@HOST:PORT/DB, postgres://USER@HOST:PORT/DB.
    #[arg(
        long,
        global = true,
        env = "REPRO_DATABASE_URL",
        default_value = "sqlite://repro.db?mode=rwc"
    )]
    pub db: String,
    /// Configuration file [default: ./repro.toml when present].
    #[arg(long, global = true, env = "REPRO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of the log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object a line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (idempotent).
    Init,
    /// Register and inspect datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Group datasets into samples, and see progress per sample.
    #[command(subcommand)]
    Sample(SampleCommand),
    /// Give a dataset a priority: within a site, budget goes to the highest first, then to
    /// the oldest (default 0).
    Priority(PriorityArgs),
    /// Hold datasets where they are: automation leaves them alone until unlocked.
    Lock(Names),
    /// Release datasets to automation.
    Unlock(Names),
    /// Stage raw files from tape (the predecessor scripts' prestage_dataset.py).
    Prestage(Target),
    /// Submit reco jobs for staged raw files (the predecessor scripts' reconstruct_dataset.py).
    Reconstruct(Target),
    /// Submit merge jobs over TMB files (the predecessor scripts' merge_dataset.py).
    Merge(MergeArgs),
    /// Declare merged files to the catalog (the predecessor scripts' update_merge_old).
    Dbup(Target),
    /// Delete intermediate files of declared datasets (the predecessor scripts' cleanup_dataset.py).
    Cleanup(Target),
    /// Poll staging and running jobs, record results, retry failures (the predecessor scripts' check_on_* jobs).
    Check(Target),
    /// Everything due, in the lifecycle's order, for every unlocked dataset: one cron line is enough.
    Tick(TickArgs),
    /// What a tick would do now, without doing it.
    Plan(TickArgs),
    /// Operator: give what failed (a FAILED phase, files or groups failed for good, in any
    /// phase) fresh attempts.
    Retry(RetryArgs),
    /// Operator: accept losing the raw files that failed for good, so that the dataset
    /// stops asking for a person (until more fail).
    Accept(RecoverArgs),
    /// Operator: go back to the start of an earlier phase, keeping finished work.
    Reset(ResetArgs),
    /// Operator: bring back raw files that failed for good, after merging, even after
    /// CLEANED; they go through every phase again while what was merged stays.
    Recover(RecoverArgs),
    /// Operator: kill the dataset's live jobs through the backend and LOCK it; each job is
    /// recorded as a failed attempt with the reason, and what finished first is kept.
    Cancel(CancelArgs),
    /// A dataset's history: who moved it, when, from, to, why.
    History(HistoryArgs),
    /// Print a crontab equivalent to the predecessor scripts' schedule, and the one-line alternative.
    Cron(CronArgs),
    /// Run a whole simulated campaign on a temporary database and print the result.
    Demo(DemoArgs),
    /// Capacity planning: play the campaign forward in simulated time with the real
    /// decisions, limits and priorities, on a copy (the database is only read).
    Simulate(SimulateArgs),
    /// Serve the status page, a JSON API and Prometheus metrics, reading the database only.
    Serve(ServeArgs),
    /// Check the totals the page and metrics show against the rows and the history, and
    /// rebuild them where they differ (after tables were edited by hand).
    Recount(RecountArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per subcommand into a directory.
    Man {
        /// Write `repro.1` and `repro-SUBCOMMAND.1` pages here instead of printing one.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `repro dataset ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset from a list of logical file names (LOCKed unless --unlock).
    Add(AddArgs),
    /// List datasets with their state and file progress.
    List(ListArgs),
    /// One dataset's state and its files per state.
    Show {
        /// The dataset.
        name: String,
    },
    /// A dataset's raw files.
    Files(FilesArgs),
    /// A dataset's jobs, every attempt: counts per state, then a page of jobs (state,
    /// batch id, exit code, reason), reco jobs first.
    Jobs {
        /// The dataset.
        name: String,
        /// Which page of jobs.
        #[command(flatten)]
        page: Page,
    },
}

/// One page of a long list.
#[derive(Debug, Clone, Copy, Args)]
pub struct Page {
    /// Which page, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub page: u64,
    /// Rows a page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub per_page: u64,
}

/// `repro sample ...`.
#[derive(Debug, Subcommand)]
pub enum SampleCommand {
    /// Put datasets into a sample (out of the one they were in).
    Set {
        /// The sample: letters, digits and `_ - . +`, at most 100 characters.
        sample: String,
        /// The datasets.
        #[arg(required = true)]
        names: Vec<String>,
        /// Why, for the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take datasets out of their sample.
    Clear(Names),
    /// Progress per sample: datasets, files per phase, failures.
    List(SampleListArgs),
}

/// `repro sample list`.
#[derive(Debug, Args)]
pub struct SampleListArgs {
    /// Only datasets of this site.
    #[arg(long)]
    pub site: Option<String>,
}

/// `repro priority`.
#[derive(Debug, Args)]
pub struct PriorityArgs {
    /// The dataset.
    pub name: String,
    /// Its priority: higher first; negative is below every default.
    #[arg(allow_negative_numbers = true)]
    pub priority: i32,
    /// Why, for the history.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `repro dataset add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The dataset's name: letters, digits and `_ - . +`, at most 200 characters.
    pub name: String,
    /// File of logical file names, one a line, optionally followed by the size in bytes; `-` for stdin.
    #[arg(long)]
    pub files: PathBuf,
    /// Release it to automation at once.
    #[arg(long)]
    pub unlock: bool,
    /// The site that processes it.
    #[arg(long)]
    pub site: Option<String>,
    /// The sample it belongs to.
    #[arg(long)]
    pub sample: Option<String>,
    /// Its priority (higher gets budget first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
}

/// `repro dataset list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only datasets with this word in a state column (FAILED, RUNNING, LOCK, MERGED_DBUP, ...).
    #[arg(long)]
    pub state: Option<String>,
    /// Only datasets of this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Only datasets of this sample.
    #[arg(long)]
    pub sample: Option<String>,
}

/// `repro dataset files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// The dataset.
    pub name: String,
    /// Only files in this state (registered, staged, reco_failed_for_good, ...).
    #[arg(long)]
    pub state: Option<String>,
    /// Which page of files.
    #[command(flatten)]
    pub page: Page,
}

/// Dataset names.
#[derive(Debug, Args)]
pub struct Names {
    /// The datasets.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Why, for the history.
    #[arg(long)]
    pub reason: Option<String>,
}

/// One dataset or every eligible one.
#[derive(Debug, Args)]
pub struct Target {
    /// The dataset.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Every eligible dataset (what cron runs).
    #[arg(long)]
    pub all: bool,
    /// With --all, only datasets of this site.
    #[arg(long, requires = "all")]
    pub site: Option<String>,
    /// With --all, only datasets of this sample.
    #[arg(long, requires = "all")]
    pub sample: Option<String>,
}

/// `repro merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Merge datasets whose reco ended PARTIAL (the predecessor scripts' merge_partial); without it, only COMPLETED ones.
    #[arg(long)]
    pub partial: bool,
}

/// `repro tick`.
#[derive(Debug, Args)]
pub struct TickArgs {
    /// Only datasets of this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Only datasets of this sample.
    #[arg(long)]
    pub sample: Option<String>,
    /// Only this dataset.
    #[arg(long)]
    pub name: Option<String>,
}

/// `repro retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The dataset.
    pub name: String,
    /// Only what failed in this phase (by default every phase up to the current one).
    #[arg(long, value_parser = parse_phase)]
    pub phase: Option<repro_core::Phase>,
    /// Only this raw file (its logical name).
    #[arg(long, value_name = "LFN")]
    pub file: Option<String>,
    /// Why, for the history.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `repro recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The dataset.
    pub name: String,
    /// Why, for the history.
    #[arg(long)]
    pub reason: String,
}

/// `repro reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The dataset.
    pub name: String,
    /// The phase to go back to: prestage or reco (the phases a reset can honour).
    #[arg(long, value_parser = parse_reset_phase)]
    pub to: repro_core::Phase,
    /// Why, for the history.
    #[arg(long)]
    pub reason: String,
}

/// A phase a reset goes back to: exactly those with a reset transition.
fn parse_reset_phase(s: &str) -> Result<repro_core::Phase, String> {
    use repro_core::{Phase, Transition};
    let valid: Vec<&str> = Phase::ALL
        .iter()
        .filter(|p| Transition::reset_to(**p).is_some())
        .map(|p| p.as_str())
        .collect();
    match s.parse::<Phase>() {
        Ok(p) if Transition::reset_to(p).is_some() => Ok(p),
        _ => Err(format!(
            "a reset goes back to {}, not {s:?}",
            valid.join(" or ")
        )),
    }
}

/// `repro cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The dataset.
    pub name: String,
    /// Only its jobs of this phase: reco or merge (by default both).
    #[arg(long, value_parser = parse_job_phase)]
    pub phase: Option<repro_core::Phase>,
    /// Why, for the history and the jobs' errors.
    #[arg(long)]
    pub reason: String,
}

/// A phase that has jobs: exactly those a cancel takes.
fn parse_job_phase(s: &str) -> Result<repro_core::Phase, String> {
    use repro_core::{Phase, operator::check_cancel};
    let has_jobs = |p: Phase| check_cancel(Some(p), "-").is_ok();
    let valid: Vec<&str> = Phase::ALL
        .iter()
        .filter(|p| has_jobs(**p))
        .map(|p| p.as_str())
        .collect();
    match s.parse::<Phase>() {
        Ok(p) if has_jobs(p) => Ok(p),
        _ => Err(format!("jobs run in {}, not {s:?}", valid.join(" and "))),
    }
}

fn parse_phase(s: &str) -> Result<repro_core::Phase, String> {
    s.parse()
        .map_err(|e: repro_core::ParseWordError| e.to_string())
}

/// `repro history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The dataset.
    pub name: String,
    /// Which entries: dataset, file, group, reco_job, merge_job or all.
    #[arg(long, default_value = "dataset")]
    pub entity: String,
}

/// `repro recount`.
#[derive(Debug, Args)]
pub struct RecountArgs {
    /// Only report the differences; exit 1 when there are any.
    #[arg(long)]
    pub check: bool,
}

/// `repro cron`.
#[derive(Debug, Args)]
pub struct CronArgs {
    /// The repro binary cron should run [default: this one].
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

/// `repro demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of datasets.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub datasets: u32,
    /// Raw files per dataset.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub files: u32,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Datasets each tick works on at once [default: one per core, 2 to 4].
    #[arg(long, default_value_t = repro_run::config::default_workers() as u16, hide_default_value = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Keep the database, world and journal in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// A world where nothing fails: no failed job, declaration or deletion, no lost job
    /// (by default 5% of reco jobs fail, 2% of merge jobs, and 1% of jobs are lost).
    #[arg(long)]
    pub no_failures: bool,
}

/// `repro simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A campaign file (`[[dataset]]` tables: name, files, count, size, site, sample,
    /// priority) instead of the database's datasets.
    #[arg(long, conflicts_with = "datasets")]
    pub campaign: Option<PathBuf>,
    /// This many alike datasets instead of the database's (with --files).
    #[arg(long, requires = "files", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub datasets: Option<u32>,
    /// Raw files per dataset (with --datasets).
    #[arg(long, requires = "datasets", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub files: Option<u32>,
    /// Bytes per raw file (with --datasets).
    #[arg(long, default_value_t = 1_500_000_000, requires = "datasets")]
    pub size: u64,
    /// The datasets' site (with --datasets).
    #[arg(long, requires = "datasets")]
    pub site: Option<String>,
    /// The datasets' sample (with --datasets).
    #[arg(long, requires = "datasets")]
    pub sample: Option<String>,
    /// Simulated time between two ticks, cron's interval: 30s, 10m, 1h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_span)]
    pub every: u64,
    /// Stop after this much simulated time, finished or not.
    #[arg(long, default_value = "365d", value_parser = parse_span)]
    pub horizon: u64,
    /// Seed of the simulation's draws [default: `[backend.sim] seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the chart (files per phase, jobs in flight, disk) as SVG to this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Keep the simulation's database (the campaign as it ended) and world in this
    /// directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Estimate the world (job run times and their spread, failure rates, stage times,
    /// per site the most jobs running at once and files staged in an hour) from the
    /// history of the campaign at this database URL, instead of `[backend.sim]`.
    #[arg(long, value_name = "URL")]
    pub calibrate_from: Option<String>,
}

/// `90s`, `10m`, `1h`, `2d` (or plain seconds) as seconds.
pub fn parse_span(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a time span like 30s, 10m, 1h or 2d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is one of s, m, h, d")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("`{text}`: at least a second")),
        Some(s) => Ok(s),
        None => Err(format!("`{text}` is too long")),
    }
}

/// `repro serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless you mean to publish the campaign.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every operation the driver has is a command of `repro`, under the name the driver
    /// gives it (`merge --partial` a flag of `merge`).
    #[test]
    fn every_operation_of_the_driver_is_a_command() {
        let cli = super::Cli::command();
        for op in repro_run::Op::ALL {
            let mut words = op.name().split_whitespace();
            let name = words.next().unwrap();
            let sub = cli
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no `repro {name}` for {op:?}"));
            for flag in words {
                let long = flag.trim_start_matches("--");
                assert!(
                    sub.get_arguments().any(|a| a.get_long() == Some(long)),
                    "`repro {name}` has no {flag}"
                );
            }
        }
    }
}
