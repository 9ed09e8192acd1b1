//! A local stand-in for Notion's API (version 2022-06-28) on 127.0.0.1, speaking its wire
//! format: `POST /v1/search`, `POST /v1/databases/{id}/query`, `GET /v1/pages/{id}` and
//! `GET /v1/blocks/{id}/children`, with `page_size`/`start_cursor` paging (`next_cursor`,
//! `has_more`), page objects (`last_edited_time` rounded to the minute, `archived`,
//! `in_trash`, `parent`, typed `properties`), block objects (`type` plus a same-named body,
//! `has_children`, rich text with `plain_text` and `annotations`), the error body
//! (`{"object": "error", "status", "code", "message"}`), 401 `unauthorized`, 400
//! `missing_version` without a `Notion-Version` header, 404 `object_not_found`, and 429
//! `rate_limited` with `Retry-After`.
//!
//! One file, over the usual size: it is one fake service (pages, blocks and their routes share
//! one state), and splitting it would spread one wire format over several files.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

const USER: &str = "5e2c0c3e-7b1a-4a6f-9d2e-1f0a9b8c7d6e";

/// A block to put on a page: its type, its body (the object under the type's key) and the
/// blocks nested in it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotionBlock {
    kind: String,
    body: Value,
    children: Vec<NotionBlock>,
}

/// Rich text of one plain run, as Notion sends it.
fn rich(text: &str) -> Value {
    json!([{
        "type": "text",
        "text": { "content": text, "link": null },
        "annotations": { "bold": false, "italic": false, "strikethrough": false, "underline": false, "code": false, "color": "default" },
        "plain_text": text,
        "href": null,
    }])
}

impl NotionBlock {
    fn new(kind: &str, body: Value) -> Self {
        Self {
            kind: kind.to_string(),
            body,
            children: Vec::new(),
        }
    }

    fn text(kind: &str, text: &str) -> Self {
        Self::new(kind, json!({ "rich_text": rich(text), "color": "default" }))
    }

    /// A paragraph.
    pub fn paragraph(text: &str) -> Self {
        Self::text("paragraph", text)
    }

    /// A heading of level 1 to 3.
    pub fn heading(level: u8, text: &str) -> Self {
        let kind = format!("heading_{}", level.clamp(1, 3));
        Self::new(
            &kind,
            json!({ "rich_text": rich(text), "color": "default", "is_toggleable": false }),
        )
    }

    /// A bulleted list item.
    pub fn bullet(text: &str) -> Self {
        Self::text("bulleted_list_item", text)
    }

    /// A numbered list item.
    pub fn numbered(text: &str) -> Self {
        Self::text("numbered_list_item", text)
    }

    /// A to-do item.
    pub fn todo(text: &str, checked: bool) -> Self {
        Self::new(
            "to_do",
            json!({ "rich_text": rich(text), "checked": checked, "color": "default" }),
        )
    }

    /// A code block.
    pub fn code(language: &str, text: &str) -> Self {
        Self::new(
            "code",
            json!({ "rich_text": rich(text), "language": language, "caption": [] }),
        )
    }

    /// A quote.
    pub fn quote(text: &str) -> Self {
        Self::text("quote", text)
    }

    /// A callout with an emoji icon.
    pub fn callout(emoji: &str, text: &str) -> Self {
        Self::new(
            "callout",
            json!({ "rich_text": rich(text), "icon": { "type": "emoji", "emoji": emoji }, "color": "gray_background" }),
        )
    }

    /// A toggle holding `children`.
    pub fn toggle(text: &str, children: Vec<NotionBlock>) -> Self {
        Self::text("toggle", text).with_children(children)
    }

    /// A table; the first row is the header.
    pub fn table(rows: &[&[&str]]) -> Self {
        let width = rows.first().map_or(0, |r| r.len());
        Self::new(
            "table",
            json!({ "table_width": width, "has_column_header": true, "has_row_header": false }),
        )
        .with_children(
            rows.iter()
                .map(|r| {
                    NotionBlock::new(
                        "table_row",
                        json!({ "cells": r.iter().map(|c| rich(c)).collect::<Vec<_>>() }),
                    )
                })
                .collect(),
        )
    }

    /// A divider.
    pub fn divider() -> Self {
        Self::new("divider", json!({}))
    }

    /// This block with `children` nested in it.
    pub fn with_children(mut self, children: Vec<NotionBlock>) -> Self {
        self.children = children;
        self
    }
}

#[derive(Debug, Clone)]
struct StoredBlock {
    kind: String,
    body: Value,
    children: Vec<String>,
    parent: Value,
    edited: String,
}

#[derive(Debug, Clone)]
struct Page {
    parent: Value,
    title: String,
    properties: Vec<(String, Value)>,
    blocks: Vec<String>,
    created: String,
    edited: String,
    archived: bool,
}

#[derive(Debug)]
struct Shared {
    token: String,
    pages: BTreeMap<String, Page>,
    databases: BTreeMap<String, String>,
    blocks: HashMap<String, StoredBlock>,
    next_id: u64,
    clock: u64,
    real_clock: bool,
    page_size: usize,
    /// Per coming request: `Some(value)` answers 429 with `Retry-After: value`.
    throttle: VecDeque<Option<String>>,
    /// Routes whose requests fail with 500: (requests let through first, failures).
    failing: HashMap<String, (usize, usize)>,
    requests: crate::requests::RequestLog,
}

/// The running stand-in; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct NotionServer {
    /// The API's base URL: `http://127.0.0.1:PORT` (`/v1/...`).
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "object": "error", "status": status.as_u16(), "code": code, "message": message, "request_id": "00000000-0000-4000-8000-000000000000" })),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "object_not_found",
        &format!(
            "Could not find block with ID: {id}. Make sure the relevant pages and databases are shared with your integration."
        ),
    )
}

impl Shared {
    fn id(&mut self) -> String {
        self.next_id += 1;
        let n = self.next_id;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            0x1a2b_0000u64 + n,
            n & 0xffff,
            n & 0xfff,
            (n * 7) & 0xfff,
            n * 104_729
        )
    }

    /// The time of an edit, rounded down to the minute as Notion rounds it.
    fn tick(&mut self) -> String {
        let secs = if self.real_clock {
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        } else {
            self.clock += 1;
            1_780_000_000 + self.clock * 60
        };
        let t = std::time::UNIX_EPOCH + Duration::from_secs(secs / 60 * 60);
        humantime::format_rfc3339_millis(t).to_string()
    }

    fn store_blocks(&mut self, parent: Value, blocks: &[NotionBlock], edited: &str) -> Vec<String> {
        blocks
            .iter()
            .map(|b| {
                let id = self.id();
                let children = self.store_blocks(
                    json!({ "type": "block_id", "block_id": id }),
                    &b.children,
                    edited,
                );
                self.blocks.insert(
                    id.clone(),
                    StoredBlock {
                        kind: b.kind.clone(),
                        body: b.body.clone(),
                        children,
                        parent: parent.clone(),
                        edited: edited.to_string(),
                    },
                );
                id
            })
            .collect()
    }

    fn page_json(&self, id: &str, p: &Page) -> Value {
        let mut properties = Map::new();
        let in_database = p.parent["type"] == "database_id";
        properties.insert(
            if in_database { "Name" } else { "title" }.into(),
            json!({ "id": "title", "type": "title", "title": rich(&p.title) }),
        );
        for (name, value) in &p.properties {
            let mut value = value.clone();
            value["id"] = format!("{:x}", name.len() * 31).into();
            properties.insert(name.clone(), value);
        }
        let slug: String = p
            .title
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        json!({
            "object": "page", "id": id,
            "created_time": p.created, "last_edited_time": p.edited,
            "created_by": { "object": "user", "id": USER }, "last_edited_by": { "object": "user", "id": USER },
            "cover": null, "icon": null, "parent": p.parent,
            "archived": p.archived, "in_trash": p.archived,
            "properties": properties,
            "url": format!("https://www.notion.so/{slug}-{}", id.replace('-', "")),
            "public_url": null,
        })
    }

    fn block_json(&self, id: &str, b: &StoredBlock) -> Value {
        let has_children = match b.kind.as_str() {
            "child_page" => self.pages.get(id).is_some_and(|p| !p.blocks.is_empty()),
            "child_database" => true,
            _ => !b.children.is_empty(),
        };
        json!({
            "object": "block", "id": id, "parent": b.parent,
            "created_time": b.edited, "last_edited_time": b.edited,
            "created_by": { "object": "user", "id": USER }, "last_edited_by": { "object": "user", "id": USER },
            "has_children": has_children, "archived": false, "in_trash": false,
            "type": b.kind, b.kind.clone(): b.body,
        })
    }

    fn touch(&mut self, page: &str) {
        let edited = self.tick();
        if let Some(p) = self.pages.get_mut(page) {
            p.edited = edited;
        }
    }
}

/// One page of `items` from `start_cursor` (the id of the first item to send).
fn paged(
    items: Vec<(String, Value)>,
    cursor: Option<&str>,
    size: usize,
    kind: &str,
) -> Result<Value, Box<Response>> {
    let start = match cursor {
        Some(c) => items.iter().position(|(id, _)| id == c).ok_or_else(|| {
            Box::new(error(StatusCode::BAD_REQUEST, "validation_error", &format!("body failed validation: start_cursor should be a valid cursor, instead was `\"{c}\"`.")))
        })?,
        None => 0,
    };
    let end = (start + size).min(items.len());
    let next = items.get(end).map(|(id, _)| id.clone());
    let results: Vec<Value> = items[start..end].iter().map(|(_, v)| v.clone()).collect();
    Ok(
        json!({ "object": "list", "results": results, "next_cursor": next, "has_more": next.is_some(), "type": kind, kind: {} }),
    )
}

impl NotionServer {
    /// Start on a free port of 127.0.0.1, accepting the integration token `token`.
    pub async fn start(token: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            token: token.to_string(),
            pages: BTreeMap::new(),
            databases: BTreeMap::new(),
            blocks: HashMap::new(),
            next_id: 0,
            clock: 0,
            real_clock: false,
            page_size: 100,
            throttle: VecDeque::new(),
            failing: HashMap::new(),
            requests: Default::default(),
        }));
        let app = axum::Router::new()
            .route("/v1/search", post(search))
            .route("/v1/databases/{id}/query", post(query_database))
            .route("/v1/pages/{id}", get(retrieve_page))
            .route("/v1/blocks/{id}/children", get(block_children))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self {
            url: format!("http://{addr}"),
            shared,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("notion")
    }

    fn insert_page(
        &self,
        parent: Value,
        title: &str,
        properties: Vec<(String, Value)>,
        blocks: &[NotionBlock],
    ) -> String {
        let mut s = self.lock();
        let id = s.id();
        let edited = s.tick();
        let stored = s.store_blocks(json!({ "type": "page_id", "page_id": id }), blocks, &edited);
        s.pages.insert(
            id.clone(),
            Page {
                parent: parent.clone(),
                title: title.to_string(),
                properties,
                blocks: stored,
                created: edited.clone(),
                edited: edited.clone(),
                archived: false,
            },
        );
        if let Some(parent_page) = parent["page_id"].as_str().map(str::to_string) {
            s.blocks.insert(
                id.clone(),
                StoredBlock {
                    kind: "child_page".into(),
                    body: json!({ "title": title }),
                    children: Vec::new(),
                    parent: parent.clone(),
                    edited,
                },
            );
            if let Some(p) = s.pages.get_mut(&parent_page) {
                p.blocks.push(id.clone());
            }
            s.touch(&parent_page);
        }
        id
    }

    /// A top-level page (shared with the integration).
    pub fn add_page(&self, title: &str, blocks: &[NotionBlock]) -> String {
        self.insert_page(
            json!({ "type": "workspace", "workspace": true }),
            title,
            Vec::new(),
            blocks,
        )
    }

    /// A page inside page `parent` (a `child_page` block is added to it).
    pub fn add_child_page(&self, parent: &str, title: &str, blocks: &[NotionBlock]) -> String {
        self.insert_page(
            json!({ "type": "page_id", "page_id": parent }),
            title,
            Vec::new(),
            blocks,
        )
    }

    /// A database: top-level, or inside page `parent` (as a `child_database` block).
    pub fn add_database(&self, parent: Option<&str>, title: &str) -> String {
        let mut s = self.lock();
        let id = s.id();
        s.databases.insert(id.clone(), title.to_string());
        if let Some(page) = parent {
            let edited = s.tick();
            s.blocks.insert(
                id.clone(),
                StoredBlock {
                    kind: "child_database".into(),
                    body: json!({ "title": title }),
                    children: Vec::new(),
                    parent: json!({ "type": "page_id", "page_id": page }),
                    edited,
                },
            );
            if let Some(p) = s.pages.get_mut(page) {
                p.blocks.push(id.clone());
            }
            s.touch(page);
        }
        id
    }

    /// A database row with typed properties (`("Status", json!({"type": "select", "select":
    /// {"name": "Done"}}))`) and a body.
    pub fn add_row(
        &self,
        database: &str,
        title: &str,
        properties: Vec<(&str, Value)>,
        blocks: &[NotionBlock],
    ) -> String {
        let properties = properties
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        self.insert_page(
            json!({ "type": "database_id", "database_id": database }),
            title,
            properties,
            blocks,
        )
    }

    /// Replace a page's content.
    pub fn set_blocks(&self, page: &str, blocks: &[NotionBlock]) {
        let mut s = self.lock();
        let edited = s.tick();
        let children: Vec<String> = s.pages[page]
            .blocks
            .iter()
            .filter(|b| {
                s.blocks
                    .get(*b)
                    .is_some_and(|b| b.kind.starts_with("child_"))
            })
            .cloned()
            .collect();
        let mut stored = s.store_blocks(
            json!({ "type": "page_id", "page_id": page }),
            blocks,
            &edited,
        );
        stored.extend(children);
        let p = s.pages.get_mut(page).expect("page");
        p.blocks = stored;
        p.edited = edited;
    }

    /// Rename a page.
    pub fn set_title(&self, page: &str, title: &str) {
        let mut s = self.lock();
        s.pages.get_mut(page).expect("page").title = title.to_string();
        if let Some(b) = s.blocks.get_mut(page) {
            b.body = json!({ "title": title });
        }
        s.touch(page);
    }

    /// Move a page to the trash (archived).
    pub fn archive(&self, page: &str) {
        let mut s = self.lock();
        s.pages.get_mut(page).expect("page").archived = true;
        s.touch(page);
    }

    /// The page is no longer shared with the integration: 404 everywhere.
    pub fn unshare(&self, page: &str) {
        let mut s = self.lock();
        s.pages.remove(page);
        s.blocks.remove(page);
    }

    /// From now on, edits are stamped with the real time (rounded down to the minute), so a
    /// page can be edited twice within one `last_edited_time`.
    pub fn stamp_real_time(&self) {
        self.lock().real_clock = true;
    }

    /// Largest page the server sends (default 100, Notion's largest).
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.clamp(1, 100);
    }

    /// The next `n` requests get 429 `rate_limited` with `Retry-After: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        self.throttle_saying(n, &secs.to_string());
    }

    /// The next `n` requests get 429 with `Retry-After: value`, whatever it says (`1e300`,
    /// `NaN`, a date): what a misbehaving provider or a proxy might send.
    pub fn throttle_saying(&self, n: usize, value: &str) {
        self.lock()
            .throttle
            .extend(std::iter::repeat_n(Some(value.to_string()), n));
    }

    /// Let the next `pass` requests through, then answer `n` with 429 and
    /// `Retry-After: secs`.
    pub fn throttle_after(&self, pass: usize, n: usize, secs: u64) {
        let mut s = self.lock();
        s.throttle.extend(std::iter::repeat_n(None, pass));
        s.throttle
            .extend(std::iter::repeat_n(Some(secs.to_string()), n));
    }

    /// Forget throttling still to come.
    pub fn clear_throttle(&self) {
        self.lock().throttle.clear();
    }

    /// The next `n` requests of `route` (as in [`NotionServer::counts`]) answer 500.
    pub fn fail(&self, route: &str, n: usize) {
        self.fail_after(route, 0, n);
    }

    /// Let `pass` requests of `route` through, then answer the next `n` with 500.
    pub fn fail_after(&self, route: &str, pass: usize, n: usize) {
        self.lock().failing.insert(route.to_string(), (pass, n));
    }

    /// Requests per route: `search`, `databases.query`, `pages.retrieve`,
    /// `blocks.children.list`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.lock().requests.counts()
    }

    /// Requests of one route.
    pub fn count(&self, route: &str) -> usize {
        self.lock().requests.count(route)
    }

    /// Every request so far.
    pub fn total_requests(&self) -> usize {
        self.lock().requests.total()
    }

    /// When each request arrived.
    pub fn request_times(&self) -> Vec<Instant> {
        self.lock().requests.times()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

fn admit(s: &mut Shared, route: &str, headers: &HeaderMap) -> Option<Response> {
    s.requests.record(route);
    if let Some(Some(secs)) = s.throttle.pop_front() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
        );
        r.headers_mut()
            .insert("Retry-After", secs.parse().expect("header"));
        return Some(r);
    }
    if let Some((pass, n)) = s.failing.get_mut(route)
        && *n > 0
    {
        if *pass > 0 {
            *pass -= 1;
        } else {
            *n -= 1;
            return Some(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Unexpected error occurred.",
            ));
        }
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(s.token.as_str()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "API token is invalid.",
        ));
    }
    match headers.get("notion-version").and_then(|v| v.to_str().ok()) {
        Some("2022-06-28") => None,
        Some(other) => Some(error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            &format!("This stand-in speaks Notion-Version 2022-06-28, not {other}."),
        )),
        None => Some(error(
            StatusCode::BAD_REQUEST,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
        )),
    }
}

/// `page_size` from a body or query (at most 100, as Notion validates).
fn page_size(s: &Shared, asked: Option<u64>) -> Result<usize, Box<Response>> {
    match asked {
        Some(n) if !(1..=100).contains(&n) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            &format!(
                "body failed validation: body.page_size should be ≤ `100`, instead was `{n}`."
            ),
        ))),
        Some(n) => Ok((n as usize).min(s.page_size)),
        None => Ok(s.page_size),
    }
}

async fn search(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = shared.lock().expect("notion");
    if let Some(r) = admit(&mut s, "search", &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let size = match page_size(&s, body["page_size"].as_u64()) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let only_pages = body["filter"]["property"] == "object" && body["filter"]["value"] == "page";
    let mut items: Vec<(String, Value)> = s
        .pages
        .iter()
        .filter(|(_, p)| !p.archived)
        .map(|(id, p)| (id.clone(), s.page_json(id, p)))
        .collect();
    if !only_pages {
        items.extend(s.databases.iter().map(|(id, title)| {
            (
                id.clone(),
                json!({ "object": "database", "id": id, "title": rich(title), "archived": false }),
            )
        }));
    }
    match paged(
        items,
        body["start_cursor"].as_str(),
        size,
        "page_or_database",
    ) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => *r,
    }
}

async fn query_database(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = shared.lock().expect("notion");
    if let Some(r) = admit(&mut s, "databases.query", &headers) {
        return r;
    }
    if !s.databases.contains_key(&id) {
        return error(
            StatusCode::NOT_FOUND,
            "object_not_found",
            &format!(
                "Could not find database with ID: {id}. Make sure the relevant pages and databases are shared with your integration."
            ),
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let size = match page_size(&s, body["page_size"].as_u64()) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let items: Vec<(String, Value)> = s
        .pages
        .iter()
        .filter(|(_, p)| !p.archived && p.parent["database_id"] == id.as_str())
        .map(|(pid, p)| (pid.clone(), s.page_json(pid, p)))
        .collect();
    match paged(
        items,
        body["start_cursor"].as_str(),
        size,
        "page_or_database",
    ) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => *r,
    }
}

async fn retrieve_page(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("notion");
    if let Some(r) = admit(&mut s, "pages.retrieve", &headers) {
        return r;
    }
    match s.pages.get(&id) {
        Some(p) => axum::Json(s.page_json(&id, p)).into_response(),
        None => not_found(&id),
    }
}

async fn block_children(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("notion");
    if let Some(r) = admit(&mut s, "blocks.children.list", &headers) {
        return r;
    }
    let size = match page_size(&s, query.get("page_size").and_then(|n| n.parse().ok())) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let children = match (s.pages.get(&id), s.blocks.get(&id)) {
        (Some(p), _) => p.blocks.clone(),
        (None, Some(b)) => b.children.clone(),
        (None, None) => return not_found(&id),
    };
    let items: Vec<(String, Value)> = children
        .iter()
        .filter_map(|c| Some((c.clone(), s.block_json(c, s.blocks.get(c)?))))
        // A child page that is gone (unshared) is gone from its parent too.
        .filter(|(c, v)| v["type"] != "child_page" || s.pages.contains_key(c))
        .collect();
    match paged(
        items,
        query.get("start_cursor").map(String::as_str),
        size,
        "block",
    ) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => *r,
    }
}
