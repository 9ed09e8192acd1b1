//! A job's page: a progress bar that follows it (the script polls `progress`), then its
//! report.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use lancesync_orchestrator::{Job, JobState};
use maud::html;
use serde_json::json;

use super::PageResult;
use super::overview::word;
use super::sources::{SourcePath, report};
use crate::Ui;
use crate::layout::{Scope, Section, badge, when};

/// The job, if the viewer may see its user's work (404 otherwise, as for a job that does
/// not exist: ids are not secrets, but other users' work is none of a user's business).
async fn visible_job(ui: &Ui, scope: &Scope, id: &str) -> Result<Job, crate::Error> {
    let job = ui.api.orchestrator().find_job(id).await?;
    if scope
        .viewer
        .principal()
        .user_for(Some(&job.user_id))
        .is_err()
    {
        return Err(lancesync_orchestrator::Error::NoSuchJob(id.into()).into());
    }
    Ok(job)
}

pub(crate) async fn show(State(ui): State<Ui>, scope: Scope, Path(id): Path<String>) -> PageResult {
    let job = visible_job(&ui, &scope, &id).await?;
    let finished = job.state.is_finished();
    let source = ui
        .api
        .orchestrator()
        .sources(Some(&job.user_id))
        .into_iter()
        .find(|s| s.source_id == job.source_id);
    let content = html! { div #job-body {
        dl.facts {
            dt { "Kind" } dd { (job.kind) }
            @if !job.source_id.is_empty() { dt { "Source" } dd { (job.source_id) } }
            dt { "State" } dd #job-state data-progress-state { (badge(&word(job.state))) }
            dt { "Started" } dd { (when(&job.created_at)) }
            @if let Some(at) = &job.finished_at { dt { "Finished" } dd { (when(at)) } }
        }
        @if !finished {
            div.progress #job-progress data-progress-url=(format!("/ui/jobs/{}/progress", job.id)) {
                progress max=(job.total.max(1)) value=[(job.total > 0).then_some(job.done)] {}
                p data-progress-label { (job.done) " of " (job.total) " documents" }
                noscript { p { "This page does not update itself without scripts: " a href=(scope.link(&format!("/ui/jobs/{}", job.id))) { "reload" } " to see progress." } }
            }
        }
        @if job.state == JobState::Failed {
            p.flash.error role="alert" #job-error { (job.error.as_deref().unwrap_or("the job failed")) }
        }
        @if let Some(r) = &job.report {
            h2 #job-report { "Report" }
            @let path = SourcePath::new(source.as_ref().map(|s| s.source_type.as_str()).unwrap_or("local_filesystem"), &job.source_id);
            (report(&scope, &path, r))
        }
        @if let Some(result) = &job.result {
            h2 #job-report { "Result" }
            dl.facts #job-result {
                @match result.as_object() {
                    Some(fields) => {
                        @for (key, value) in fields {
                            dt { (key.replace('_', " ")) }
                            dd { (plain(value)) }
                        }
                    },
                    None => { dt { "result" } dd { (plain(result)) } },
                }
            }
        }
        @if let Some(s) = &source {
            p { a href=(scope.link(&format!("/ui/sources/{}/{}", s.source_type, s.source_id))) { "Back to " (s.source_id) } }
        }
    } };
    let title = if job.source_id.is_empty() {
        format!("Job {}", job.id)
    } else {
        format!("Syncing {}", job.source_id)
    };
    Ok(scope
        .page(&title, Section::Sources, content)
        .into_response())
}

pub(crate) async fn progress(
    State(ui): State<Ui>,
    scope: Scope,
    Path(id): Path<String>,
) -> PageResult {
    let job = visible_job(&ui, &scope, &id).await?;
    Ok(Json(json!({
        "state": job.state,
        "done": job.done,
        "total": job.total,
    }))
    .into_response())
}

/// A result's value as a person reads it: text as is, numbers and yes/no as words, lists and
/// objects as `key: value` pairs.
fn plain(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "—".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{}: {}", k.replace('_', " "), plain(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;
    use serde_json::json;

    #[test]
    fn results_read_as_words() {
        assert_eq!(
            plain(&json!({"versions": {"processed_documents": 3}})),
            "versions: processed documents: 3"
        );
        assert_eq!(
            plain(&json!({"ok": true, "kept": null})).len(),
            "ok: yes; kept: —".len()
        );
        assert_eq!(plain(&json!(["a", 1, false])), "a, 1, no");
    }
}
