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
    let jobs = o.unfinished_jobs(Some(&scope.user));
    let own_source = format!("source:{}/", scope.user);
    let components: Vec<_> = health
        .components
        .iter()
        .filter(|(name, _)| {
            !name.starts_with("source:") || scope.viewer.is_admin() || name.starts_with(&own_source)
        })
        .collect();
    let running = o.is_running();
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
        @if !jobs.is_empty() {
            h2 { "In progress" }
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
            dt { "Why" } dd { (config.backend().to_string()) }
            @if config.recommended_mode() != config.storage_mode() {
                dt { "Recommended" } dd { (word(config.recommended_mode())) }
            }
            dt { "Embedder" } dd #embedder { (o.engine().embedder().to_string()) }
            dt { "Version" } dd { (health.version) ", up " (uptime(health.uptime_seconds)) }
        }
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
