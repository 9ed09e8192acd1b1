//! Which configured source a legacy row's `source_uri` is, and whether the content there is
//! still what the original system indexed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lancesync_sources::{DocumentSource, SourceEntry, SourceSpec, under};
use sha2::Digest as _;

use crate::{Error, Result};

/// A user's configured sources, listed once.
pub(crate) struct SourceIndex {
    sources: Vec<Arc<dyn DocumentSource>>,
    /// Normalised uri -> (source, entry).
    entries: HashMap<String, (usize, SourceEntry)>,
    /// (prefix, source) of what each source covers and could list.
    scopes: Vec<(String, usize)>,
    /// Prefixes a source could not list this time: their rows wait for another run.
    unlisted: Vec<(String, usize)>,
}

/// Where a legacy row's document is now.
pub(crate) enum Found<'a> {
    /// Listed by a source.
    Listed(&'a Arc<dyn DocumentSource>, &'a SourceEntry),
    /// Inside a source's scope, but the source no longer has it.
    Gone(&'a Arc<dyn DocumentSource>),
    /// Inside a part of a source that could not be listed now.
    Unlisted(&'a Arc<dyn DocumentSource>),
    /// In no configured source.
    Elsewhere,
}

/// How the original system wrote a location: lancesync's own uris, or `file://` URLs.
pub(crate) fn normalise(uri: &str) -> String {
    let uri = uri.trim();
    match uri.strip_prefix("file://") {
        Some(path) => percent_decode(path),
        None => uri.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

impl SourceIndex {
    /// Build and list every source in `specs`. A listing that fails stops the user's
    /// migration: without it, present documents would look gone.
    pub async fn build(specs: &[SourceSpec], env: &BTreeMap<String, String>) -> Result<Self> {
        let mut index = SourceIndex {
            sources: Vec::new(),
            entries: HashMap::new(),
            scopes: Vec::new(),
            unlisted: Vec::new(),
        };
        for spec in specs {
            let source = spec.build(env)?;
            let listing = source.list().await.map_err(|e| Error::SourceListing {
                source_id: spec.id.clone(),
                detail: e.to_string(),
            })?;
            let i = index.sources.len();
            for scope in source.scopes() {
                index.scopes.push((scope, i));
            }
            for prefix in listing.unlisted {
                index.unlisted.push((prefix, i));
            }
            for entry in listing.entries {
                index
                    .entries
                    .entry(normalise(&entry.uri))
                    .or_insert((i, entry));
            }
            index.sources.push(source);
        }
        Ok(index)
    }

    /// Where the document at legacy `uri` is now.
    pub fn find(&self, uri: &str) -> Found<'_> {
        let uri = normalise(uri);
        if let Some((i, entry)) = self.entries.get(&uri) {
            return Found::Listed(&self.sources[*i], entry);
        }
        if let Some((_, i)) = self.unlisted.iter().find(|(p, _)| under(&uri, p)) {
            return Found::Unlisted(&self.sources[*i]);
        }
        match self.scopes.iter().find(|(p, _)| under(&uri, p)) {
            Some((_, i)) => Found::Gone(&self.sources[*i]),
            None => Found::Elsewhere,
        }
    }
}

/// What comparing a source's content with the original system's checksum found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// The same content: lancesync's checksum of it.
    Unchanged(String),
    /// Different content, or no checksum to compare: the next sync reads it again.
    Changed,
}

/// Whether `checksum` (MD5, SHA-256 or BLAKE3, hex, as versions of the original system
/// wrote) is the checksum of `bytes`; `None` when it is none of those forms.
pub(crate) fn same_content(checksum: &str, bytes: &[u8]) -> Option<bool> {
    let want = checksum.trim().to_ascii_lowercase();
    if !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match want.len() {
        32 => Some(hex(&md5::Md5::digest(bytes)) == want),
        64 => Some(
            hex(&sha2::Sha256::digest(bytes)) == want
                || blake3::hash(bytes).to_hex().as_str() == want,
        ),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare the document at `entry` with the legacy `checksum`, reading it only when the
/// source's own hash cannot decide.
pub(crate) async fn compare(
    source: &Arc<dyn DocumentSource>,
    entry: &SourceEntry,
    checksum: Option<&str>,
) -> Result<Content> {
    let Some(checksum) = checksum.filter(|c| !c.trim().is_empty()) else {
        return Ok(Content::Changed);
    };
    // An S3 ETag of a single-part upload is the content's MD5: no download needed.
    if let Some(hash) = &entry.content_hash
        && hash.trim_matches('"').eq_ignore_ascii_case(checksum.trim())
    {
        return Ok(Content::Unchanged(hash.clone()));
    }
    let bytes = source.read(entry).await.map_err(|e| Error::SourceRead {
        uri: entry.uri.clone(),
        detail: e.to_string(),
    })?;
    Ok(match same_content(checksum, &bytes) {
        Some(true) => Content::Unchanged(
            entry
                .content_hash
                .clone()
                .unwrap_or_else(|| blake3::hash(&bytes).to_hex().to_string()),
        ),
        _ => Content::Changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_of_each_form_are_recognised() {
        let body = b"sourdough starter";
        let md5 = hex(&md5::Md5::digest(body));
        let sha = hex(&sha2::Sha256::digest(body));
        let b3 = blake3::hash(body).to_hex().to_string();
        for sum in [&md5, &sha, &b3, &md5.to_ascii_uppercase()] {
            assert_eq!(same_content(sum, body), Some(true), "{sum}");
            assert_eq!(same_content(sum, b"other"), Some(false), "{sum}");
        }
        assert_eq!(same_content("sample", body), None);
        assert_eq!(same_content("abc123", body), None);
    }

    #[test]
    fn file_urls_are_paths() {
        assert_eq!(
            normalise("file:///home/a/My%20Notes.md"),
            "/home/a/My Notes.md"
        );
        assert_eq!(normalise(" /home/a/b.md "), "/home/a/b.md");
        assert_eq!(normalise("s3://bucket/key"), "s3://bucket/key");
        assert_eq!(normalise("file:///bad%zz"), "/bad%zz");
    }
}
