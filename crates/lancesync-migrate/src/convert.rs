//! Converting the original's rows: statuses, chunks in order with their vectors checked,
//! document types and metadata.

use std::collections::BTreeMap;

use crate::legacy::{LegacyChunk, LegacyDoc};

/// Whether a status of the original means the document was indexed (a missing status column
/// means every row was).
pub(crate) fn completed(status: Option<&str>) -> bool {
    match status {
        None => true,
        Some(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "completed" | "complete" | "processed" | "success" | "done" | "indexed"
        ),
    }
}

#[derive(Default)]
pub(crate) struct Dropped {
    pub(crate) without_text: usize,
    pub(crate) other_user: usize,
}

/// A document's chunks in order, one per index (the newest of duplicates), those with text;
/// vectors kept only when allowed and of the index's length.
pub(crate) fn usable_chunks(
    raw: Vec<LegacyChunk>,
    user: &str,
    keep_vectors: bool,
    dim: usize,
) -> (Vec<LegacyChunk>, Dropped) {
    let mut dropped = Dropped::default();
    let mut by_index: BTreeMap<i64, LegacyChunk> = BTreeMap::new();
    let mut position = 0i64;
    for mut c in raw {
        if c.user_id
            .as_deref()
            .is_some_and(|o| !o.is_empty() && o != user)
        {
            dropped.other_user += 1;
            continue;
        }
        if c.chunk_text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            dropped.without_text += 1;
            continue;
        }
        if !keep_vectors
            || c.vector
                .as_ref()
                .is_some_and(|v| v.len() != dim || v.iter().any(|x| !x.is_finite()))
        {
            c.vector = None;
        }
        let index = c.chunk_index.unwrap_or_else(|| {
            position += 1;
            i64::MAX / 2 + position
        });
        match by_index.get(&index) {
            Some(kept) if kept.created_at >= c.created_at => {}
            _ => {
                by_index.insert(index, c);
            }
        }
    }
    (by_index.into_values().collect(), dropped)
}

/// `doc_type` as lancesync names it: the original's (`pdf`, `.pdf`, `application/pdf`), else
/// the uri's extension.
pub(crate) fn doc_type(original: Option<&str>, uri: &str) -> String {
    let from_original = original
        .map(|t| t.trim().trim_start_matches('.').to_ascii_lowercase())
        .map(|t| t.rsplit('/').next().unwrap_or(&t).to_string())
        .filter(|t| !t.is_empty());
    from_original.unwrap_or_else(|| {
        let name = uri.rsplit('/').next().unwrap_or(uri);
        name.rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_else(|| "txt".into())
    })
}

/// The original chunk metadata when it is JSON, else the text kept under `original`.
pub(crate) fn json_text(value: Option<&str>) -> String {
    match value {
        None => "{}".into(),
        Some(v) if serde_json::from_str::<serde_json::Value>(v).is_ok() => v.to_string(),
        Some(v) => serde_json::json!({ "original": v }).to_string(),
    }
}

/// The original document metadata plus where it was migrated from.
pub(crate) fn doc_metadata(doc: &LegacyDoc, location: &str) -> String {
    let mut meta = match doc
        .metadata_json
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
    {
        Some(serde_json::Value::Object(map)) => map,
        Some(other) => serde_json::Map::from_iter([("original".to_string(), other)]),
        None => serde_json::Map::new(),
    };
    meta.insert(
        "migrated_from".into(),
        serde_json::json!({
            "database": location,
            "doc_id": doc.doc_id,
            "checksum": doc.checksum,
        }),
    );
    serde_json::Value::Object(meta).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::newest_by;

    fn chunk(
        index: Option<i64>,
        text: &str,
        created: &str,
        vector: Option<Vec<f32>>,
    ) -> LegacyChunk {
        LegacyChunk {
            doc_id: "d".into(),
            user_id: Some("u".into()),
            chunk_index: index,
            chunk_text: Some(text.into()),
            metadata: None,
            created_at: Some(created.into()),
            vector,
        }
    }

    #[test]
    fn chunks_are_ordered_deduplicated_and_vectors_checked() {
        let raw = vec![
            chunk(Some(1), "second", "2024-01-01", Some(vec![1.0, 0.0])),
            chunk(Some(0), "first, old", "2024-01-01", Some(vec![1.0, 0.0])),
            chunk(Some(0), "first, new", "2024-02-01", Some(vec![0.0, 1.0])),
            chunk(Some(2), "   ", "2024-01-01", None),
            chunk(
                Some(3),
                "wrong length",
                "2024-01-01",
                Some(vec![1.0, 0.0, 0.0]),
            ),
            LegacyChunk {
                user_id: Some("someone-else".into()),
                ..chunk(Some(4), "theirs", "2024-01-01", None)
            },
        ];
        let (kept, dropped) = usable_chunks(raw.clone(), "u", true, 2);
        let texts: Vec<_> = kept.iter().map(|c| c.chunk_text.clone().unwrap()).collect();
        assert_eq!(texts, ["first, new", "second", "wrong length"]);
        assert_eq!(kept[0].vector, Some(vec![0.0, 1.0]));
        assert_eq!(
            kept[2].vector, None,
            "a vector of another length is re-embedded"
        );
        assert_eq!((dropped.without_text, dropped.other_user), (1, 1));
        let (kept, _) = usable_chunks(raw, "u", false, 2);
        assert!(kept.iter().all(|c| c.vector.is_none()));
    }

    #[test]
    fn types_statuses_and_metadata() {
        assert_eq!(doc_type(Some("application/pdf"), "x"), "pdf");
        assert_eq!(doc_type(Some(".DOCX"), "x"), "docx");
        assert_eq!(doc_type(None, "/a/b/notes.MD"), "md");
        assert_eq!(doc_type(Some(""), "/a/b/README"), "txt");
        assert!(completed(None) && completed(Some("completed")) && completed(Some("Processed")));
        assert!(!completed(Some("failed")) && !completed(Some("processing")));
        assert_eq!(json_text(Some("{\"page\":2}")), "{\"page\":2}");
        assert_eq!(json_text(Some("page 2")), "{\"original\":\"page 2\"}");
        let doc = LegacyDoc {
            doc_id: "old-1".into(),
            metadata_json: Some("{\"author\":\"Ann\"}".into()),
            ..Default::default()
        };
        let meta: serde_json::Value = serde_json::from_str(&doc_metadata(&doc, "/old")).unwrap();
        assert_eq!(meta["author"], "Ann");
        assert_eq!(meta["migrated_from"]["doc_id"], "old-1");
    }

    #[test]
    fn newest_row_wins() {
        let row = |id: &str, synced: &str, title: &str| LegacyDoc {
            doc_id: id.into(),
            last_synced: Some(synced.into()),
            title: Some(title.into()),
            ..Default::default()
        };
        let (kept, dropped) = newest_by(
            vec![
                row("a", "2024-01-01", "old"),
                row("b", "2024-01-01", "b"),
                row("a", "2024-03-01", "new"),
                row("a", "2024-02-01", "middle"),
            ],
            |d| d.doc_id.clone(),
        );
        assert_eq!(dropped, 2);
        let titles: Vec<_> = kept.iter().map(|d| d.title.clone().unwrap()).collect();
        assert_eq!(titles, ["new", "b"]);
    }
}
