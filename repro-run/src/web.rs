//! The status page (`repro serve`): the predecessor scripts' look_at_datasets page, grown up. [`router`]
//! returns an axum [`Router`] that a service can mount under a prefix of its own
//! (`Router::new().nest("/repro", repro_run::web::router(store))`). Server-side HTML (maud, which
//! escapes everything it prints), a JSON API with the CLI's field names, Prometheus
//! metrics and a health check. It only reads the database, and every page costs a fixed
//! number of SQL statements, however many datasets or files there are.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use repro_core::job::JobSubject;
use repro_core::{DatasetName, FileState, GroupState};
use repro_db::{DbError, ListFilter, Store};
use serde::Deserialize;

use crate::json::DatasetJson;

/// Datasets with a FAILED phase shown at the top of the index (from their counts: no file
/// is read for them).
const NEEDS_A_PERSON_SHOWN: u64 = 20;

/// Datasets per page unless asked otherwise.
const PER_PAGE: u64 = 50;
/// Files or jobs per page on a dataset's page.
const ROWS_PER_PAGE: usize = 200;

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    store: Store,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The web application: its routes over one store.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/datasets/{name}", get(dataset_page))
        .route("/api/datasets", get(api_list))
        .route("/api/samples", get(api_samples))
        .route("/api/datasets/{name}", get(api_one))
        .route("/api/{*rest}", get(api_not_found))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(store)
}

/// A failed request: a page (or JSON) with the right status; the reason is logged.
enum WebError {
    NotFound(String),
    BadRequest(String),
    Internal(String),
}

impl From<DbError> for WebError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound(n) => WebError::NotFound(format!("no dataset named {n:?}")),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl WebError {
    fn parts(self) -> (StatusCode, String) {
        match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Internal(m) => {
                tracing::error!("serving a page failed: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = self.parts();
        let title = status.canonical_reason().unwrap_or("error").to_owned();
        (
            status,
            Html(
                page(
                    &title,
                    html! { p.error { (message) } p { a href="/" { "back to all datasets" } } },
                )
                .into_string(),
            ),
        )
            .into_response()
    }
}

/// A failed request to the JSON API: the page's status, as `{"error": "..."}`.
struct ApiError(WebError);

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        ApiError(e)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.0.parts();
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// A query string as `T`; one that does not parse is a bad request, answered as a page
/// or (`API`) as JSON.
struct Params<T, const API: bool>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned, const API: bool>
    axum::extract::FromRequestParts<S> for Params<T, API>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Params(q)),
            Err(r) => {
                let e = WebError::BadRequest(r.body_text());
                Err(if API {
                    ApiError(e).into_response()
                } else {
                    e.into_response()
                })
            }
        }
    }
}

async fn api_not_found() -> ApiError {
    ApiError(WebError::NotFound("no such API endpoint".into()))
}

async fn not_found() -> WebError {
    WebError::NotFound("no such page".into())
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse} th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #e4e4e4;vertical-align:top}
th{background:#f4f4f4;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.w{display:inline-block;padding:1px 6px;border-radius:3px;font-size:12px;font-weight:600;white-space:nowrap}
.t-idle{background:#eee;color:#666}.t-running{background:#dbeafe;color:#1e40af}
.t-done{background:#dcfce7;color:#166534}
.t-partial{background:#fef3c7;color:#92400e}.t-failed{background:#fee2e2;color:#991b1b}
.t-lock{background:#ede9fe;color:#5b21b6}.t-unlock{background:#f5f5f5;color:#555}
.bar{display:flex;width:220px;height:12px;background:#eee;border-radius:2px;overflow:hidden}
.bar span{display:block;height:100%}.s-st{background:#93c5fd}.s-re{background:#60a5fa}.s-me{background:#34d399}.s-cl{background:#15803d}.s-fa{background:#ef4444}
.totals{display:flex;gap:2em;flex-wrap:wrap;margin:.5em 0 1em}.totals div b{display:block;font-size:1.3em}
form.filters{margin:.5em 0} .error{color:#991b1b} .attention{background:#fef2f2;border-left:4px solid #991b1b;padding:.4em .8em;font-weight:600} .muted{color:#777} nav.pages a,nav.pages b{margin-right:.6em}
"#;

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="120";
                title { (title) " — repro" }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// A status word as a coloured badge.
/// A stored word, coloured by what it says (`t-done`, `t-failed`, ...), and classed by
/// itself (`w-MERGED_DBUP`) for anyone styling one word.
fn word(w: &str) -> Markup {
    let tone = match w {
        "NOT DONE" => "idle",
        "RUNNING" => "running",
        "PARTIAL" => "partial",
        "FAILED" => "failed",
        "LOCK" => "lock",
        "UNLOCK" => "unlock",
        _ => "done",
    };
    html! { span class=(format!("w t-{tone} w-{}", w.replace(' ', "_"))) { (w) } }
}

/// One header cell per state column, in the table's order.
fn column_heads() -> Markup {
    html! { @for name in repro_core::Columns::names() { th { (name.to_uppercase()) } } }
}

/// One cell per state column of `c`.
fn column_words(c: repro_core::Columns) -> Markup {
    html! { @for w in c.words() { td { (word(w)) } } }
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    }
}

/// Files by how far they got: staged only, reconstructed, merged, cleaned, failed for good.
fn stages(f: &repro_db::FileCounts) -> [u64; 5] {
    let cleaned = f.get(FileState::Cleaned);
    let merged = f.get(FileState::Merged) + f.get(FileState::Deleting);
    let reco = f.get(FileState::Reconstructed);
    let staged = f.get(FileState::Staged)
        + f.get(FileState::RecoSubmitted)
        + f.get(FileState::RecoFailed)
        + f.get(FileState::RecoFailedForGood);
    let failed = f.failed_for_good();
    [
        staged - f.get(FileState::RecoFailedForGood),
        reco,
        merged,
        cleaned,
        failed,
    ]
}

fn progress(f: &repro_db::FileCounts) -> Markup {
    let [staged, reco, merged, cleaned, failed] = stages(f);
    let t = f.total;
    let title = format!(
        "{cleaned} cleaned, {merged} merged, {reco} reconstructed, {staged} staged, {failed} failed for good, of {t}"
    );
    html! {
        div.bar title=(title) {
            span.s-cl style=(format!("width:{:.2}%", pct(cleaned, t))) {}
            span.s-me style=(format!("width:{:.2}%", pct(merged, t))) {}
            span.s-re style=(format!("width:{:.2}%", pct(reco, t))) {}
            span.s-st style=(format!("width:{:.2}%", pct(staged, t))) {}
            span.s-fa style=(format!("width:{:.2}%", pct(failed, t))) {}
        }
    }
}

/// Escapes text for hand-written SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One series of a chart: its name, colour and counts per hour (`YYYY-MM-DD HH:00`).
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(String, u64)>,
}

/// The series the pages draw: files reconstructed, merged and cleaned up per hour.
async fn throughput(
    store: &Store,
    dataset: Option<&DatasetName>,
) -> Result<Vec<Series<'static>>, WebError> {
    let mut out = Vec::new();
    for (name, via, colour) in [
        ("reconstructed", "reco_done", "#2563eb"),
        ("merged", "merge", "#16a34a"),
        ("cleaned up", "clean", "#d97706"),
    ] {
        let points = store.per_hour(dataset, "file", via, since_48h()).await?;
        out.push(Series {
            name,
            colour,
            points,
        });
    }
    Ok(out)
}

/// Stacked bars per hour over the window that has data (at least six hours, at most the
/// last 48, ending now), with the time axis labelled at both ends and the middle.
fn chart(title: &str, series: &[Series<'_>], now: chrono::NaiveDateTime) -> Markup {
    let Some((start, counts)) = hourly(series, now) else {
        return html! { figure { figcaption.muted { (title) } p.muted { "nothing finished in the last 48 hours" } } };
    };
    let svg = bars(title, series, start, &counts);
    html! { figure { figcaption.muted { (title) } (PreEscaped(svg)) } }
}

/// Each series' points summed per hour from the window's first hour (returned with the
/// counts, one row per hour); `None` when nothing falls in the last 48 hours.
fn hourly(
    series: &[Series<'_>],
    now: chrono::NaiveDateTime,
) -> Option<(chrono::NaiveDateTime, Vec<Vec<u64>>)> {
    use chrono::{Duration, NaiveDateTime, Timelike};
    let parse = |h: &str| NaiveDateTime::parse_from_str(h, "%Y-%m-%d %H:%M").ok();
    let this_hour = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let oldest = this_hour - Duration::hours(47);
    let first_data = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(h, _)| parse(h)))
        .filter(|t| *t >= oldest)
        .min()?;
    let start = first_data.min(this_hour - Duration::hours(5));
    let hours = ((this_hour - start).num_hours() + 1).max(1) as usize;
    let mut counts = vec![vec![0u64; series.len()]; hours];
    for (k, s) in series.iter().enumerate() {
        for (h, n) in &s.points {
            if let Some(t) = parse(h) {
                let i = (t - start).num_hours();
                if (0..hours as i64).contains(&i) {
                    counts[i as usize][k] += n;
                }
            }
        }
    }
    Some((start, counts))
}

/// The SVG of [`chart`]: a stacked bar per hour from `start`, the axis and the legend.
fn bars(
    title: &str,
    series: &[Series<'_>],
    start: chrono::NaiveDateTime,
    counts: &[Vec<u64>],
) -> String {
    use chrono::Duration;
    let hours = counts.len();
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h) = (720.0, 90.0);
    let bar = w / hours as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img" aria-label="{}">"#,
        h + 34.0,
        esc(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let x = i as f64 * bar;
        let mut y = h;
        let hour = (start + Duration::hours(i as i64)).format("%Y-%m-%d %H:00");
        for (k, n) in c.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let bh = (*n as f64 / max) * h;
            y -= bh;
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{hour} UTC: {n} {}</title></rect>"##,
                (bar - 1.0).max(1.0),
                series[k].colour,
                esc(series[k].name)
            );
        }
    }
    let label = |i: usize| {
        (start + Duration::hours(i as i64))
            .format("%m-%d %H:00")
            .to_string()
    };
    let _ = write!(
        svg,
        r##"<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#999"/><text x="0" y="{y}" font-size="11" fill="#666">{}</text><text x="{}" y="{y}" font-size="11" fill="#666" text-anchor="middle">{}</text><text x="{w}" y="{y}" font-size="11" fill="#666" text-anchor="end">{} (max {max}/h)</text>"##,
        label(0),
        w / 2.0,
        label(hours / 2),
        label(hours - 1),
        y = h + 14.0,
    );
    let mut x = 0.0;
    for s in series {
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11" fill="#444">{}</text>"##,
            h + 22.0,
            s.colour,
            x + 14.0,
            h + 31.0,
            esc(s.name)
        );
        x += 110.0;
    }
    svg.push_str("</svg>");
    svg
}

#[derive(Debug, Default, Deserialize)]
struct IndexQuery {
    state: Option<String>,
    site: Option<String>,
    sample: Option<String>,
    page: Option<u64>,
    per: Option<u64>,
    sort: Option<String>,
}

impl IndexQuery {
    fn filter(&self) -> Result<(ListFilter, u64, u64), WebError> {
        let state = self.state.clone().filter(|s| !s.is_empty());
        if let Some(w) = &state {
            crate::check_state_word(w).map_err(WebError::BadRequest)?;
        }
        let sample = match self.sample.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                repro_core::SampleName::new(s).map_err(|e| WebError::BadRequest(e.to_string()))?,
            ),
        };
        let per = self.per.unwrap_or(PER_PAGE).clamp(1, 500);
        let page = self.page.unwrap_or(1).max(1);
        Ok((
            ListFilter {
                state_word: state,
                site: self.site.clone().filter(|s| !s.is_empty()),
                sample,
                recent_first: self.sort.as_deref() == Some("updated"),
                offset: (page - 1) * per,
                limit: Some(per),
                ..ListFilter::default()
            },
            page,
            per,
        ))
    }
}

fn since_48h() -> chrono::NaiveDateTime {
    repro_db::now() - chrono::Duration::hours(48)
}

async fn index(
    State(store): State<Store>,
    Params(q): Params<IndexQuery, false>,
) -> Result<Html<String>, WebError> {
    let (filter, page_no, per) = q.filter()?;
    let list = store.list(&filter).await?;
    let matching = store.count(&filter).await?;
    let totals = store.totals().await?;
    let hourly = throughput(&store, None).await?;
    // Progress per sample, over the site filtered for (samples are what operators think in).
    let samples = store.samples(filter.site.as_deref()).await?;
    // Datasets that need a person come first, whatever the filter: a FAILED phase or
    // files failed for good, with the reason from the counts (the dataset's page has the
    // last error).
    let needing = ListFilter {
        needs_a_person: true,
        ..ListFilter::default()
    };
    let needing_a_person = store.count(&needing).await?;
    let attention: Vec<(DatasetName, String)> = store
        .list(&ListFilter {
            limit: Some(NEEDS_A_PERSON_SHOWN),
            ..needing
        })
        .await?
        .iter()
        .filter_map(|d| crate::attention::from_counts(d).map(|why| (d.name.clone(), why)))
        .collect();
    let pages = matching.div_ceil(per).max(1);
    let link = |p: u64| index_link(&filter, p, per);
    let body = html! {
        h1 { "Reprocessing campaign" }
        @if !attention.is_empty() {
            section id="needs-a-person" {
                h2 { "Needs a person" }
                @for (n, why) in &attention {
                    p.attention { a href=(format!("/datasets/{}", urlencode(n.as_str()))) { (n) } ": " (why) }
                }
            }
        }
        (totals_line(&totals, needing_a_person))
        (progress(&totals.files))
        (chart("raw files per hour (UTC)", &hourly, repro_db::now()))
        @if !samples.is_empty() { (samples_table(&samples)) }
        (filters(&filter))
        p.muted { (matching) " matching datasets; page " (page_no) " of " (pages) }
        (datasets_table(&list))
        nav.pages {
            @if page_no > 1 { a href=(link(page_no - 1)) { "« previous" } }
            @if page_no < pages { a href=(link(page_no + 1)) { "next »" } }
        }
        p.muted { "JSON: " a href="/api/datasets" { "/api/datasets" } " · metrics: " a href="/metrics" { "/metrics" } }
    };
    Ok(Html(page("datasets", body).into_string()))
}

/// The index's page `p` of `per` datasets under `filter`.
fn index_link(filter: &ListFilter, p: u64, per: u64) -> String {
    let mut s = format!("/?page={p}&per={per}");
    if let Some(w) = &filter.state_word {
        s.push_str(&format!("&state={}", urlencode(w)));
    }
    if let Some(site) = &filter.site {
        s.push_str(&format!("&site={}", urlencode(site)));
    }
    if let Some(sample) = &filter.sample {
        s.push_str(&format!("&sample={}", urlencode(sample.as_str())));
    }
    if filter.recent_first {
        s.push_str("&sort=updated");
    }
    s
}

/// The campaign's totals: datasets, how many are done, failed, need a person or are
/// locked, and its raw files.
fn totals_line(totals: &repro_db::Totals, needing_a_person: u64) -> Markup {
    let f = &totals.files;
    let col = |c: &str, w: &str| {
        totals
            .columns
            .get(&(c.to_owned(), w.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let failed_phases: u64 = repro_core::Phase::ALL
        .iter()
        .map(|p| col(p.as_str(), "FAILED"))
        .sum();
    html! {
        div.totals {
            div { b { (totals.datasets) } "datasets" }
            div { b { (col("cleanup", "CLEANED")) } "CLEANED" }
            div { b { (failed_phases) } "FAILED" }
            div { b { (needing_a_person) } "need a person" }
            div { b { (col("lock", "LOCK")) } "LOCKed" }
            div { b { (f.total) } "raw files" }
            div { b { (f.get(FileState::Cleaned)) } "files done" }
            div { b { (f.failed_for_good()) } "failed for good" }
        }
    }
}

/// How far the raw files `f` got: `staged / reco / merged / cleaned of total`, each
/// counting those that went further too.
fn reached(f: &repro_db::FileCounts) -> Markup {
    let st = stages(f);
    html! {
        (st[0] + st[1] + st[2] + st[3]) " / " (st[1] + st[2] + st[3]) " / "
        (st[2] + st[3]) " / " (st[3]) " of " (f.total)
    }
}

/// Progress per sample.
fn samples_table(samples: &[repro_db::SampleSummary]) -> Markup {
    html! {
        section id="samples" {
            h2 { "Samples" }
            table {
                thead { tr { th { "SAMPLE" } th { "DATASETS" } th { "CLEANED" } th { "FAILED" } th { "LOCKED" } th { "PROGRESS" } th title="files that got at least this far, of all" { "FILES staged / reco / merged / cleaned" } th { "FAILED FILES" } } }
                tbody {
                    @for s in samples {
                        tr {
                            td {
                                @match &s.sample {
                                    Some(n) => a href=(format!("/?sample={}", urlencode(n.as_str()))) { (n) },
                                    None => span.muted { "(none)" },
                                }
                            }
                            td.num { (s.datasets) }
                            td.num { (s.cleaned) }
                            td.num { (s.failed) }
                            td.num { (s.locked) }
                            td { (progress(&s.files)) }
                            td.num { (reached(&s.files)) }
                            td.num { (s.files.failed_for_good()) }
                        }
                    }
                }
            }
        }
    }
}

/// The index's filter form, filled in with `filter`.
fn filters(filter: &ListFilter) -> Markup {
    html! {
        form.filters method="get" action="/" {
            label { "state " input type="text" name="state" value=(filter.state_word.clone().unwrap_or_default()) placeholder="FAILED, RUNNING, LOCK…" size="14"; }
            " "
            label { "site " input type="text" name="site" value=(filter.site.clone().unwrap_or_default()) size="10"; }
            " "
            label { "sample " input type="text" name="sample" value=(filter.sample.as_ref().map(ToString::to_string).unwrap_or_default()) size="12"; }
            " "
            label { "sort " select name="sort" {
                option value="name" selected[!filter.recent_first] { "by name" }
                option value="updated" selected[filter.recent_first] { "latest change first" }
            } }
            " " button type="submit" { "filter" }
            " " a href="/" { "clear" }
        }
    }
}

/// One row per dataset of `list`.
fn datasets_table(list: &[repro_db::DatasetSummary]) -> Markup {
    html! {
        table id="datasets" {
            thead { tr { th { "NAME" } (column_heads()) th { "PROGRESS" } th title="files that got at least this far, of all" { "FILES staged / reco / merged / cleaned" } th { "FAILED" } th { "SITE" } th { "SAMPLE" } th title="higher gets budget first" { "PRIO" } th { "LAST CHANGE (UTC)" } } }
            tbody {
                @for d in list {
                    @let c = d.status.columns();
                    tr {
                        td {
                            a href=(format!("/datasets/{}", d.name)) { (d.name) }
                            @if let Some(w) = &d.waiting { br; span.muted.waiting { (w) } }
                        }
                        (column_words(c))
                        td { (progress(&d.files)) }
                        td.num { (reached(&d.files)) }
                        td.num { (d.files.failed_for_good()) }
                        td { (d.site.clone().unwrap_or_default()) }
                        td { (d.sample.as_ref().map(ToString::to_string).unwrap_or_default()) }
                        td.num { (d.priority) }
                        td { (d.updated_at.format("%Y-%m-%d %H:%M")) }
                    }
                }
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
struct DatasetQuery {
    fstate: Option<String>,
    fpage: Option<usize>,
    jpage: Option<usize>,
}

fn parse_name(name: &str) -> Result<DatasetName, WebError> {
    DatasetName::new(name).map_err(|e| WebError::NotFound(e.to_string()))
}

async fn dataset_page(
    State(store): State<Store>,
    Path(name): Path<String>,
    Params(q): Params<DatasetQuery, false>,
) -> Result<Html<String>, WebError> {
    let name = parse_name(&name)?;
    // Counts, merge groups, what failed for good and a page each of files and jobs: never
    // the whole dataset.
    let glance = store
        .glance(&name, chrono::Utc::now().timestamp(), 0)
        .await?;
    let history = store.history(&name, Some("dataset")).await?;
    let hourly = throughput(&store, Some(&name)).await?;
    let fstate = match q.fstate.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<FileState>()
                .map_err(|e| WebError::BadRequest(e.to_string()))?,
        ),
    };
    let rows = ROWS_PER_PAGE as u64;
    let files = &glance.summary.files;
    let nfiles = fstate.map_or(files.total, |s| files.get(s));
    let fpage = Paged::new(q.fpage, nfiles, rows);
    let files = store
        .files_page(&name, fstate, fpage.offset(), rows)
        .await?;
    let njobs = glance.jobs.values().sum();
    let jpage = Paged::new(q.jpage, njobs, rows);
    let jobs = store.jobs_page(&name, jpage.offset(), rows).await?;
    let body = html! {
        p { a href="/" { "← all datasets" } }
        h1 { (name) }
        (dataset_head(&glance))
        h2 { "Files" }
        (progress(&glance.summary.files))
        (file_counts(&glance.summary))
        (chart("raw files per hour (UTC)", &hourly, repro_db::now()))
        (files_table(&files, fstate, nfiles, fpage))
        h2 { "Merged files" }
        (groups_table(&glance))
        h2 { "Jobs" }
        (jobs_table(&name, &jobs, njobs, jpage))
        h2 { "History" }
        (history_table(&history))
    };
    Ok(Html(page(name.as_str(), body).into_string()))
}

/// Page `no` of `pages` of a list of `total` rows, `rows` a page.
#[derive(Clone, Copy)]
struct Paged {
    no: u64,
    pages: u64,
    rows: u64,
}

impl Paged {
    /// The page asked for, within the pages there are.
    fn new(asked: Option<usize>, total: u64, rows: u64) -> Paged {
        let pages = total.div_ceil(rows).max(1);
        Paged {
            no: (asked.unwrap_or(1) as u64).clamp(1, pages),
            pages,
            rows,
        }
    }

    fn offset(self) -> u64 {
        (self.no - 1) * self.rows
    }
}

/// What needs a person, outages, retries, the state words, the lease, sample and budget.
fn dataset_head(glance: &repro_db::Glance) -> Markup {
    let (summary, view) = (&glance.summary, &glance.view);
    let c = summary.status.columns();
    html! {
        @for why in crate::attention::needs_a_person(view, summary.accepted_lost) {
            p.attention { "Needs a person: " (why) }
        }
        @for o in &summary.outages {
            p.attention { "Outage: " (crate::attention::outage_line(o)) }
        }
        @if let Some((n, first)) = glance.waiting {
            p.muted { "Retrying: " (n) " " (crate::attention::next_retry(first)) }
        }
        table {
            tr { (column_heads()) th { "SITE" } th { "LAST CHANGE (UTC)" } }
            tr {
                (column_words(c))
                td { (summary.site.clone().unwrap_or_default()) } td { (summary.updated_at.format("%Y-%m-%d %H:%M:%S")) }
            }
        }
        @if let Some((owner, until)) = &summary.lease { p.muted { "being worked on by " (owner) " until " (until.format("%H:%M:%S")) " UTC" } }
        @if summary.sample.is_some() || summary.priority != 0 {
            p.muted {
                @if let Some(sample) = &summary.sample { "sample " a href=(format!("/?sample={}", urlencode(sample.as_str()))) { (sample) } " · " }
                "priority " (summary.priority)
            }
        }
        @if let Some(w) = &summary.waiting { p.waiting { (w) " (in the last run)" } }
    }
}

/// Files per state, each state a link to its files.
fn file_counts(summary: &repro_db::DatasetSummary) -> Markup {
    let base = format!("/datasets/{}", summary.name);
    let f = &summary.files;
    html! {
        table id="file-counts" {
            tr { @for s in FileState::ALL { @if f.get(*s) > 0 { th { a href=(format!("{base}?fstate={s}")) { (s) } } } } th { "total" } }
            tr { @for s in FileState::ALL { @if f.get(*s) > 0 { td.num { (f.get(*s)) } } } td.num { (f.total) } }
        }
    }
}

/// A page of raw files (`page`, of `total` in `fstate` or in all states).
fn files_table(
    page: &repro_core::DatasetView,
    fstate: Option<FileState>,
    total: u64,
    p: Paged,
) -> Markup {
    let base = format!("/datasets/{}", page.name);
    let link = |n: u64| match fstate {
        Some(s) => format!("{base}?fstate={s}&fpage={n}"),
        None => format!("{base}?fpage={n}"),
    };
    html! {
        p.muted { (total) " files" @if let Some(s) = fstate { " in state " (s) " (" a href=(base.clone()) { "all" } ")" } "; page " (p.no) " of " (p.pages) }
        table id="files" {
            thead { tr { th { "ID" } th { "LOGICAL FILE NAME" } th { "STATE" } th { "ATTEMPTS" } th { "TMB FILE" } th { "MERGE GROUP" } th { "LAST ERROR" } } }
            tbody {
                @for f in page.files.values() {
                    tr {
                        td.num { (f.id.0) } td { (f.lfn) } td { (f.state) } td.num { (page.step_attempts(f)) }
                        td { (f.tmb.as_ref().map_or("", |t| t.path.as_str())) }
                        td { (f.group.map(|g| g.to_string()).unwrap_or_default()) }
                        td.error { (f.current_error().unwrap_or_default()) }
                    }
                }
            }
        }
        nav.pages { @if p.no > 1 { a href=(link(p.no - 1)) { "« previous files" } } @if p.no < p.pages { a href=(link(p.no + 1)) { "next files »" } } }
    }
}

/// The merge groups and their merged files.
fn groups_table(glance: &repro_db::Glance) -> Markup {
    html! {
        table id="merge-groups" {
            thead { tr { th { "GROUP" } th { "FILES" } th { "STATE" } th { "MERGED FILE" } th { "DECLARED" } th { "ATTEMPTS" } th { "LAST ERROR" } } }
            tbody {
                @for g in glance.view.groups.values() {
                    tr {
                        td { (g.no) } td.num { (glance.group_files.get(&g.no).copied().unwrap_or(0)) } td { (g.state) }
                        td { (g.output.as_ref().map_or("", |o| o.name.as_str())) }
                        td { @if g.state == GroupState::Declared { "yes" } @else { "no" } }
                        td.num { (g.attempts) } td.error { (g.last_error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// A page of jobs (of `total`).
fn jobs_table(name: &DatasetName, jobs: &[repro_core::Job], total: u64, p: Paged) -> Markup {
    let base = format!("/datasets/{name}");
    html! {
        p.muted { (total) " jobs; page " (p.no) " of " (p.pages) }
        table id="jobs" {
            thead { tr { th { "JOB" } th { "KIND" } th { "ATTEMPT" } th { "BATCH ID" } th { "STATE" } th { "EXIT" } th { "ERROR" } } }
            tbody {
                @for j in jobs {
                    tr {
                        td { (j.key.name(name)) }
                        td { @match j.key.subject { JobSubject::Reco(_) => "reco", JobSubject::Merge(_) => "merge" } }
                        td.num { (j.key.attempt) } td { (j.batch_id.clone().unwrap_or_default()) } td { (j.state) }
                        td.num { (j.exit_code.map(|c| c.to_string()).unwrap_or_default()) } td.error { (j.error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        nav.pages { @if p.no > 1 { a href=(format!("{base}?jpage={}", p.no - 1)) { "« previous jobs" } } @if p.no < p.pages { a href=(format!("{base}?jpage={}", p.no + 1)) { "next jobs »" } } }
    }
}

/// The dataset's own moves, newest first.
fn history_table(history: &[repro_db::HistoryEntry]) -> Markup {
    html! {
        table id="history" {
            thead { tr { th { "WHEN (UTC)" } th { "WHO" } th { "WHAT" } th { "FROM" } th { "TO" } th { "WHY" } } }
            tbody {
                @for e in history.iter().rev() {
                    tr { td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { (e.actor) } td { (e.via) } td { (e.from) } td { (e.to) } td { (e.reason.clone().unwrap_or_default()) } }
                }
            }
        }
    }
}

async fn api_list(
    State(store): State<Store>,
    Params(q): Params<IndexQuery, true>,
) -> Result<Response, ApiError> {
    let (filter, _, _) = q.filter()?;
    let list = store.list(&filter).await?;
    let total = store.count(&filter).await?;
    let v: Vec<DatasetJson> = list.iter().map(DatasetJson::from).collect();
    Ok(([("x-total-count", total.to_string())], Json(v)).into_response())
}

async fn api_samples(
    State(store): State<Store>,
    Params(q): Params<IndexQuery, true>,
) -> Result<Json<Vec<crate::json::SampleJson>>, ApiError> {
    let (filter, _, _) = q.filter()?;
    let v = store.samples(filter.site.as_deref()).await?;
    Ok(Json(v.iter().map(Into::into).collect()))
}

async fn api_one(
    State(store): State<Store>,
    Path(name): Path<String>,
) -> Result<Json<DatasetJson>, ApiError> {
    let name = parse_name(&name)?;
    let g = store
        .glance(&name, chrono::Utc::now().timestamp(), 0)
        .await?;
    Ok(Json(DatasetJson::from(&g.summary).with_retrying(g.waiting)))
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(store): State<Store>) -> Result<Response, WebError> {
    let t = store.totals().await?;
    let mut out = String::new();
    out.push_str("# HELP repro_datasets Datasets per phase column and state word.\n# TYPE repro_datasets gauge\n");
    for ((col, w), n) in &t.columns {
        let _ = writeln!(
            out,
            "repro_datasets{{column=\"{}\",state=\"{}\"}} {n}",
            label(col),
            label(w)
        );
    }
    out.push_str("# HELP repro_files Raw files per state.\n# TYPE repro_files gauge\n");
    for s in FileState::ALL {
        let _ = writeln!(out, "repro_files{{state=\"{s}\"}} {}", t.files.get(*s));
    }
    out.push_str(
        "# HELP repro_jobs Jobs (attempts) per kind and state.\n# TYPE repro_jobs gauge\n",
    );
    let mut jobs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (s, n) in &t.reco_jobs {
        jobs.insert(("reco", s), *n);
    }
    for (s, n) in &t.merge_jobs {
        jobs.insert(("merge", s), *n);
    }
    for ((kind, s), n) in jobs {
        let _ = writeln!(
            out,
            "repro_jobs{{kind=\"{kind}\",state=\"{}\"}} {n}",
            label(s)
        );
    }
    let failed = t.files.failed_for_good();
    out.push_str("# HELP repro_files_failed_for_good Raw files whose attempts are used up.\n# TYPE repro_files_failed_for_good gauge\n");
    let _ = writeln!(out, "repro_files_failed_for_good {failed}");
    let needing = store
        .count(&ListFilter {
            needs_a_person: true,
            ..ListFilter::default()
        })
        .await?;
    out.push_str("# HELP repro_datasets_needing_a_person Datasets with a FAILED phase, or raw files failed for good that nobody retried or accepted.\n# TYPE repro_datasets_needing_a_person gauge\n");
    let _ = writeln!(out, "repro_datasets_needing_a_person {needing}");
    out.push_str("# HELP repro_last_tick_timestamp_seconds When cron's repro last ran for a site (Unix time); alert when it stops moving.\n# TYPE repro_last_tick_timestamp_seconds gauge\n");
    for (site, at, _) in store.last_ticks().await? {
        let _ = writeln!(
            out,
            "repro_last_tick_timestamp_seconds{{site=\"{}\"}} {}",
            label(&site),
            at.and_utc().timestamp()
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

async fn healthz(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database unreachable: {e}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use repro_db::{NewFile, Register};
    use tower::ServiceExt;

    /// A store with three datasets, one of them moved along by a reliable simulation.
    async fn seeded() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let store = Store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        for (name, site, unlock) in [
            ("alpha", "prague", true),
            ("beta", "<script>alert(1)</script>", false),
            ("gamma", "fnal", false),
        ] {
            let files: Vec<NewFile> = (0..5)
                .map(|i| NewFile {
                    lfn: format!("/store/{name}/<b>{i}</b>.raw"),
                    size: 10,
                })
                .collect();
            let n = DatasetName::new(name).unwrap();
            store
                .register(
                    &n,
                    &files,
                    &Register {
                        unlock,
                        site: Some(site.into()),
                        ..Register::default()
                    },
                    "alice",
                )
                .await
                .unwrap();
        }
        let mut config = crate::config::Config::default();
        config.backend.sim.world = dir.path().join("world");
        config.backend.sim.reco_failure = 0.0;
        config.backend.sim.merge_failure = 0.0;
        config.backend.sim.lost_job = 0.0;
        let backend = crate::backend::sim::SimBackend::new(config.backend.sim.clone(), 0.0);
        let alpha = [DatasetName::new("alpha").unwrap()];
        for _ in 0..3 {
            let run = crate::Driver::new(&store, &backend)
                .with_policy(config.policy())
                .run_many(crate::Op::Tick, &alpha, false)
                .await;
            assert!(run.errors.is_empty(), "{:?}", run.errors);
        }
        (dir, store)
    }

    async fn get(store: &Store, uri: &str) -> (StatusCode, String) {
        let resp = router(store.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn the_chart_labels_its_window_and_stacks_the_phases() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(16, 40, 0)
            .unwrap();
        let series = [
            Series {
                name: "reconstructed",
                colour: "#2563eb",
                points: vec![
                    ("2026-12-01 14:00".into(), 30),
                    ("2026-11-20 10:00".into(), 9),
                ],
            },
            Series {
                name: "merged",
                colour: "#16a34a",
                points: vec![("2026-12-01 14:00".into(), 10)],
            },
        ];
        let svg = chart("t", &series, now).into_string();
        // Six hours ending now: the ends and the middle are three different hours.
        for label in ["12-01 11:00", "12-01 14:00", "12-01 16:00 (max 40/h)"] {
            assert!(svg.contains(label), "{label} missing: {svg}");
        }
        // One stacked bar of two parts; the point older than the window is not drawn.
        assert_eq!(svg.matches("<title>").count(), 2, "{svg}");
        assert!(svg.contains("2026-12-01 14:00 UTC: 30 reconstructed"));
        assert!(svg.contains("2026-12-01 14:00 UTC: 10 merged"));
        assert!(svg.contains(">merged</text>"), "a legend");
        let empty = chart("t", &[], now).into_string();
        assert!(empty.contains("nothing finished in the last 48 hours"));
    }

    /// Unlocks the seeded `gamma`, starts its prestage and loses `n` of its files for good
    /// on a jammed tape robot.
    async fn lose_gamma_files(store: &Store, n: usize) -> DatasetName {
        use repro_core::file::FileEvent;
        use repro_core::typed::{AnyDataset, Known};
        let name = DatasetName::new("gamma").unwrap();
        let AnyDataset::Locked(Known::PrestagePending(d)) =
            store.load_dataset(&name).await.unwrap()
        else {
            panic!("gamma is new and locked")
        };
        store.save(d.unlock().start_prestage(), "t").await.unwrap();
        for event in [
            FileEvent::RequestStage,
            FileEvent::StageFail,
            FileEvent::GiveUp,
        ] {
            let v = store.load(&name).await.unwrap();
            let changes: Vec<_> = v
                .files
                .values()
                .take(n)
                .filter_map(|f| repro_core::Change::file(f, event))
                .map(|c| c.with_error("tape robot jammed"))
                .collect();
            store.apply(&name, &changes, "t").await.unwrap();
        }
        name
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_lost_while_the_dataset_goes_on_need_a_person_until_accepted() {
        let (_d, store) = seeded().await;
        // Two of gamma's five files are lost; prestage goes on for the rest.
        let n = lose_gamma_files(&store, 2).await;
        let (_, index) = get(&store, "/").await;
        assert!(
            index.contains(
                "gamma</a>: 2 raw files failed for good; see its page for why; `repro retry gamma`"
            ),
            "{index}"
        );
        assert!(index.contains("<b>1</b>need a person"), "{index}");
        let (_, metrics) = get(&store, "/metrics").await;
        assert!(
            metrics.contains("repro_datasets_needing_a_person 1\n"),
            "{metrics}"
        );
        let (_, page) = get(&store, "/datasets/gamma").await;
        assert!(
            page.contains(
                "Needs a person: 2 raw files failed for good in prestage (last: tape robot jammed)"
            ),
            "{page}"
        );
        store
            .accept_lost(&n, 2, "t", "gone from tape")
            .await
            .unwrap();
        let (_, index) = get(&store, "/").await;
        assert!(!index.contains("id=\"needs-a-person\""), "{index}");
        assert!(index.contains("<b>0</b>need a person"), "{index}");
        let (_, metrics) = get(&store, "/metrics").await;
        assert!(
            metrics.contains("repro_datasets_needing_a_person 0\n"),
            "{metrics}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_dataset_comes_first_with_its_reason_on_both_pages() {
        use repro_core::typed::{AnyDataset, Known};
        let (_d, store) = seeded().await;
        // gamma: unlocked, prestage started, its files failed for good, prestage FAILED.
        let n = lose_gamma_files(&store, 5).await;
        let AnyDataset::Unlocked(Known::Prestaging(d)) = store.load_dataset(&n).await.unwrap()
        else {
            panic!("gamma is prestaging")
        };
        store.save(d.fail_prestage(), "t").await.unwrap();
        let (_, index) = get(&store, "/").await;
        let at = index
            .find("Needs a person")
            .expect("a needs-a-person section");
        assert!(
            at < index.find("id=\"datasets\"").unwrap(),
            "it comes before the list"
        );
        assert!(
            index.contains("prestage FAILED (5 raw files failed for good); see its page for why"),
            "{index}"
        );
        let (_, page) = get(&store, "/datasets/gamma").await;
        assert!(
            page.contains("Needs a person: prestage FAILED: 5 raw files failed for good in prestage (last: tape robot jammed)"),
            "{page}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_answers_errors_as_json_and_the_pages_as_pages() {
        let (_d, store) = seeded().await;
        for (uri, status, error) in [
            (
                "/api/datasets/nope",
                StatusCode::NOT_FOUND,
                "no dataset named \"nope\"",
            ),
            (
                "/api/datasets?per=abc",
                StatusCode::BAD_REQUEST,
                "per: invalid digit",
            ),
            (
                "/api/samples?page=-1",
                StatusCode::BAD_REQUEST,
                "page: invalid digit",
            ),
            (
                "/api/nothing/here",
                StatusCode::NOT_FOUND,
                "no such API endpoint",
            ),
        ] {
            let (got, body) = get(&store, uri).await;
            assert_eq!(got, status, "{uri}");
            let v: serde_json::Value = serde_json::from_str(&body).expect(uri);
            assert!(
                v["error"].as_str().unwrap().contains(error),
                "{uri}: {body}"
            );
        }
        let (got, body) = get(&store, "/?per=abc").await;
        assert_eq!(got, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("<p class=\"error\">") && body.contains("per: invalid digit"),
            "{body}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_index_lists_datasets_in_the_predecessor_scripts_words_with_totals() {
        let (_d, store) = seeded().await;
        let (status, body) = get(&store, "/").await;
        assert_eq!(status, StatusCode::OK);
        for s in [
            "alpha",
            "beta",
            "gamma",
            "w-LOCK",
            "w-UNLOCK",
            ">NOT DONE<",
            "<b>3</b>datasets",
            "<b>15</b>raw files",
            "<svg",
        ] {
            assert!(body.contains(s), "index lacks {s:?}");
        }
        assert!(body.contains(r#"href="/datasets/alpha""#));
        // FILES counts how far files got in every phase, not only the cleaned ones.
        let alpha = store
            .summary(&DatasetName::new("alpha").unwrap())
            .await
            .unwrap();
        let staged = alpha.files.total
            - alpha.files.get(FileState::Registered)
            - alpha.files.get(FileState::Staging);
        assert!(staged > 0, "the seeded campaign moved alpha");
        assert!(body.contains(&format!("{staged} / ")), "{body}");
        assert!(body.contains("0 / 0 / 0 / 0 of 5"), "gamma has not started");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_index_filters_and_paginates() {
        let (_d, store) = seeded().await;
        let (_, page2) = get(&store, "/?per=2&page=2").await;
        assert!(
            page2.contains(">gamma<") && !page2.contains(">alpha<"),
            "{page2}"
        );
        assert!(page2.contains("page 2 of 2") && page2.contains("« previous"));
        let (_, locked) = get(&store, "/?state=LOCK").await;
        assert!(
            locked.contains(">beta<") && locked.contains(">gamma<") && !locked.contains(">alpha<")
        );
        let (_, site) = get(&store, "/?site=fnal").await;
        assert!(site.contains(">gamma<") && !site.contains(">beta<"));
        let (status, body) = get(&store, "/?state=DONE").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("is not a state word"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_have_a_table_a_filter_and_an_api() {
        let (_d, store) = seeded().await;
        let (_, index) = get(&store, "/").await;
        assert!(
            !index.contains("id=\"samples\""),
            "no table while no dataset has a sample"
        );
        let wz = repro_core::SampleName::new("p17.wz").unwrap();
        for n in ["alpha", "gamma"] {
            let n = DatasetName::new(n).unwrap();
            store.set_sample(&n, Some(&wz), "t", None).await.unwrap();
        }
        let (_, index) = get(&store, "/").await;
        let table = &index[index.find("id=\"samples\"").expect("a samples table")..];
        let table = &table[..table.find("</table>").unwrap()];
        assert!(table.contains("href=\"/?sample=p17.wz\""), "{table}");
        assert!(table.contains("(none)"), "{table}");
        assert!(
            table.contains("0 / 0 / 0 / 0 of 5"),
            "beta is in none: {table}"
        );
        let (_, only) = get(&store, "/?sample=p17.wz").await;
        assert!(only.contains(">alpha<") && only.contains(">gamma<") && !only.contains(">beta<"));
        assert!(
            only.contains("value=\"p17.wz\""),
            "the filter shows what it filters by"
        );
        let (status, body) = get(&store, "/?sample=p17%20wz").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("sample name"), "{body}");
        let (status, api) = get(&store, "/api/samples").await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&api).unwrap();
        assert_eq!(v[0]["sample"], "p17.wz");
        assert_eq!(v[0]["datasets"], 2);
        assert_eq!(v[1]["sample"], serde_json::Value::Null);
        assert_eq!(v[1]["datasets"], 1);
        // What waited for budget in the last run shows on both pages.
        let alpha = DatasetName::new("alpha").unwrap();
        let why = "waiting: 3 files for stage requests";
        store.set_waiting(&alpha, Some(why)).await.unwrap();
        let (_, index) = get(&store, "/").await;
        assert!(
            index.contains(&format!("<span class=\"muted waiting\">{why}</span>")),
            "{index}"
        );
        let (_, page) = get(&store, "/datasets/alpha").await;
        assert!(page.contains(&format!("{why} (in the last run)")), "{page}");
        assert!(
            page.contains("sample <a href=\"/?sample=p17.wz\">p17.wz</a>"),
            "{page}"
        );
        store.set_waiting(&alpha, None).await.unwrap();
        let (_, page) = get(&store, "/datasets/alpha").await;
        assert!(!page.contains("in the last run"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_from_the_database_is_escaped() {
        let (_d, store) = seeded().await;
        let (_, index) = get(&store, "/").await;
        assert!(
            index.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "the site is not shown as text"
        );
        assert!(!index.contains("<script>alert"));
        let (_, page) = get(&store, "/datasets/beta").await;
        assert!(page.contains("/store/beta/&lt;b&gt;0&lt;/b&gt;.raw"));
        assert!(!page.contains("<b>0</b>"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dataset_page_shows_files_jobs_merged_files_and_history() {
        let (_d, store) = seeded().await;
        let (status, body) = get(&store, "/datasets/alpha").await;
        assert_eq!(status, StatusCode::OK);
        for s in [
            "id=\"files\"",
            "id=\"jobs\"",
            "id=\"merge-groups\"",
            "id=\"history\"",
            "alpha.reco.f1.a1",
            "start_prestage",
            "alice",
            "reconstructed",
        ] {
            assert!(body.contains(s), "dataset page lacks {s:?}");
        }
        let (_, filtered) = get(&store, "/datasets/beta?fstate=registered").await;
        assert!(filtered.contains("5 files in state registered"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_datasets_and_pages_are_404_pages() {
        let (_d, store) = seeded().await;
        let (status, body) = get(&store, "/datasets/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no dataset named &quot;nope&quot;") && body.contains("<html"));
        assert_eq!(
            get(&store, "/datasets/bad%20name").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(get(&store, "/nowhere").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_row_is_a_500_page_naming_it() {
        let (_d, store) = seeded().await;
        // Words the database's checks admit, in a chain the lifecycle does not have.
        store
            .execute_unprepared(
                "UPDATE dataset_status SET reco_state = 'RUNNING' WHERE name = 'gamma'",
            )
            .await
            .unwrap();
        let (status, body) = get(&store, "/").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("corrupt row in dataset_status")
                && body.contains("before prestage reached PRESTAGE"),
            "{body}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_has_the_clis_field_names() {
        let (_d, store) = seeded().await;
        let (status, body) = get(&store, "/api/datasets").await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        let (_, one) = get(&store, "/api/datasets/gamma").await;
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        for k in [
            "name", "lock", "prestage", "reco", "merge", "cleanup", "files",
        ] {
            assert!(one.get(k).is_some(), "no {k}");
        }
        assert_eq!(one["lock"], "LOCK");
        assert_eq!(one["files"]["total"], 5);
        assert_eq!(one, v[2]);
        assert_eq!(
            get(&store, "/api/datasets/nope").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_and_health() {
        let (_d, store) = seeded().await;
        let (status, m) = get(&store, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(m.contains("repro_files{state=\"registered\"} 10"), "{m}");
        assert!(
            m.contains("repro_datasets{column=\"lock\",state=\"LOCK\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("repro_jobs{kind=\"reco\",state=\"done\"} 5"),
            "{m}"
        );
        assert!(m.contains("repro_files_failed_for_good 0"));
        assert!(m.contains("repro_datasets_needing_a_person 0"), "{m}");
        assert!(
            !m.contains("repro_last_tick_timestamp_seconds{"),
            "no tick recorded yet"
        );
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let sites = store.sites().await.unwrap();
        assert_eq!(sites, ["<script>alert(1)</script>", "fnal", "prague"]);
        store
            .record_tick(&sites, "cron-host:1:1", at)
            .await
            .unwrap();
        store
            .record_tick(
                &["fnal".into()],
                "cron-host:2:2",
                at + chrono::Duration::minutes(10),
            )
            .await
            .unwrap();
        let (_, m) = get(&store, "/metrics").await;
        assert!(
            m.contains("repro_last_tick_timestamp_seconds{site=\"prague\"} 1796119200"),
            "{m}"
        );
        assert!(
            m.contains("repro_last_tick_timestamp_seconds{site=\"fnal\"} 1796119800"),
            "{m}"
        );
        assert_eq!(
            get(&store, "/healthz").await,
            (StatusCode::OK, "ok\n".to_owned())
        );
    }
}
