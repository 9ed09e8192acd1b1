//! Failed documents: why, how often, when they are tried again; retry one or all.

use std::collections::BTreeSet;

use axum::Form;
use axum::extract::State;
use axum::response::IntoResponse;
use lancesync_engine::DocumentFilter;
use maud::html;
use serde::Deserialize;

use super::{PageResult, done};
use crate::Ui;
use crate::layout::{Scope, Section, when};

/// Failures shown on one page; the rest are counted.
const SHOWN: usize = 500;

pub(crate) async fn list(State(ui): State<Ui>, scope: Scope) -> PageResult {
    let o = ui.api.orchestrator();
    let filter = DocumentFilter {
        status: Some("failed".into()),
        ..DocumentFilter::default()
    };
    let page = o.engine().documents(&scope.user, &filter, 0, SHOWN).await?;
    let max_retries = o.settings().sync.max_retries;
    let content = html! {
        @if page.items.is_empty() {
            p #no-failures { "No failed documents." }
        } @else {
            p {
                (page.total) " document" @if page.total != 1 { "s" } " could not be indexed. "
                "A failure is tried again by later runs, after a wait that grows with each attempt, up to MAX_RETRIES ("
                (max_retries) ") attempts. Retrying clears the record and syncs the source now."
            }
            form.inline method="post" action=(scope.link("/ui/failures/retry")) {
                (scope.csrf_field())
                input type="hidden" name="doc_id" value="all";
                div.actions { button type="submit" #retry-all { "Retry all " (page.total) } }
            }
            form.inline method="post" action=(scope.link("/ui/failures/clear")) {
                (scope.csrf_field())
                div.actions {
                    button.secondary type="submit" #clear-failures { "Clear the records" }
                    span.muted { "The next scheduled run of each source reads them again." }
                }
            }
            div.table-wrap { table #failures {
                thead { tr { th { "Document" } th { "Source" } th { "Why" } th.num { "Attempts" } th { "Next try" } th { "" } } }
                tbody {
                    @for d in &page.items {
                        tr data-doc=(d.doc_id) {
                            td { a href=(scope.link(&format!("/ui/documents/{}", d.doc_id))) { (d.title) } br; span.muted { (d.source_uri) } }
                            td { (d.source_id) }
                            td.reason { (d.error_message.as_deref().unwrap_or("unknown")) }
                            td.num { (d.attempts) }
                            td {
                                @match o.engine().next_retry(d) {
                                    Some(at) => { "the first run after " (when(&at)) },
                                    None => { "out of retries: by hand, or when it changes" },
                                }
                                br; span.muted { "last tried " (when(&d.last_synced)) }
                            }
                            td {
                                form.inline method="post" action=(scope.link("/ui/failures/retry")) {
                                    (scope.csrf_field())
                                    input type="hidden" name="doc_id" value=(d.doc_id);
                                    button.secondary type="submit" { "Retry" }
                                }
                            }
                        }
                    }
                }
            } }
            @if page.total > page.items.len() { p.muted { "The first " (page.items.len()) " are shown." } }
        }
    };
    Ok(scope
        .page("Failures", Section::Failures, content)
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetryForm {
    csrf: String,
    /// A document's id, or `all`.
    doc_id: String,
}

pub(crate) async fn retry(
    State(ui): State<Ui>,
    scope: Scope,
    Form(form): Form<RetryForm>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    let o = ui.api.orchestrator();
    let engine = o.engine();
    let filter = DocumentFilter {
        status: Some("failed".into()),
        ..DocumentFilter::default()
    };
    let failed = engine.documents(&scope.user, &filter, 0, 1000).await?.items;
    let sources: BTreeSet<String> = failed
        .iter()
        .filter(|d| form.doc_id == "all" || d.doc_id == form.doc_id)
        .map(|d| d.source_id.clone())
        .collect();
    let cleared = if form.doc_id == "all" {
        engine.clear_failures(&scope.user).await?
    } else {
        usize::from(engine.clear_failure(&scope.user, &form.doc_id).await?)
    };
    if cleared == 0 {
        return Ok(done(
            &scope,
            false,
            "Nothing to retry: that failure is gone already.",
            "/ui/failures",
        ));
    }
    // Sync the sources now, so the retry happens while the person watches.
    let mut started = Vec::new();
    for s in o.sources(Some(&scope.user)) {
        if sources.contains(&s.source_id)
            && o.scan(&scope.user, &s.source_type, &s.source_id).is_ok()
        {
            started.push(s.source_id);
        }
    }
    let text = if started.is_empty() {
        format!(
            "{cleared} failure record(s) cleared: the next run of their source reads them again."
        )
    } else {
        format!(
            "{cleared} failure record(s) cleared; syncing {} now.",
            started.join(", ")
        )
    };
    Ok(done(&scope, true, text, "/ui/failures"))
}

pub(crate) async fn clear(
    State(ui): State<Ui>,
    scope: Scope,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    let cleared = ui
        .api
        .orchestrator()
        .engine()
        .clear_failures(&scope.user)
        .await?;
    Ok(done(
        &scope,
        true,
        format!(
            "{cleared} failure record(s) cleared: the next run of their source reads them again."
        ),
        "/ui/failures",
    ))
}
