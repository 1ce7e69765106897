//! What users see: tables in the predecessor scripts' column words, or JSON with the same fields.

use std::collections::BTreeMap;
use std::fmt::Write;

use repro_core::{DatasetName, DatasetView, FileState};
use repro_db::{DatasetSummary, HistoryEntry};
use repro_run::simulate::Prediction;
use serde::Serialize;

use crate::cli::Page;

pub use repro_run::json::{DatasetJson, SampleJson};

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// A plain text table: columns padded to their widest cell.
pub fn table<H: AsRef<str>>(header: &[H], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(AsRef::as_ref).collect());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Files that got at least as far as staged, reconstructed and merged.
fn reached(f: &repro_db::FileCounts) -> (u64, u64, u64) {
    let staged = f.total
        - f.get(FileState::Registered)
        - f.get(FileState::Staging)
        - f.get(FileState::StageFailed)
        - f.get(FileState::StageFailedForGood);
    let merged = f.get(FileState::Merged) + f.get(FileState::Deleting) + f.get(FileState::Cleaned);
    let reco = f.get(FileState::Reconstructed) + merged;
    (staged, reco, merged)
}

/// Files done (cleaned) of all, and failed for good.
fn progress(d: &DatasetSummary) -> (String, String) {
    files_progress(&d.files)
}

/// `staged/reco/merged/cleaned of total`, and the files failed for good.
fn files_progress(f: &repro_db::FileCounts) -> (String, String) {
    let (staged, reco, merged) = reached(f);
    let failed = f.failed_for_good();
    (
        format!(
            "{staged}/{reco}/{merged}/{} of {}",
            f.get(FileState::Cleaned),
            f.total
        ),
        failed.to_string(),
    )
}

/// The dataset table: the predecessor scripts' columns plus file progress.
pub fn datasets(list: &[DatasetSummary]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let (p, failed) = progress(d);
            let mut row = vec![
                d.name.to_string(),
                d.site.clone().unwrap_or_else(|| "-".into()),
            ];
            row.extend(d.status.columns().words().map(str::to_owned));
            row.extend([p, failed]);
            row
        })
        .collect();
    let mut heads = vec!["NAME".to_owned(), "SITE".to_owned()];
    heads.extend(repro_core::Columns::names().map(str::to_uppercase));
    heads.extend(["FILES staged/reco/merged/cleaned".into(), "FAILED".into()]);
    table(&heads, &rows)
}

/// The sample table: per sample, its datasets and their files per phase.
pub fn samples(list: &[repro_db::SampleSummary]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let (p, failed) = files_progress(&s.files);
            vec![
                s.sample
                    .as_ref()
                    .map_or_else(|| "(none)".into(), ToString::to_string),
                s.datasets.to_string(),
                s.cleaned.to_string(),
                s.failed.to_string(),
                s.locked.to_string(),
                p,
                failed,
            ]
        })
        .collect();
    table(
        &[
            "SAMPLE",
            "DATASETS",
            "CLEANED",
            "FAILED",
            "LOCKED",
            "FILES staged/reco/merged/cleaned",
            "FAILED FILES",
        ],
        &rows,
    )
}

/// How fast the running phase went lately, for an estimate of when it ends.
pub struct Rate {
    /// Files that finished the running phase's step per hour, over the window.
    pub per_hour: f64,
    /// The window, in hours.
    pub hours: u32,
}

/// One dataset in detail: what needs a person first, then its columns with progress per
/// phase, its merge groups and its jobs.
pub fn dataset(g: &repro_db::Glance, rate: Option<Rate>) -> String {
    let mut out = attention_lines(g);
    out.push_str(&progress_lines(g, rate));
    out.push_str(&row_lines(&g.summary));
    out.push_str(&group_lines(g));
    out.push_str(&open_job_lines(g));
    out
}

/// What needs a person, the outages and what waits to be retried.
fn attention_lines(g: &repro_db::Glance) -> String {
    let d = &g.summary;
    let mut out = String::new();
    for why in repro_run::attention::needs_a_person(&g.view, d.accepted_lost) {
        let _ = writeln!(out, "NEEDS A PERSON: {why}");
    }
    for o in &d.outages {
        let _ = writeln!(out, "outage    {}", repro_run::attention::outage_line(o));
    }
    if let Some((n, first)) = g.waiting {
        let next = repro_run::attention::next_retry(first);
        let _ = writeln!(out, "retrying  {n} {next}");
    }
    out
}

/// Name, site, sample, priority, budget, then each column with how far its files got,
/// and when the running phase may end at `rate`.
fn progress_lines(g: &repro_db::Glance, rate: Option<Rate>) -> String {
    let d = &g.summary;
    let (c, f) = (d.status.columns(), &d.files);
    let mut out = String::new();
    let (staged, reco, merged) = reached(f);
    let _ = writeln!(out, "name      {}", d.name);
    let _ = writeln!(out, "site      {}", d.site.as_deref().unwrap_or("-"));
    if let Some(sample) = &d.sample {
        let _ = writeln!(out, "sample    {sample}");
    }
    if d.priority != 0 {
        let _ = writeln!(out, "priority  {}", d.priority);
    }
    if let Some(w) = &d.waiting {
        let _ = writeln!(out, "budget    {w} (in the last run)");
    }
    let cleaned = f.get(FileState::Cleaned);
    let (total, groups) = (f.total, g.view.groups.len());
    let _ = writeln!(out, "lock      {}", c.lock);
    for p in repro_core::Phase::ALL {
        let (done, of, what) = match p {
            repro_core::Phase::Prestage => (staged, total, "staged".to_owned()),
            repro_core::Phase::Reco => (reco, total, "reconstructed".to_owned()),
            repro_core::Phase::Merge => (merged, reco, format!("merged, {groups} group(s)")),
            repro_core::Phase::Cleanup => (cleaned, merged, "cleaned".to_owned()),
        };
        let (name, word) = (p.as_str(), c.word(*p));
        let _ = writeln!(out, "{name:<10}{word:<13}{done}/{of} {what}");
    }
    let left = match d.status.state.phase() {
        repro_core::Phase::Prestage => total - staged,
        repro_core::Phase::Reco => staged.saturating_sub(reco),
        repro_core::Phase::Merge => reco.saturating_sub(merged),
        repro_core::Phase::Cleanup => merged - cleaned,
    };
    if let Some(r) = rate.filter(|r| r.per_hour > 0.0 && left > 0) {
        let h = left as f64 / r.per_hour;
        let _ = writeln!(
            out,
            "estimate  {left} file(s) to go at {:.0}/h (the last {} h): about {}h{:02}m",
            r.per_hour,
            r.hours,
            h.floor(),
            ((h - h.floor()) * 60.0).round() as u32
        );
    }
    out
}

/// When the row last changed, who holds its lease, and its files per state.
fn row_lines(d: &DatasetSummary) -> String {
    let mut out = String::new();
    let at = |t: &chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let _ = writeln!(out, "updated   {} UTC", at(&d.updated_at));
    if let Some((owner, until)) = &d.lease {
        let _ = writeln!(out, "lease     {owner} until {} UTC", at(until));
    }
    let _ = writeln!(out, "files     {}", d.files.total);
    for s in FileState::ALL {
        let n = d.files.get(*s);
        if n > 0 {
            let _ = writeln!(out, "  {:<22}{n}", s.as_str());
        }
    }
    out
}

/// The merge groups, one row each.
fn group_lines(g: &repro_db::Glance) -> String {
    if g.view.groups.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = g
        .view
        .groups
        .values()
        .map(|grp| {
            vec![
                grp.no.to_string(),
                grp.state.to_string(),
                g.group_files.get(&grp.no).copied().unwrap_or(0).to_string(),
                grp.attempts.to_string(),
                grp.output.as_ref().map_or("-".into(), |m| m.name.clone()),
                grp.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let head = [
        "GROUP",
        "STATE",
        "FILES",
        "ATTEMPTS",
        "MERGED FILE",
        "LAST ERROR",
    ];
    format!("\nmerge groups\n{}", table(&head, &rows))
}

/// Job counts, and the newest live or failed jobs, newest first.
fn open_job_lines(g: &repro_db::Glance) -> String {
    if g.jobs.is_empty() {
        return String::new();
    }
    let name = &g.view.name;
    let mut out = format!("\njobs      {}\n", job_counts(&g.jobs));
    let shown: Vec<&repro_core::Job> = g
        .view
        .jobs
        .values()
        .rev()
        .take(JOBS_SHOWN as usize)
        .collect();
    out.push_str(&job_table(name, &shown));
    let open: u64 = g
        .jobs
        .iter()
        .filter(|((_, s), _)| *s != repro_core::JobState::Done)
        .map(|(_, n)| n)
        .sum();
    if open > shown.len() as u64 {
        let more = open - shown.len() as u64;
        let _ = writeln!(
            out,
            "({more} more live or failed; `repro dataset jobs {name}` lists every job, a page at a time)"
        );
    }
    out
}

/// Jobs `dataset show` lists: the newest live and failed ones.
pub const JOBS_SHOWN: u64 = 20;

/// Jobs per kind and state, reco first: `reco done 120, reco running 3, merge done 2`.
fn job_counts(counts: &BTreeMap<(&str, repro_core::JobState), u64>) -> String {
    let order = |k: &str| u8::from(k != "reco");
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort_by_key(|((k, s), _)| (order(k), *s));
    let words: Vec<String> = rows
        .iter()
        .map(|((k, s), n)| format!("{k} {s} {n}"))
        .collect();
    words.join(", ")
}

fn job_table(name: &DatasetName, jobs: &[&repro_core::Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.key.name(name),
                j.state.to_string(),
                j.key.attempt.to_string(),
                j.batch_id.clone().unwrap_or_else(|| "-".into()),
                j.exit_code.map_or("-".into(), |c| c.to_string()),
                j.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    table(
        &["JOB", "STATE", "ATTEMPT", "BATCH ID", "EXIT", "REASON"],
        &rows,
    )
}

/// Which page of how many rows, and how to get the next: `page 1 of 500 (100 a page);
/// --page 2 for the next`.
fn page_line(page: Page, total: u64) -> String {
    let pages = total.div_ceil(page.per_page).max(1);
    let next = if page.page < pages {
        format!("; --page {} for the next", page.page + 1)
    } else {
        String::new()
    };
    format!(
        "page {} of {pages} ({} a page){next}\n",
        page.page, page.per_page
    )
}

/// A dataset's jobs: counts per kind and state (`counts`), then one page of them.
pub fn jobs(
    name: &DatasetName,
    counts: &BTreeMap<(&str, repro_core::JobState), u64>,
    page_jobs: &[repro_core::Job],
    page: Page,
) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let mut out = format!("jobs      {}\n", job_counts(counts));
    let shown: Vec<&repro_core::Job> = page_jobs.iter().collect();
    out.push_str(&job_table(name, &shown));
    out.push_str(&page_line(page, counts.values().sum()));
    out
}

/// A page of a dataset's files (`view`, of `total` in the state asked for).
pub fn files(view: &DatasetView, total: u64, page: Page) -> String {
    let rows: Vec<Vec<String>> = view
        .files
        .values()
        .map(|f| {
            vec![
                f.id.0.to_string(),
                f.lfn.clone(),
                f.state.to_string(),
                view.step_attempts(f).to_string(),
                f.tmb.as_ref().map_or("-".into(), |t| t.path.clone()),
                f.current_error().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    let mut out = table(
        &["ID", "LFN", "STATE", "ATTEMPTS", "TMB", "LAST ERROR"],
        &rows,
    );
    out.push_str(&page_line(page, total));
    out
}

/// The `key=value` pairs of a stored columns text (`lock=UNLOCK prestage=NOT DONE ...`).
fn column_pairs(text: &str) -> Vec<(&str, &str)> {
    const KEYS: [&str; 5] = ["lock=", "prestage=", "reco=", "merge=", "cleanup="];
    let mut starts: Vec<usize> = KEYS.iter().filter_map(|k| text.find(k)).collect();
    starts.sort_unstable();
    starts
        .iter()
        .enumerate()
        .filter_map(|(i, &at)| {
            let end = starts.get(i + 1).copied().unwrap_or(text.len());
            text[at..end].trim().split_once('=')
        })
        .collect()
}

/// A dataset move as only the columns it changed (`reco=RUNNING` -> `reco=COMPLETED`).
fn changed_columns(from: &str, to: &str) -> (String, String) {
    let (f, t) = (column_pairs(from), column_pairs(to));
    if from == "-" && t.len() == 5 {
        // Registered: what is not NOT DONE.
        let set: Vec<String> = t
            .iter()
            .filter(|(_, v)| *v != "NOT DONE")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return ("-".into(), format!("{} (rest NOT DONE)", set.join(" ")));
    }
    if f.len() != 5 || t.len() != 5 {
        return (from.to_owned(), to.to_owned());
    }
    let changed: Vec<usize> = (0..5).filter(|i| f[*i] != t[*i]).collect();
    let show = |pairs: &[(&str, &str)]| {
        changed
            .iter()
            .map(|i| format!("{}={}", pairs[*i].0, pairs[*i].1))
            .collect::<Vec<_>>()
            .join(" ")
    };
    (show(&f), show(&t))
}

/// History entries as a table: a dataset move shows only the columns it changed, a raw
/// file is named by its logical name (from `lfns`, by id), and a reason is printed whole
/// (it is often the error an operator is looking for).
pub fn history(entries: &[HistoryEntry], lfns: &BTreeMap<u64, String>) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let (from, to) = if e.entity == "dataset" {
                changed_columns(&e.from, &e.to)
            } else {
                (e.from.clone(), e.to.clone())
            };
            let lfn = u64::try_from(e.entity_id).ok().and_then(|id| lfns.get(&id));
            let entity = match (e.entity.as_str(), lfn) {
                ("file", Some(lfn)) => format!("file {lfn}"),
                (entity, _) => format!("{entity} {}", e.entity_id),
            };
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                entity,
                e.via.clone(),
                from,
                to,
                e.actor.clone(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["AT (UTC)", "ENTITY", "VIA", "FROM", "TO", "ACTOR", "REASON"];
    table(&header, &rows)
}

/// Hours as `26.0 h (1.1 days)`, or `not at rest` for none.
fn hours(h: Option<f64>) -> String {
    match h {
        None => "not at rest".into(),
        Some(h) if h >= 48.0 => format!("{h:.1} h ({:.1} days)", h / 24.0),
        Some(h) => format!("{h:.1} h"),
    }
}

/// Bytes as `1.5 TB`.
fn bytes(b: u64) -> String {
    let b = b as f64;
    match b {
        b if b >= 1e12 => format!("{:.1} TB", b / 1e12),
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b => format!("{b:.0} B"),
    }
}

/// What `repro simulate` predicts: the end, the bottleneck, each dataset and sample, the
/// peaks beside the limits, and the chart as a table (at most 48 rows; `--json` has
/// every one).
pub fn prediction(p: &Prediction) -> String {
    let mut out = prediction_head(p);
    out.push('\n');
    out.push_str(&prediction_ends(p));
    out.push('\n');
    out.push_str(&prediction_peaks(p));
    out.push('\n');
    out.push_str(&prediction_chart(p));
    out
}

/// The prediction's first lines: the end, the calibration, the bottleneck, the waits.
fn prediction_head(p: &Prediction) -> String {
    let mut out = String::new();
    let files = p
        .chart
        .last()
        .map_or(0, repro_run::simulate::ChartRow::files);
    let _ = writeln!(
        out,
        "{} datasets ({} raw files), a tick every {}: {} after {} ticks (simulated in {:.1} s)",
        p.datasets.len(),
        files,
        span(p.interval_s),
        match p.end_h {
            Some(h) => format!("all at rest at {}", hours(Some(h))),
            None => "NOT all at rest within the horizon".into(),
        },
        p.ticks,
        p.wall_s
    );
    if let Some(c) = &p.calibration {
        out.push_str(&calibration(c));
    }
    let total: f64 = p.phase_hours.values().sum();
    if let Some(b) = &p.bottleneck {
        let shares: Vec<String> = repro_core::Phase::ALL
            .iter()
            .map(|ph| {
                let h = p.phase_hours.get(ph.as_str()).copied().unwrap_or(0.0);
                format!(
                    "{} {:.0}%",
                    ph.as_str(),
                    100.0 * h / total.max(f64::MIN_POSITIVE)
                )
            })
            .collect();
        let _ = writeln!(out, "bottleneck: {b} (file-hours: {})", shares.join(", "));
    }
    if !p.waits.is_empty() {
        let mut waits: Vec<(&String, &u64)> = p.waits.iter().collect();
        waits.sort_by(|a, b| b.1.cmp(a.1));
        let w: Vec<String> = waits
            .iter()
            .map(|(limit, n)| format!("{limit} ({n} dataset-ticks)"))
            .collect();
        let _ = writeln!(out, "waited for: {}", w.join(", "));
    }
    out
}

/// When each dataset, and each sample if there are any, came to rest.
fn prediction_ends(p: &Prediction) -> String {
    let rows: Vec<Vec<String>> = p
        .datasets
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.sample.clone().unwrap_or_else(|| "-".into()),
                d.site.clone().unwrap_or_else(|| "-".into()),
                hours(d.at_rest_h),
                d.state.clone(),
            ]
        })
        .collect();
    let mut out = table(&["DATASET", "SAMPLE", "SITE", "AT REST", "STATE"], &rows);
    if p.samples.iter().any(|s| s.sample.is_some()) {
        out.push('\n');
        let rows: Vec<Vec<String>> = p
            .samples
            .iter()
            .map(|s| {
                vec![
                    s.sample.clone().unwrap_or_else(|| "(none)".into()),
                    s.datasets.to_string(),
                    hours(s.at_rest_h),
                ]
            })
            .collect();
        out.push_str(&table(&["SAMPLE", "DATASETS", "AT REST"], &rows));
    }
    out
}

/// The most each site, and all sites together, had in flight, beside their limits.
fn prediction_peaks(p: &Prediction) -> String {
    let of = |used: u64, max: Option<u64>, f: &dyn Fn(u64) -> String| match max {
        Some(m) => format!("{} of {}", f(used), f(m)),
        None => f(used),
    };
    let n = |v: u64| v.to_string();
    let row = |site: String, peak: &repro_core::Usage, limits: &repro_core::Limits| {
        vec![
            site,
            of(peak.stage_requests, limits.stage_requests, &n),
            of(peak.disk_bytes, limits.disk_bytes, &bytes),
            of(peak.reco_jobs, limits.reco_jobs, &n),
            of(peak.merge_jobs, limits.merge_jobs, &n),
        ]
    };
    let site = |s: &repro_run::simulate::SitePeak| s.site.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = p
        .peaks
        .iter()
        .map(|s| row(site(s), &s.peak, &s.limits))
        .chain(
            p.total
                .iter()
                .map(|t| row("(all sites)".into(), &t.peak, &t.limits)),
        )
        .collect();
    table(
        &[
            "SITE",
            "PEAK STAGE REQUESTS",
            "PEAK DISK",
            "PEAK RECO JOBS",
            "PEAK MERGE JOBS",
        ],
        &rows,
    )
}

/// The chart as a table of at most 48 rows, and the last.
fn prediction_chart(p: &Prediction) -> String {
    let every = p.chart.len().div_ceil(48).max(1);
    let mut rows: Vec<Vec<String>> = p
        .chart
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i + 1 == p.chart.len())
        .map(|(_, r)| {
            let mut cells = vec![format!("{:.0}", r.hour)];
            cells.extend(
                [
                    r.to_stage,
                    r.staging,
                    r.to_reco,
                    r.in_reco,
                    r.to_merge,
                    r.merged,
                    r.cleaned,
                    r.failed,
                    r.reco_jobs,
                    r.merge_jobs,
                ]
                .map(|n| n.to_string()),
            );
            cells.push(bytes(r.disk_bytes));
            cells
        })
        .collect();
    rows.dedup_by(|a, b| a[0] == b[0]);
    let mut out = table(
        &[
            "HOUR",
            "TO STAGE",
            "STAGING",
            "TO RECO",
            "IN RECO",
            "TO MERGE",
            "MERGED",
            "CLEANED",
            "FAILED",
            "RECO JOBS",
            "MERGE JOBS",
            "DISK",
        ],
        &rows,
    );
    if every > 1 {
        let _ = writeln!(
            out,
            "(one row in {every} of {}, and the last; --json has them all)",
            p.chart.len()
        );
    }
    out
}

/// Seconds as `1h`, `10m`, `90s`.
fn span(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What `--calibrate-from` found, a line each.
fn calibration(c: &repro_run::simulate::Calibration) -> String {
    let mut out = String::from("calibrated from the history:\n");
    let time = |m: Option<f64>| {
        m.map_or_else(
            || "no run time recorded".into(),
            |s| format!("median {s:.0} s"),
        )
    };
    let pct = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    for (what, j) in [("reco", &c.reco), ("merge", &c.merge)] {
        let of = j.done + j.failed + j.lost;
        let _ = writeln!(
            out,
            "  {what} jobs: {of} finished attempts, {} ({}), {:.1}% failed, {:.1}% lost",
            time(j.median_s),
            j.spread
                .map_or_else(|| "no spread".into(), |s| format!("spread {s:.2}")),
            pct(j.failed, of),
            pct(j.lost, of),
        );
    }
    let of = c.stage.staged + c.stage.failed;
    let _ = writeln!(
        out,
        "  stage requests: {of} answered, {}, {:.1}% failed",
        time(c.stage.median_s),
        pct(c.stage.failed, of)
    );
    for (site, s) in &c.sites {
        let site = if site.is_empty() { "-" } else { site };
        let _ = writeln!(
            out,
            "  site {site}: at most {} jobs running at once, {} files staged in an hour",
            s.peak_running, s.peak_staged_per_hour
        );
    }
    out
}
