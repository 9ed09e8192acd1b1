//! Requests to Notion's API and its refusals.

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::render::Block;
use super::{MAX_DEPTH, NOTION_VERSION, NotionSource, PAGE_SIZE, PageMeta, page_meta};
use crate::{Error, Result};

/// Notion's error body.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    #[serde(default)]
    pub(super) code: String,
    #[serde(default)]
    pub(super) message: String,
}

impl NotionSource {
    /// One call; `Ok(Err(..))` carries Notion's own refusal (4xx other than 401 and 429).
    pub(super) async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<std::result::Result<Value, (StatusCode, ApiError)>> {
        if !crate::http::plain_path(path) {
            return Err(self.http.remote(format!(
                "{what}: refused to request {path:?}: a Notion id holds characters ids never have"
            )));
        }
        let url = url::Url::parse_with_params(&format!("{}{path}", self.api), query)
            .map_err(|e| self.http.remote(format!("{what}: bad URL: {e}")))?;
        let response = self
            .http
            .send(what, || {
                let mut request = self
                    .http
                    .client()
                    .request(method.clone(), url.clone())
                    .bearer_auth(self.token.expose_secret())
                    .header("Notion-Version", NOTION_VERSION);
                if let Some(body) = body {
                    request = request.json(body);
                }
                request
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map(Ok).map_err(|e| {
                self.http.remote(format!(
                    "{what}: Notion's answer is not what its API documents: {}",
                    e.without_url()
                ))
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            let e: ApiError = response.json().await.unwrap_or_default();
            return Err(Error::Auth {
                source_id: self.id.clone(),
                reason: format!(
                    "Notion refused the integration token ({}: {}); the index is left as it is. Give the integration's current token",
                    e.code, e.message
                ),
            });
        }
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            return Ok(Err((status, response.json().await.unwrap_or_default())));
        }
        Err(self.http.failure(what, response).await)
    }

    pub(super) fn refused(&self, what: &str, (status, e): (StatusCode, ApiError)) -> Error {
        self.http.remote(format!(
            "{what}: Notion answered {status} {}: {}; nothing is deleted",
            e.code, e.message
        ))
    }

    /// Every page of a paginated POST listing (search, database query).
    pub(super) async fn list_pages(
        &self,
        what: &str,
        path: &str,
        base: Value,
        out: &mut Vec<PageMeta>,
    ) -> Result<()> {
        let mut cursor: Option<String> = None;
        loop {
            let mut body = base.clone();
            body["page_size"] = PAGE_SIZE.into();
            if let Some(c) = &cursor {
                body["start_cursor"] = c.clone().into();
            }
            let page = self
                .call(what, reqwest::Method::POST, path, &[], Some(&body))
                .await?
                .map_err(|e| self.refused(what, e))?;
            for result in page["results"].as_array().into_iter().flatten() {
                if result["object"] == "page"
                    && let Some(meta) = page_meta(result)
                    && !meta.gone
                {
                    out.push(meta);
                }
            }
            match (page["has_more"].as_bool(), page["next_cursor"].as_str()) {
                (Some(true), Some(next)) => cursor = Some(next.to_string()),
                _ => return Ok(()),
            }
        }
    }

    pub(super) async fn query_database(
        &self,
        database: &str,
        out: &mut Vec<PageMeta>,
    ) -> Result<()> {
        self.list_pages(
            "databases.query",
            &format!("/v1/databases/{database}/query"),
            serde_json::json!({}),
            out,
        )
        .await
    }

    /// Every block under `id` (a page or a block), children fetched recursively.
    pub(super) async fn blocks(&self, id: &str, depth: usize) -> Result<Vec<Block>> {
        let mut blocks = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("page_size", PAGE_SIZE.to_string())];
            if let Some(c) = &cursor {
                query.push(("start_cursor", c.clone()));
            }
            let page = self
                .call(
                    "blocks.children.list",
                    reqwest::Method::GET,
                    &format!("/v1/blocks/{id}/children"),
                    &query,
                    None,
                )
                .await?
                .map_err(|e| self.refused("blocks.children.list", e))?;
            for value in page["results"].as_array().into_iter().flatten() {
                blocks.push(Block {
                    value: value.clone(),
                    children: Vec::new(),
                });
            }
            match (page["has_more"].as_bool(), page["next_cursor"].as_str()) {
                (Some(true), Some(next)) => cursor = Some(next.to_string()),
                _ => break,
            }
        }
        for block in &mut blocks {
            let kind = block.value["type"].as_str().unwrap_or_default();
            if block.value["has_children"] == true
                && !matches!(kind, "child_page" | "child_database")
                && depth < MAX_DEPTH
                && let Some(child) = block.value["id"].as_str().map(str::to_string)
            {
                block.children = Box::pin(self.blocks(&child, depth + 1)).await?;
            }
        }
        Ok(blocks)
    }
}
