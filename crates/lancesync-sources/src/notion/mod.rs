//! The Notion source (`source_type = "notion"`): pages (with their child pages and the rows of
//! databases inside them), databases (every row), or, with neither configured, every page the
//! integration can see (`search`). Pages are rendered to Markdown from their blocks; database
//! properties go into the front matter, which the Markdown reader keeps as metadata.
//!
//! - Auth: an integration token (`api_key`, inline or `env:VAR`), with `Notion-Version` pinned
//!   to 2022-06-28 so the wire format cannot shift under the parser.
//! - Every run lists in full (Notion has no change feed) but cheaply: database rows and search
//!   results come 100 to a request with their `last_edited_time`, which is the version; only
//!   pages edited since the stored one have their blocks fetched. Pages of a page tree cost one
//!   `pages` request each per run; their child lists are kept in the cursor, and re-read only
//!   when the parent was edited.
//! - Notion rounds `last_edited_time` to the minute, so a page edited in the minute it was read
//!   is marked unsettled and read once more on the next run (unchanged text is not re-embedded).
//! - Archived pages, and pages missing from a complete listing, are deletions; a failed
//!   request fails the run, and nothing is deleted.
//! - Pace: 3 requests per second by default (Notion's documented average), and 429s wait for
//!   their `Retry-After`.
//!
//! [`render`] turns blocks into Markdown; [`client`] makes the requests; this file lists.

mod client;
mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Http, HttpSettings};
use crate::{ChangeKind, Changes, DocumentSource, Error, Listing, Result, SecretRef, SourceEntry};

use render::{Below, document, plain, property_text};

const API_URL: &str = "https://api.notion.com";
/// The API version this parser was written against.
pub const NOTION_VERSION: &str = "2022-06-28";
/// Notion's documented average rate for one integration.
const DEFAULT_RATE: f64 = 3.0;
/// Notion's largest page.
const PAGE_SIZE: u32 = 100;
/// A page edited this recently may be edited again within the same rounded minute.
const UNSETTLED: Duration = Duration::from_secs(120);
/// Marks a version that must be read again: followed by the time it was listed, so every run
/// while the page is unsettled, and the first after, sees a new version.
const UNSETTLED_MARK: &str = "~unsettled@";
/// Nesting deeper than this is not followed (Notion allows deep trees; text this deep is rare).
const MAX_DEPTH: usize = 24;

/// Configuration of a Notion source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotionConfig {
    /// The integration token (`secret_...` or `ntn_...`), inline or `env:VAR`.
    pub api_key: SecretRef,
    /// Pages to index, with their child pages (ids or page URLs).
    #[serde(default)]
    pub page_ids: Vec<String>,
    /// Databases whose rows to index (ids or database URLs).
    #[serde(default)]
    pub database_ids: Vec<String>,
    /// Rate limit, timeouts and retries.
    #[serde(default, flatten)]
    pub http: HttpSettings,
    /// The API's base URL (a proxy, or a test's stand-in).
    #[serde(default)]
    pub api_url: Option<String>,
}

impl crate::spec::Settings for NotionConfig {
    fn build(
        &self,
        id: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<std::sync::Arc<dyn DocumentSource>> {
        Ok(std::sync::Arc::new(NotionSource::new(
            id,
            self.clone(),
            env,
        )?))
    }

    fn describe(&self) -> String {
        crate::spec::described_ids(
            "notion",
            [("pages", &self.page_ids), ("databases", &self.database_ids)],
        )
    }

    fn refused_for_untrusted(&self) -> Option<String> {
        self.api_url
            .is_some()
            .then(|| "only the admin may set api_url".into())
    }
}

impl NotionConfig {
    /// Every page the integration can see.
    pub fn with_key(api_key: SecretRef) -> Self {
        Self {
            api_key,
            page_ids: Vec::new(),
            database_ids: Vec::new(),
            http: HttpSettings::default(),
            api_url: None,
        }
    }
}

/// A page as a listing shows it.
#[derive(Debug, Clone)]
struct PageMeta {
    id: String,
    edited: String,
    title: String,
    url: Option<String>,
    properties: Vec<(String, String)>,
    gone: bool,
}

/// What the cursor keeps of a page of a tree: when it was last edited, and what is below it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TreeNode {
    edited: String,
    #[serde(default)]
    pages: Vec<String>,
    #[serde(default)]
    databases: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredCursor {
    scope: String,
    tree: BTreeMap<String, TreeNode>,
}

/// Pages in a Notion workspace.
pub struct NotionSource {
    id: String,
    page_ids: Vec<String>,
    database_ids: Vec<String>,
    api: String,
    token: SecretString,
    http: Http,
    /// Pages listed in this run, by id: read without asking for them again.
    listed: Mutex<HashMap<String, PageMeta>>,
    /// Pages rendered while listing (their blocks were fetched to find child pages), by id,
    /// with the version rendered.
    rendered: Mutex<HashMap<String, (String, String)>>,
}

impl std::fmt::Debug for NotionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotionSource")
            .field("id", &self.id)
            .field("page_ids", &self.page_ids)
            .field("database_ids", &self.database_ids)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// A Notion id in its dashed form, from an id (with or without dashes) or a URL ending in
/// one; `None` when it holds no id.
fn notion_id(given: &str) -> Option<String> {
    let tail = given
        .trim()
        .trim_end_matches('/')
        .rsplit(['/', '-'])
        .next()
        .unwrap_or_default();
    let tail = tail.split(['?', '#']).next().unwrap_or_default();
    let compact: String = if tail.len() == 32 {
        tail.to_string()
    } else {
        given.trim().replace('-', "")
    };
    if compact.len() != 32 || !compact.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = compact.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &c[..8],
        &c[8..12],
        &c[12..16],
        &c[16..20],
        &c[20..]
    ))
}

fn page_meta(page: &Value) -> Option<PageMeta> {
    let id = page["id"].as_str()?.to_string();
    let mut title = String::new();
    let mut properties = Vec::new();
    if let Some(props) = page["properties"].as_object() {
        for (name, p) in props {
            if p["type"] == "title" {
                title = plain(&p["title"]);
            } else if let Some(text) = property_text(p) {
                properties.push((name.clone(), text));
            }
        }
    }
    Some(PageMeta {
        id,
        edited: page["last_edited_time"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        title,
        url: page["url"].as_str().map(str::to_string),
        properties,
        gone: page["archived"] == true || page["in_trash"] == true,
    })
}

/// Whether `edited` is within [`UNSETTLED`] of now.
fn unsettled(edited: &str) -> bool {
    humantime::parse_rfc3339_weak(edited)
        .ok()
        .and_then(|t| {
            SystemTime::now()
                .duration_since(t)
                .ok()
                .or(Some(Duration::ZERO))
        })
        .is_some_and(|age| age < UNSETTLED)
}

impl NotionSource {
    /// A source named `id`; `env` resolves an `env:VAR` key.
    pub fn new(
        id: impl Into<String>,
        config: NotionConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let id = id.into();
        let invalid = |m: String| Error::InvalidConfig(format!("source {id}: {m}"));
        let ids = |given: &[String], what: &str| -> Result<Vec<String>> {
            given
                .iter()
                .map(|g| {
                    notion_id(g).ok_or_else(|| {
                        invalid(format!(
                            "{g:?} is not a Notion {what} id (32 hex digits, or the {what}'s URL)"
                        ))
                    })
                })
                .collect()
        };
        let url = config.api_url.clone().unwrap_or_else(|| API_URL.into());
        url::Url::parse(&url).map_err(|e| invalid(format!("{url:?} is not a URL: {e}")))?;
        Ok(Self {
            page_ids: ids(&config.page_ids, "page")?,
            database_ids: ids(&config.database_ids, "database")?,
            api: url.trim_end_matches('/').to_string(),
            token: config.api_key.resolve("api_key", env)?,
            http: Http::new(&id, "Notion", &config.http, DEFAULT_RATE)?,
            listed: Mutex::new(HashMap::new()),
            rendered: Mutex::new(HashMap::new()),
            id,
        })
    }

    fn scope_key(&self) -> String {
        let pages: BTreeSet<&String> = self.page_ids.iter().collect();
        let dbs: BTreeSet<&String> = self.database_ids.iter().collect();
        serde_json::json!({ "pages": pages, "databases": dbs }).to_string()
    }

    /// The page `id` as Markdown, and what is below it.
    async fn render(&self, meta: &PageMeta) -> Result<(String, Below)> {
        let blocks = self.blocks(&meta.id, 0).await?;
        Ok(document(meta, &blocks))
    }

    /// A page of a tree; `None` when it is gone (archived, or no longer shared).
    async fn tree_page(&self, id: &str, root: bool) -> Result<Option<PageMeta>> {
        let got = self
            .call(
                "pages.retrieve",
                reqwest::Method::GET,
                &format!("/v1/pages/{id}"),
                &[],
                None,
            )
            .await?;
        match got {
            Ok(page) => Ok(page_meta(&page).filter(|m| !m.gone)),
            Err((StatusCode::NOT_FOUND, _)) if !root => Ok(None),
            Err((StatusCode::NOT_FOUND, _)) => Err(self.http.remote(format!(
                "page {id} is not in Notion, or not shared with the integration (add it under the page's Connections); nothing is deleted"
            ))),
            Err(e) => Err(self.refused("pages.retrieve", e)),
        }
    }

    /// Every page in scope, and the page tree as it now stands.
    async fn full(&self, stored: Option<StoredCursor>) -> Result<(Listing, StoredCursor)> {
        let old_tree = stored.map(|c| c.tree).unwrap_or_default();
        let mut pages: Vec<PageMeta> = Vec::new();
        let mut tree: BTreeMap<String, TreeNode> = BTreeMap::new();
        if self.page_ids.is_empty() && self.database_ids.is_empty() {
            self.list_pages(
                "search",
                "/v1/search",
                serde_json::json!({ "filter": { "property": "object", "value": "page" } }),
                &mut pages,
            )
            .await?;
        }
        let mut databases: Vec<String> = self.database_ids.clone();
        let mut queue: Vec<(String, bool)> =
            self.page_ids.iter().map(|p| (p.clone(), true)).collect();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some((id, root)) = queue.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(meta) = self.tree_page(&id, root).await? else {
                continue;
            };
            let node = match old_tree.get(&id) {
                Some(node) if node.edited == meta.edited => node.clone(),
                _ => {
                    let (markdown, below) = self.render(&meta).await?;
                    self.rendered
                        .lock()
                        .expect("rendered")
                        .insert(id.clone(), (meta.edited.clone(), markdown));
                    TreeNode {
                        // An unsettled page's children are looked at again next time.
                        edited: if unsettled(&meta.edited) {
                            String::new()
                        } else {
                            meta.edited.clone()
                        },
                        pages: below.pages,
                        databases: below.databases,
                    }
                }
            };
            queue.extend(node.pages.iter().map(|p| (p.clone(), false)));
            databases.extend(node.databases.iter().cloned());
            tree.insert(id, node);
            pages.push(meta);
        }
        let mut seen_db = BTreeSet::new();
        for database in databases {
            if seen_db.insert(database.clone()) {
                self.query_database(&database, &mut pages).await?;
            }
        }
        let mut listing = Listing::default();
        let mut listed = self.listed.lock().expect("listed");
        let mut uris = BTreeSet::new();
        for meta in pages {
            let uri = format!("notion:{}.md", meta.id);
            if !uris.insert(uri.clone()) {
                continue;
            }
            let version = if unsettled(&meta.edited) {
                let now = SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("{}{UNSETTLED_MARK}{now}", meta.edited)
            } else {
                meta.edited.clone()
            };
            let modified_ms = humantime::parse_rfc3339_weak(&meta.edited)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            listing.entries.push(SourceEntry {
                version: Some(version),
                title: Some(if meta.title.is_empty() {
                    "Untitled".into()
                } else {
                    meta.title.clone()
                }),
                ..SourceEntry::new(uri, 0, modified_ms)
            });
            listed.insert(meta.id.clone(), meta);
        }
        listing.entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        Ok((
            listing,
            StoredCursor {
                scope: self.scope_key(),
                tree,
            },
        ))
    }
}

#[async_trait]
impl DocumentSource for NotionSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn source_type(&self) -> &'static str {
        "notion"
    }

    async fn list(&self) -> Result<Listing> {
        Ok(self.full(None).await?.0)
    }

    async fn changes(&self, cursor: Option<&str>) -> Result<Changes> {
        let stored = cursor
            .and_then(|c| serde_json::from_str::<StoredCursor>(c).ok())
            .filter(|c| c.scope == self.scope_key());
        let (listing, next) = self.full(stored).await?;
        Ok(Changes {
            kind: ChangeKind::Full(listing),
            cursor: Some(serde_json::to_string(&next).expect("a cursor serializes")),
        })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let read_error = |reason: String| Error::Read {
            uri: entry.uri.clone(),
            reason,
        };
        let id = entry
            .uri
            .strip_prefix("notion:")
            .and_then(|rest| rest.strip_suffix(".md"))
            .and_then(notion_id)
            .ok_or_else(|| read_error("not a Notion page".into()))?;
        let version = entry
            .version
            .as_deref()
            .map(|v| v.split(UNSETTLED_MARK).next().unwrap_or(v));
        if let Some((edited, markdown)) = self.rendered.lock().expect("rendered").remove(&id)
            && Some(edited.as_str()) == version
        {
            return Ok(markdown.into_bytes());
        }
        let listed = self.listed.lock().expect("listed").get(&id).cloned();
        let meta = match listed {
            Some(meta) => meta,
            None => self
                .tree_page(&id, false)
                .await
                .map_err(|e| read_error(e.to_string()))?
                .ok_or_else(|| read_error("no longer in Notion".into()))?,
        };
        let (markdown, _) = self.render(&meta).await.map_err(|e| match e {
            e @ Error::Auth { .. } => e,
            e => read_error(e.to_string()),
        })?;
        Ok(markdown.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::render::Block;
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_come_from_ids_and_urls() {
        let dashed = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
        assert_eq!(notion_id(dashed).as_deref(), Some(dashed));
        assert_eq!(
            notion_id("1A2B3C4D5E6F4A8B9C0D1E2F3A4B5C6D").as_deref(),
            Some(dashed)
        );
        assert_eq!(
            notion_id("https://www.notion.so/acme/Roadmap-1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d?pvs=4")
                .as_deref(),
            Some(dashed)
        );
        assert_eq!(notion_id("../../v1/users"), None);
        assert_eq!(notion_id("1a2b"), None);
    }

    fn text(s: &str) -> Value {
        json!([{ "type": "text", "plain_text": s, "annotations": {}, "href": null }])
    }

    fn block(kind: &str, body: Value) -> Block {
        Block {
            value: json!({ "object": "block", "id": "b", "type": kind, kind: body }),
            children: Vec::new(),
        }
    }

    #[test]
    fn blocks_render_as_markdown() {
        let mut toggle = block("toggle", json!({ "rich_text": text("More") }));
        toggle.children = vec![block(
            "paragraph",
            json!({ "rich_text": text("Hidden detail") }),
        )];
        let mut table = block("table", json!({ "table_width": 2 }));
        table.children = vec![
            block("table_row", json!({ "cells": [text("Name"), text("Qty")] })),
            block(
                "table_row",
                json!({ "cells": [text("Flour"), text("500 g")] }),
            ),
        ];
        let blocks = vec![
            block("heading_2", json!({ "rich_text": text("Steps") })),
            block("numbered_list_item", json!({ "rich_text": text("Mix") })),
            block("numbered_list_item", json!({ "rich_text": text("Bake") })),
            block(
                "to_do",
                json!({ "rich_text": text("Buy yeast"), "checked": true }),
            ),
            block(
                "code",
                json!({ "rich_text": text("make bread"), "language": "shell" }),
            ),
            block("quote", json!({ "rich_text": text("Patience") })),
            block(
                "callout",
                json!({ "rich_text": text("Hot oven"), "icon": { "emoji": "🔥" } }),
            ),
            toggle,
            table,
            block("child_page", json!({ "title": "Sub" })),
        ];
        let meta = PageMeta {
            id: "p".into(),
            edited: "2026-05-01T00:00:00.000Z".into(),
            title: "Bread".into(),
            url: None,
            properties: vec![("Status".into(), "Done: \"yes\"".into())],
            gone: false,
        };
        let (md, below) = document(&meta, &blocks);
        for want in [
            "title: \"Bread\"\n",
            "Status: \"Done: \\\"yes\\\"\"\n",
            "# Bread\n",
            "## Steps\n",
            "1. Mix\n2. Bake\n",
            "- [x] Buy yeast\n",
            "```shell\nmake bread\n```",
            "> Patience\n",
            "> 🔥 Hot oven\n",
            "- More\n  Hidden detail\n",
            "| Name | Qty |\n| --- | --- |\n| Flour | 500 g |\n",
        ] {
            assert!(md.contains(want), "{want:?} missing from:\n{md}");
        }
        assert_eq!(below.pages, ["b"]);
    }

    #[test]
    fn properties_read_as_text() {
        assert_eq!(
            property_text(&json!({ "type": "select", "select": { "name": "Done" } })).as_deref(),
            Some("Done")
        );
        assert_eq!(
            property_text(&json!({ "type": "multi_select", "multi_select": [{ "name": "a" }, { "name": "b" }] })).as_deref(),
            Some("a, b")
        );
        assert_eq!(
            property_text(&json!({ "type": "number", "number": 3.5 })).as_deref(),
            Some("3.5")
        );
        assert_eq!(
            property_text(&json!({ "type": "checkbox", "checkbox": false })).as_deref(),
            Some("false")
        );
        assert_eq!(
            property_text(&json!({ "type": "relation", "relation": [] })),
            None
        );
        assert!(unsettled(
            &humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
        ));
        assert!(!unsettled("2026-05-01T00:00:00.000Z"));
    }
}
