//! The overview: health, storage, embedder, the pipeline, the user's counts, work in
//! progress, and charts of documents and of the last runs.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use lancesync_api::ApiError;
use maud::{Markup, html};
use serde::Serialize;

use super::{CsrfOnly, PageResult, done};
use crate::Ui;
use crate::layout::{Scope, Section, badge};

/// A serialisable value as the word it serialises to (`healthy`, `local_only`).
pub(crate) fn word(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

pub(crate) async fn show(State(ui): State<Ui>, scope: Scope) -> PageResult {
    let o = ui.api.orchestrator();
    let config = ui.api.config();
    let health = o.health().await;
    let status = o.engine().status(&scope.user).await?;
    let sources = o.sources(Some(&scope.user));
    let jobs = o.unfinished_jobs(Some(&scope.user)).await?;
    let own_source = format!("source:{}/", scope.user);
    let components: Vec<_> = health
        .components
        .iter()
        .filter(|(name, _)| {
            !name.starts_with("source:") || scope.viewer.is_admin() || name.starts_with(&own_source)
        })
        .collect();
    let running = o.is_running();
    let by_day = runs_by_day(&o.run_history(&scope.user).await?);
    let content = html! {
        div.cards {
            div.card { div.figure #documents-count { (status.documents) } div.label { "documents" } }
            div.card { div.figure #chunks-count { (status.chunks) } div.label { "chunks" } }
            div.card {
                div.figure #failures-count { (status.failed) }
                div.label { a href=(scope.link("/ui/failures")) { "failures" } " (" (status.pending_retry) " to retry)" }
            }
            div.card { div.figure { (sources.len()) } div.label { a href=(scope.link("/ui/sources")) { "sources" } } }
        }
        h2 { "Pipeline" }
        div.actions {
            span #pipeline-state { @if running { (badge("running")) } @else { (badge("paused")) } }
            span.muted { @if running { "Sources run on their schedules." } @else { "Scheduled runs wait; a sync started by hand still runs." } }
            @if scope.viewer.is_admin() {
                form.inline method="post" action=(scope.link(if running { "/ui/pipeline/stop" } else { "/ui/pipeline/start" })) {
                    (scope.csrf_field())
                    button.secondary type="submit" #pipeline-toggle { @if running { "Pause" } @else { "Resume" } }
                }
            }
        }
        @let runs: Vec<_> = sources.iter().filter(|s| s.running).collect();
        @if !runs.is_empty() || !jobs.is_empty() {
            // Shown again every two seconds while work is in progress (by the script).
            div data-refresh-seconds="2" {}
        }
        @if !runs.is_empty() {
            h2 { "Runs in progress" }
            div.table-wrap { table #runs-in-progress {
                thead { tr { th { "Source" } th { "Progress" } } }
                tbody {
                    @for s in &runs {
                        tr {
                            td { a href=(scope.link(&format!("/ui/sources/{}/{}", s.source_type, s.source_id))) { (s.source_id) } }
                            td {
                                @match s.progress.and_then(|p| p.total.filter(|t| *t > 0).map(|t| (p.done, t))) {
                                    Some((done, total)) => { progress max=(total.max(1)) value=(done) {} " " (done) " of " (total) " documents" },
                                    None => { progress {} " listing…" },
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if !jobs.is_empty() {
            h2 { "Jobs in progress" }
            div.table-wrap { table {
                thead { tr { th { "Job" } th { "Kind" } th { "Source" } th { "Progress" } } }
                tbody {
                    @for job in &jobs {
                        tr {
                            td { a href=(scope.link(&format!("/ui/jobs/{}", job.id))) { (job.id) } }
                            td { (job.kind) }
                            td { (job.source_id) }
                            td {
                                @if job.total > 0 { progress max=(job.total) value=(job.done) {} " " (job.done) " of " (job.total) }
                                @else { (badge(&word(job.state))) }
                            }
                        }
                    }
                }
            } }
        }
        h2 { "Health" }
        div.table-wrap { table #health {
            thead { tr { th { "Component" } th { "Status" } th { "Detail" } } }
            tbody {
                @for (name, component) in &components {
                    tr { td { (name) } td { (badge(&word(component.status))) } td { (component.message) } }
                }
            }
        } }
        h2 { "Storage and embedder" }
        dl.facts {
            dt { "Storage mode" } dd #storage-mode { (word(config.storage_mode())) }
            // How the server's environment was read is the admin's business, as in
            // /api/v1/status.
            @if scope.viewer.is_admin() {
                dt { "Why" } dd { (config.backend().to_string()) }
                @if config.recommended_mode() != config.storage_mode() {
                    dt { "Recommended" } dd { (word(config.recommended_mode())) }
                }
            }
            dt { "Embedder" } dd #embedder { (o.engine().embedder().to_string()) }
            dt { "Version" } dd { (health.version) ", up " (uptime(health.uptime_seconds)) }
        }
        h2 { "Runs by day" }
        (column_chart("runs-by-day", &by_day.iter().map(|d| (d.day.clone(), d.runs - d.failed_runs, d.failed_runs)).collect::<Vec<_>>(), "runs", "with failures"))
        h2 { "Documents indexed, changed or removed by day" }
        (column_chart("documents-by-day", &by_day.iter().map(|d| (d.day.clone(), d.documents, d.failed_documents)).collect::<Vec<_>>(), "documents", "failed"))
        h2 { "Documents by source" }
        (bar_chart("documents-chart", &status.by_source.iter().map(|(k, v)| (k.clone(), *v, false)).collect::<Vec<_>>()))
        h2 { "Last run of each source" }
        (bar_chart("runs-chart", &sources.iter().filter_map(|s| {
            let r = s.last_report.as_ref()?;
            Some(vec![
                (format!("{} new", s.source_id), r.created, false),
                (format!("{} changed", s.source_id), r.updated + r.moved + r.touched, false),
                (format!("{} deleted", s.source_id), r.deleted, false),
                (format!("{} failed", s.source_id), r.failed, true),
            ])
        }).flatten().collect::<Vec<_>>()))
        p.muted { "Each source's last finished run; " a href=(scope.link("/ui/runs")) { "every source's report" } "." }
    };
    Ok(scope
        .page("Overview", Section::Overview, content)
        .into_response())
}

/// One day of the run history.
struct Day {
    day: String,
    runs: usize,
    failed_runs: usize,
    documents: usize,
    failed_documents: usize,
}

/// The runs' last [`DAYS`] days with runs, oldest first.
fn runs_by_day(runs: &[lancesync_engine::RunSummary]) -> Vec<Day> {
    const DAYS: usize = 14;
    let mut days: Vec<Day> = Vec::new();
    for r in runs {
        let day = r
            .finished_at
            .get(..10)
            .unwrap_or(&r.finished_at)
            .to_string();
        if days.last().is_none_or(|d| d.day != day) {
            days.push(Day {
                day,
                runs: 0,
                failed_runs: 0,
                documents: 0,
                failed_documents: 0,
            });
        }
        let d = days.last_mut().expect("pushed");
        d.runs += 1;
        d.failed_runs += usize::from(r.failed > 0);
        d.documents += r.created + r.updated + r.moved + r.deleted;
        d.failed_documents += r.failed;
    }
    let from = days.len().saturating_sub(DAYS);
    days.split_off(from)
}

/// Columns in SVG, one a `(label, good, bad)`, the bad part stacked on top in red.
fn column_chart(id: &str, columns: &[(String, usize, usize)], good: &str, bad: &str) -> Markup {
    if columns.is_empty() {
        return html! { p.muted #(id) { "No runs yet." } };
    }
    let max = columns.iter().map(|c| c.1 + c.2).max().unwrap_or(0).max(1);
    let width = 600.0;
    let plot = 120.0;
    let slot = width / columns.len() as f64;
    let bar = (slot * 0.6).min(40.0);
    let scale = |v: usize| v as f64 / max as f64 * plot;
    html! {
        div.chart #(id) {
            svg viewBox=(format!("0 0 {width} {}", plot + 40.0)) role="img" aria-label=(format!("{good} and {bad} by day")) {
                @for (i, (label, ok, failed)) in columns.iter().enumerate() {
                    @let x = i as f64 * slot + (slot - bar) / 2.0;
                    @let h_ok = scale(*ok);
                    @let h_bad = scale(*failed);
                    rect.bar x=(format!("{x:.1}")) y=(format!("{:.1}", 14.0 + plot - h_ok)) width=(format!("{bar:.1}")) height=(format!("{h_ok:.1}")) {
                        title { (label) ": " (ok) " " (good) }
                    }
                    @if *failed > 0 {
                        rect.bar.failed x=(format!("{x:.1}")) y=(format!("{:.1}", 14.0 + plot - h_ok - h_bad)) width=(format!("{bar:.1}")) height=(format!("{h_bad:.1}")) {
                            title { (label) ": " (failed) " " (bad) }
                        }
                    }
                    text x=(format!("{:.1}", x)) y=(format!("{:.1}", 10.0 + plot - h_ok - h_bad)) { (ok + failed) }
                    text x=(format!("{:.1}", x)) y=(format!("{:.1}", plot + 30.0)) { (label.get(5..).unwrap_or(label)) }
                }
            }
        }
    }
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// A horizontal bar chart in SVG (no script, no inline style): one bar a `(label, value)`.
pub(crate) fn bar_chart(id: &str, bars: &[(String, usize, bool)]) -> Markup {
    if bars.is_empty() {
        return html! { p.muted #(id) { "Nothing yet." } };
    }
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let row = 18;
    let height = bars.len() * row + 4;
    html! {
        div.chart #(id) {
            svg viewBox=(format!("0 0 600 {height}")) role="img" aria-label="bar chart" {
                @for (i, (label, value, bad)) in bars.iter().enumerate() {
                    @let y = i * row + 2;
                    @let width = (*value as f64 / max as f64 * 380.0).max(if *value > 0 { 2.0 } else { 0.0 });
                    text x="0" y=(y + 12) { (label) }
                    rect.bar.failed[*bad] x="170" y=(y + 2) width=(format!("{width:.1}")) height="12" {}
                    text x=(format!("{:.1}", 176.0 + width)) y=(y + 12) { (value) }
                }
            }
        }
    }
}

pub(crate) async fn pipeline(
    State(ui): State<Ui>,
    scope: Scope,
    Path(action): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    scope
        .viewer
        .principal()
        .require_admin()
        .map_err(crate::Error::Api)?;
    let o = ui.api.orchestrator();
    let text = match action.as_str() {
        "start" => {
            o.start();
            "The pipeline runs: sources sync on their schedules."
        }
        "stop" => {
            o.stop();
            "The pipeline is paused: scheduled runs wait until it resumes."
        }
        _ => {
            return Err(ApiError::not_found("the pipeline can be started or stopped").into());
        }
    };
    Ok(done(&scope, true, text, "/ui"))
}
