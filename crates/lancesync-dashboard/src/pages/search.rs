//! The search playground: a query, a mode, filters; hits with the query's words marked, and
//! the search's own time.

use std::time::Instant;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use lancesync_engine::{SearchMode, SearchRequest};
use lancesync_ingest::DocType;
use maud::html;
use serde::Deserialize;

use super::PageResult;
use crate::Ui;
use crate::highlight::marked;
use crate::layout::{Scope, Section};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    mode: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    limit: Option<String>,
}

const MODES: [(&str, &str); 3] = [
    ("hybrid", "Hybrid"),
    ("vector", "Vector"),
    ("full_text", "Full text"),
];
const TYPES: [&str; 5] = ["pdf", "docx", "html", "md", "txt"];

pub(crate) async fn show(
    State(ui): State<Ui>,
    scope: Scope,
    Query(query): Query<SearchQuery>,
) -> PageResult {
    let text = query.q.clone().unwrap_or_default();
    let mode = query.mode.clone().unwrap_or_else(|| "hybrid".into());
    let source = query.source.clone().filter(|s| !s.is_empty());
    let doc_type = query.doc_type.clone().filter(|s| !s.is_empty());
    let limit_text = query.limit.clone().unwrap_or_else(|| "10".into());
    let sources = ui.api.orchestrator().sources(Some(&scope.user));
    let mut outcome = None;
    if !text.trim().is_empty() {
        let request = (|| -> Result<SearchRequest, String> {
            let mode: SearchMode = serde_json::from_value(serde_json::Value::String(mode.clone()))
                .map_err(|_| format!("unknown mode {mode}: hybrid, vector or full_text"))?;
            let doc_type: Option<DocType> = match &doc_type {
                None => None,
                Some(t) => Some(
                    serde_json::from_value(serde_json::Value::String(t.clone()))
                        .map_err(|_| format!("unknown type {t}"))?,
                ),
            };
            let limit: usize = limit_text
                .trim()
                .parse()
                .map_err(|_| "the number of hits is a whole number from 1 to 1000".to_string())?;
            Ok(SearchRequest {
                query: text.clone(),
                mode,
                limit,
                source_id: source.clone(),
                doc_type,
                vector_weight: None,
            })
        })();
        outcome = Some(match request {
            Err(e) => Err(e),
            Ok(request) => {
                let started = Instant::now();
                let result = ui
                    .api
                    .orchestrator()
                    .engine()
                    .search(&scope.user, &request)
                    .await;
                let took = started.elapsed();
                result
                    .map(|hits| (hits, took))
                    .map_err(|e| lancesync_api::ApiError::from(e).message)
            }
        });
    }
    let content = html! {
        form.filters method="get" action="/ui/search" role="search" {
            @if scope.viewer.is_admin() { input type="hidden" name="user" value=(scope.user); }
            label { "Query" input #query type="search" name="q" value=(text) required autofocus; }
            label { "Mode" select #mode name="mode" {
                @for (value, name) in MODES { option value=(value) selected[value == mode] { (name) } }
            } }
            label { "Source" select name="source" {
                option value="" { "all" }
                @for s in &sources { option value=(s.source_id) selected[source.as_deref() == Some(s.source_id.as_str())] { (s.source_id) } }
            } }
            label { "Type" select name="type" {
                option value="" { "all" }
                @for t in TYPES { option value=(t) selected[doc_type.as_deref() == Some(t)] { (t) } }
            } }
            label { "Hits" input type="number" name="limit" min="1" max="1000" value=(limit_text); }
            button type="submit" #search-button { "Search" }
        }
        @match &outcome {
            None => p.muted { "Search the user's documents as an application would: hybrid (the default) weighs meaning and words; vector finds meaning in other words; full text finds the words." },
            Some(Err(e)) => p.flash.error role="alert" #search-error { (e) },
            Some(Ok((hits, took))) => {
                p #search-summary {
                    (hits.len()) " hit" @if hits.len() != 1 { "s" } " in "
                    span #search-latency { (format!("{:.1} ms", took.as_secs_f64() * 1000.0)) }
                    span.muted { " (scores 0 to 1, higher is closer)" }
                }
                div.hits #hits {
                    @for hit in hits {
                        article.hit {
                            h3 { a href=(scope.link(&format!("/ui/documents/{}", hit.doc_id))) { (hit.title) } }
                            div.meta { (hit.source_id) " · " (hit.doc_type) " · chunk " (hit.chunk_index) " · score " (format!("{:.3}", hit.score)) br; (hit.source_uri) }
                            p { (marked(&hit.chunk_text, &text)) }
                        }
                    }
                }
            }
        }
    };
    Ok(scope
        .page("Search", Section::Search, content)
        .into_response())
}
