//! Documents: a filtered, paged list; a document with its chunks; deleting one; uploading
//! files (dropped on the page or picked).

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::IntoResponse;
use lancesync_api::ApiError;
use lancesync_engine::DocumentFilter;
use lancesync_ingest::DocType;
use maud::html;
use serde::Deserialize;

use super::{CsrfOnly, PageResult, done, failed};
use crate::Ui;
use crate::error::Error;
use crate::layout::{Scope, Section, badge, percent_encode, when};

const PAGE: usize = 50;
const TYPES: [&str; 5] = ["pdf", "docx", "html", "md", "txt"];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    source: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    status: Option<String>,
    page: Option<usize>,
}

impl ListQuery {
    fn href(&self, scope: &Scope, page: usize) -> String {
        let mut q = format!("/ui/documents?page={page}");
        for (k, v) in [
            ("source", &self.source),
            ("type", &self.doc_type),
            ("status", &self.status),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push_str(&format!("&{k}={}", percent_encode(v)));
            }
        }
        scope.link(&q)
    }
}

pub(crate) async fn list(
    State(ui): State<Ui>,
    scope: Scope,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let doc_type: Option<DocType> = match non_empty(&query.doc_type) {
        None => None,
        Some(t) => Some(
            serde_json::from_value(serde_json::Value::String(t.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown document type {t}")))?,
        ),
    };
    let filter = DocumentFilter {
        source_id: non_empty(&query.source),
        doc_type,
        status: non_empty(&query.status),
    };
    let page_number = query.page.unwrap_or(1).max(1);
    let o = ui.api.orchestrator();
    let page = o
        .engine()
        .documents(&scope.user, &filter, (page_number - 1) * PAGE, PAGE)
        .await?;
    let sources = o.sources(Some(&scope.user));
    let pages = page.total.div_ceil(PAGE).max(1);
    let content = html! {
        form method="post" action=(scope.link("/ui/documents")) enctype="multipart/form-data" #upload-form {
            (scope.csrf_field())
            div.dropzone data-dropzone {
                p { "Drop files here to upload and index them (pdf, docx, html, md, txt), or pick them:" }
                input #upload-input type="file" name="file" multiple accept=".pdf,.docx,.html,.htm,.md,.markdown,.txt";
                " " button.secondary type="submit" data-noscript-only { "Upload" }
            }
        }
        form.filters method="get" action="/ui/documents" {
            @if scope.viewer.is_admin() { input type="hidden" name="user" value=(scope.user); }
            label { "Source" select name="source" {
                option value="" { "all" }
                @for s in &sources { option value=(s.source_id) selected[query.source.as_deref() == Some(s.source_id.as_str())] { (s.source_id) } }
                option value="uploads" selected[query.source.as_deref() == Some("uploads")] { "uploads" }
            } }
            label { "Type" select name="type" {
                option value="" { "all" }
                @for t in TYPES { option value=(t) selected[query.doc_type.as_deref() == Some(t)] { (t) } }
            } }
            label { "Status" select name="status" {
                option value="" { "all" }
                @for s in ["completed", "failed"] { option value=(s) selected[query.status.as_deref() == Some(s)] { (s) } }
            } }
            button.secondary type="submit" { "Filter" }
        }
        p.muted #documents-total { (page.total) " document" @if page.total != 1 { "s" } }
        @if !page.items.is_empty() {
            div.table-wrap { table #documents {
                thead { tr { th { "Title" } th { "Source" } th { "Type" } th { "Status" } th.num { "Chunks" } th.hide-narrow { "Synced" } } }
                tbody {
                    @for d in &page.items {
                        tr data-doc=(d.doc_id) {
                            td { a href=(scope.link(&format!("/ui/documents/{}", d.doc_id))) { (d.title) } br; span.muted { (d.source_uri) } }
                            td { (d.source_id) }
                            td { (d.doc_type) }
                            td { (badge(&d.processing_status)) }
                            td.num { (d.total_chunks) }
                            td.hide-narrow { (when(&d.last_synced)) }
                        }
                    }
                }
            } }
        }
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page_number > 1 { a href=(query.href(&scope, page_number - 1)) { "Previous" } }
                span { "Page " (page_number) " of " (pages) }
                @if page_number < pages { a href=(query.href(&scope, page_number + 1)) #next-page { "Next" } }
            }
        }
    };
    Ok(scope
        .page("Documents", Section::Documents, content)
        .into_response())
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    scope: Scope,
    Path(doc_id): Path<String>,
) -> PageResult {
    let Some(doc) = ui
        .api
        .orchestrator()
        .engine()
        .document(&scope.user, &doc_id)
        .await?
    else {
        return Err(Error::Api(ApiError::not_found(format!(
            "there is no document {doc_id}"
        ))));
    };
    let d = &doc.document;
    let content = html! {
        dl.facts {
            dt { "Where" } dd { (d.source_uri) }
            dt { "Source" } dd { (d.source_id) " (" (d.source_type) ")" }
            dt { "Type" } dd { (d.doc_type) }
            dt { "Status" } dd { (badge(&d.processing_status)) }
            @if let Some(e) = &d.error_message { dt { "Why it failed" } dd #failure-reason { (e) " (" (d.attempts) " attempt" @if d.attempts != 1 { "s" } ")" } }
            dt { "Size" } dd { (d.size) " bytes" }
            dt { "Indexed" } dd { (when(&d.ingested_at)) }
            dt { "Synced" } dd { (when(&d.last_synced)) }
            dt { "Chunks" } dd { (d.total_chunks) }
        }
        form.inline method="post" action=(scope.link(&format!("/ui/documents/{}/delete", d.doc_id))) {
            (scope.csrf_field())
            div.actions {
                button.danger type="submit" #delete-document { "Remove from the index" }
                span.muted { "It comes back at its source's next run if the source still has it." }
            }
        }
        h2 { "Chunks" }
        @for c in &doc.chunks {
            div.chunk data-chunk=(c.chunk_index) { span.muted { "#" (c.chunk_index) " " } (c.chunk_text) }
        }
    };
    Ok(scope
        .page(&d.title, Section::Documents, content)
        .into_response())
}

pub(crate) async fn delete(
    State(ui): State<Ui>,
    scope: Scope,
    Path(doc_id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    match ui
        .api
        .orchestrator()
        .delete_document(&scope.user, &doc_id)
        .await
    {
        Ok(true) => Ok(done(
            &scope,
            true,
            "The document was removed from the index.",
            "/ui/documents",
        )),
        Ok(false) => Ok(done(
            &scope,
            false,
            "That document is not in the index any more.",
            "/ui/documents",
        )),
        Err(e) => Ok(failed(&scope, e, &format!("/ui/documents/{doc_id}"))),
    }
}

pub(crate) async fn upload(
    State(ui): State<Ui>,
    scope: Scope,
    mut multipart: Multipart,
) -> PageResult {
    let mut csrf_checked = false;
    let mut said = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Ok(failed(
                    &scope,
                    ApiError::bad_request(format!("the upload was cut short: {}", e.body_text())),
                    "/ui/documents",
                ));
            }
        };
        match field.name() {
            Some("csrf") => {
                let token = field.text().await.unwrap_or_default();
                scope.viewer.check_csrf(&token)?;
                csrf_checked = true;
            }
            Some("file") if csrf_checked => {
                let name = field.file_name().unwrap_or_default().to_string();
                if name.is_empty() {
                    continue;
                }
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        return Ok(failed(
                            &scope,
                            ApiError::new(e.status(), format!("{name}: {}", e.body_text())),
                            "/ui/documents",
                        ));
                    }
                };
                said += 1;
                match ui
                    .api
                    .orchestrator()
                    .upload(&scope.user, &name, &bytes)
                    .await
                {
                    Ok(doc) if doc.processing_status == "completed" => scope.viewer.session.flash(
                        true,
                        format!("{name} is indexed: {} chunks.", doc.total_chunks),
                    ),
                    Ok(doc) => scope.viewer.session.flash(
                        false,
                        format!(
                            "{name} was kept but could not be indexed: {}",
                            doc.error_message.as_deref().unwrap_or("unknown reason")
                        ),
                    ),
                    Err(e) => scope
                        .viewer
                        .session
                        .flash(false, format!("{name}: {}", Error::from(e))),
                }
            }
            _ => return Err(Error::Csrf),
        }
    }
    if said == 0 {
        scope
            .viewer
            .session
            .flash(false, "Pick or drop a file to upload.");
    }
    Ok(axum::response::Redirect::to(&scope.link("/ui/documents")).into_response())
}
