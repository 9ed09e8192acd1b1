//! Notion blocks and properties as Markdown.

use std::fmt::Write as _;

use serde_json::Value;

use super::PageMeta;

/// Rich text as Markdown: links, bold, italics, strike-through and code kept.
pub(super) fn rich_text(items: &Value) -> String {
    let mut out = String::new();
    for item in items.as_array().into_iter().flatten() {
        let mut text = item["plain_text"].as_str().unwrap_or_default().to_string();
        if text.is_empty() {
            continue;
        }
        let a = &item["annotations"];
        if a["code"] == true {
            text = format!("`{text}`");
        }
        if a["bold"] == true {
            text = format!("**{text}**");
        }
        if a["italic"] == true {
            text = format!("_{text}_");
        }
        if a["strikethrough"] == true {
            text = format!("~~{text}~~");
        }
        if let Some(href) = item["href"].as_str() {
            text = format!("[{text}]({href})");
        }
        out.push_str(&text);
    }
    out
}

pub(super) fn plain(items: &Value) -> String {
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["plain_text"].as_str())
        .collect()
}

/// A database property's value as text; `None` for empty values and kinds without text.
pub(super) fn property_text(p: &Value) -> Option<String> {
    let kind = p["type"].as_str()?;
    let v = &p[kind];
    let text = match kind {
        "title" | "rich_text" => plain(v),
        "number" => v.as_f64().map(|n| n.to_string())?,
        "select" | "status" => v["name"].as_str()?.to_string(),
        "multi_select" => v
            .as_array()?
            .iter()
            .filter_map(|o| o["name"].as_str())
            .collect::<Vec<_>>()
            .join(", "),
        "date" => match (v["start"].as_str(), v["end"].as_str()) {
            (Some(s), Some(e)) => format!("{s} to {e}"),
            (Some(s), None) => s.to_string(),
            _ => return None,
        },
        "checkbox" => v.as_bool()?.to_string(),
        "url" | "email" | "phone_number" | "created_time" | "last_edited_time" => {
            v.as_str()?.to_string()
        }
        "people" => v
            .as_array()?
            .iter()
            .filter_map(|u| u["name"].as_str())
            .collect::<Vec<_>>()
            .join(", "),
        "created_by" | "last_edited_by" => v["name"].as_str()?.to_string(),
        "formula" => {
            let fk = v["type"].as_str()?;
            match &v[fk] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Object(d) => d.get("start")?.as_str()?.to_string(),
                _ => return None,
            }
        }
        "unique_id" => match (v["prefix"].as_str(), v["number"].as_u64()) {
            (Some(p), Some(n)) => format!("{p}-{n}"),
            (None, Some(n)) => n.to_string(),
            _ => return None,
        },
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A block and, for blocks with children, what is under it.
pub(super) struct Block {
    pub(super) value: Value,
    pub(super) children: Vec<Block>,
}

/// What rendering found below a page: child pages and databases (their own documents).
#[derive(Default)]
pub(super) struct Below {
    pub(super) pages: Vec<String>,
    pub(super) databases: Vec<String>,
}

pub(super) fn render_blocks(blocks: &[Block], depth: usize, out: &mut String, below: &mut Below) {
    let indent = "  ".repeat(depth);
    let mut number = 0;
    for (at, block) in blocks.iter().enumerate() {
        let kind = block.value["type"].as_str().unwrap_or_default();
        let v = &block.value[kind];
        let text = rich_text(&v["rich_text"]);
        number = if kind == "numbered_list_item" {
            number + 1
        } else {
            0
        };
        let mut nested = true;
        match kind {
            "paragraph" if !text.is_empty() => {
                let _ = writeln!(out, "{indent}{text}\n");
            }
            "heading_1" | "heading_2" | "heading_3" => {
                let level = &kind[8..];
                let hashes = "#".repeat(level.parse().unwrap_or(1));
                let _ = writeln!(out, "{hashes} {text}\n");
            }
            "bulleted_list_item" | "toggle" => {
                let _ = writeln!(out, "{indent}- {text}");
            }
            "numbered_list_item" => {
                let _ = writeln!(out, "{indent}{number}. {text}");
            }
            "to_do" => {
                let mark = if v["checked"] == true { "x" } else { " " };
                let _ = writeln!(out, "{indent}- [{mark}] {text}");
            }
            "quote" => {
                let _ = writeln!(out, "{indent}> {text}\n");
            }
            "callout" => {
                let icon = v["icon"]["emoji"]
                    .as_str()
                    .map(|e| format!("{e} "))
                    .unwrap_or_default();
                let _ = writeln!(out, "{indent}> {icon}{text}\n");
            }
            "code" => {
                let language = v["language"].as_str().unwrap_or_default();
                let _ = writeln!(out, "```{language}\n{}\n```\n", plain(&v["rich_text"]));
            }
            "equation" => {
                let _ = writeln!(
                    out,
                    "$${}$$\n",
                    v["expression"].as_str().unwrap_or_default()
                );
            }
            "divider" => out.push_str("---\n\n"),
            "table" => {
                for (i, row) in block.children.iter().enumerate() {
                    let cells: Vec<String> = row.value["table_row"]["cells"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| rich_text(c).replace('|', "\\|"))
                        .collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                    if i == 0 {
                        let _ = writeln!(out, "|{}", " --- |".repeat(cells.len()));
                    }
                }
                out.push('\n');
                nested = false;
            }
            "child_page" => {
                if let Some(id) = block.value["id"].as_str() {
                    below.pages.push(id.to_string());
                }
                nested = false;
            }
            "child_database" => {
                if let Some(id) = block.value["id"].as_str() {
                    below.databases.push(id.to_string());
                }
                nested = false;
            }
            "bookmark" | "embed" | "link_preview" => {
                if let Some(url) = v["url"].as_str() {
                    let caption = rich_text(&v["caption"]);
                    let label = if caption.is_empty() {
                        url.to_string()
                    } else {
                        caption
                    };
                    let _ = writeln!(out, "{indent}[{label}]({url})\n");
                }
            }
            "image" | "file" | "pdf" | "video" | "audio" => {
                let caption = rich_text(&v["caption"]);
                if !caption.is_empty() {
                    let _ = writeln!(out, "{indent}{caption}\n");
                }
            }
            _ => {}
        }
        if nested && !block.children.is_empty() {
            // Columns and synced blocks are layout: their content stays at this depth.
            let inner = match kind {
                "column_list" | "column" | "synced_block" | "paragraph" | "heading_1"
                | "heading_2" | "heading_3" => depth,
                _ => depth + 1,
            };
            render_blocks(&block.children, inner, out, below);
        }
        if is_list_item(block) && depth == 0 && !blocks.get(at + 1).is_some_and(is_list_item) {
            out.push('\n');
        }
    }
}

/// Whether a block is an item of a list (so no blank line before the next one).
pub(super) fn is_list_item(block: &Block) -> bool {
    matches!(
        block.value["type"].as_str(),
        Some("bulleted_list_item" | "numbered_list_item" | "to_do" | "toggle")
    )
}

/// A front matter value: one line, quoted as a JSON string.
pub(super) fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The page as a Markdown document: front matter with its title, URL and properties, its
/// title as a heading, then its blocks.
pub(super) fn document(meta: &PageMeta, blocks: &[Block]) -> (String, Below) {
    let mut out = String::from("---\n");
    let _ = writeln!(out, "title: {}", quoted(&meta.title));
    if let Some(url) = &meta.url {
        let _ = writeln!(out, "notion_url: {}", quoted(url));
    }
    for (name, value) in &meta.properties {
        let key: String = name
            .chars()
            .map(|c| if c == ':' || c == '\n' { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "{}: {}", key.trim(), quoted(value));
    }
    out.push_str("---\n");
    if !meta.title.is_empty() {
        let _ = writeln!(out, "# {}\n", meta.title);
    }
    let mut below = Below::default();
    render_blocks(blocks, 0, &mut out, &mut below);
    (out, below)
}
