//! The behaviour every [`DocumentSource`] must show, as one suite each source runs against its
//! own store (a folder, a bucket on a local S3 server, an API stand-in): implement [`Fixture`]
//! and call [`run_all`].
//!
//! What it holds a source to: a listing names every document, with its size, and a version or
//! content hash where the source has them; `read` returns exactly the listed bytes; a folder it
//! cannot see is never an empty listing (an error, or the folder marked `unlisted`); a failed
//! page is an error; a cursor round trip yields exactly the changes made; a moved document
//! keeps its content; refused credentials, rate limits and oversized documents map to their
//! error kinds.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use lancesync_sources::{ChangeKind, Changes, DocumentSource, Error, Listing, SourceEntry};

/// One source type's store and the sources over it.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The name the suite's failures give (`local_filesystem`, `s3`, ...).
    fn name(&self) -> &'static str;

    /// A source over everything the suite stores.
    fn source(&self) -> Box<dyn DocumentSource>;

    /// Create or replace the document called `name` (a file name such as `a.md`) with `text`.
    async fn put(&self, name: &str, text: &str);

    /// Remove the document called `name`.
    async fn remove(&self, name: &str);

    /// Rename `from` to `to`, keeping its content; `false` when the source has no renames.
    async fn rename(&self, from: &str, to: &str) -> bool;

    /// The document name a listed uri stands for (`None`: not one of the suite's).
    fn document_name(&self, entry: &SourceEntry) -> Option<String> {
        entry.uri.rsplit(['/', '\\']).next().map(str::to_string)
    }

    /// Whether `read` gives the stored bytes as they are (`false` for a source that renders
    /// documents, as Notion's does: then the text must appear in what is read).
    fn reads_stored_bytes(&self) -> bool {
        true
    }

    /// A source that also covers a folder (or page) it cannot see.
    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource>;

    /// Make every listing request fail with a server error (`failing`), or none again;
    /// `false` when the store cannot fail (a local folder).
    async fn fail_listings(&self, failing: bool) -> bool;

    /// A source whose credentials the service refuses; `None` for a source without
    /// credentials (a local folder).
    fn refused_source(&self) -> Option<Box<dyn DocumentSource>>;

    /// Answer the next `n` requests with the service's "slow down" (429, or S3's 503
    /// SlowDown) and a short `Retry-After`; a no-op for a local folder.
    async fn throttle(&self, n: usize);

    /// A source that reads documents of at most `bytes` bytes; `None` for a source with no
    /// size limit.
    fn source_with_limit(&self, bytes: u64) -> Option<Box<dyn DocumentSource>>;
}

/// Every check, in turn, on a store that starts empty. Each leaves what it made behind it
/// removed again, so the next starts from an empty store too.
pub async fn run_all(fixture: &dyn Fixture) {
    listings_name_every_document_and_reads_return_its_bytes(fixture).await;
    a_cursor_round_trip_yields_exactly_the_changes_made(fixture).await;
    a_moved_document_keeps_its_content(fixture).await;
    an_unseen_folder_is_never_an_empty_listing(fixture).await;
    a_failed_listing_is_an_error(fixture).await;
    refused_credentials_are_an_auth_error(fixture).await;
    rate_limits_are_waited_out(fixture).await;
    oversized_documents_are_refused_as_too_large(fixture).await;
}

/// The suite's documents in a listing, by name.
fn by_name<'a>(
    fixture: &dyn Fixture,
    entries: &'a [SourceEntry],
) -> BTreeMap<String, &'a SourceEntry> {
    entries
        .iter()
        .filter_map(|e| fixture.document_name(e).map(|n| (n, e)))
        .collect()
}

async fn listing(fixture: &dyn Fixture, source: &dyn DocumentSource) -> Listing {
    source
        .list()
        .await
        .unwrap_or_else(|e| panic!("{}: the listing failed: {e}", fixture.name()))
}

/// A listing names every document with its size, and a version or content hash where the
/// source has them; `read` returns exactly the listed bytes.
pub async fn listings_name_every_document_and_reads_return_its_bytes(fixture: &dyn Fixture) {
    let name = fixture.name();
    let documents = [
        ("alpha.md", "# Alpha\n\nThe first document of the suite.\n"),
        ("beta.txt", "Beta: plain text, a line of it.\n"),
        ("gamma.md", "# Gamma\n\nÜnïcødé text survives the trip.\n"),
    ];
    for (doc, text) in documents {
        fixture.put(doc, text).await;
    }
    let source = fixture.source();
    let listed = listing(fixture, source.as_ref()).await;
    let found = by_name(fixture, &listed.entries);
    assert_eq!(
        found.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        documents.iter().map(|(d, _)| *d).collect(),
        "{name}: the listing names every document, once"
    );
    assert!(listed.issues.is_empty(), "{name}: {:?}", listed.issues);
    for (doc, text) in documents {
        let entry = found[doc];
        let bytes = source
            .read(entry)
            .await
            .unwrap_or_else(|e| panic!("{name}: reading {doc} failed: {e}"));
        if fixture.reads_stored_bytes() {
            assert_eq!(bytes, text.as_bytes(), "{name}: {doc} reads as stored");
            assert_eq!(entry.size, text.len() as u64, "{name}: {doc}'s listed size");
        } else {
            let read = String::from_utf8_lossy(&bytes);
            let body = text.lines().last().expect("a line");
            assert!(read.contains(body), "{name}: {doc} reads as {read:?}");
        }
        assert!(
            entry.version.is_some() || entry.content_hash.is_some() || entry.modified_ms > 0,
            "{name}: {doc} has a version, a content hash or a modification time"
        );
    }
    // Listing again without a change gives the same versions and hashes.
    let again = listing(fixture, source.as_ref()).await;
    for (doc, entry) in by_name(fixture, &again.entries) {
        let first = found[doc.as_str()];
        assert_eq!(
            (&entry.version, &entry.content_hash, entry.size),
            (&first.version, &first.content_hash, first.size),
            "{name}: {doc} lists the same when unchanged"
        );
    }
    for (doc, _) in documents {
        fixture.remove(doc).await;
    }
}

/// The state a run would see after `changes`, given the `before` listing: names → entries.
fn apply(
    fixture: &dyn Fixture,
    before: &BTreeMap<String, SourceEntry>,
    changes: &Changes,
) -> BTreeMap<String, SourceEntry> {
    match &changes.kind {
        ChangeKind::Full(listing) => by_name(fixture, &listing.entries)
            .into_iter()
            .map(|(n, e)| (n, e.clone()))
            .collect(),
        ChangeKind::Delta {
            entries, deleted, ..
        } => {
            let mut state = before.clone();
            state.retain(|_, e| !deleted.iter().any(|d| lancesync_sources::under(&e.uri, d)));
            for (n, e) in by_name(fixture, entries) {
                state.insert(n, e.clone());
            }
            state
        }
    }
}

/// From a cursor, the changes since it are exactly those made: new, changed and removed
/// documents, and nothing for a source left alone.
pub async fn a_cursor_round_trip_yields_exactly_the_changes_made(fixture: &dyn Fixture) {
    let name = fixture.name();
    fixture.put("keep.md", "# Keep\n\nLeft alone.\n").await;
    fixture
        .put("edit.md", "# Edit\n\nThe first version.\n")
        .await;
    fixture.put("drop.md", "# Drop\n\nSoon removed.\n").await;
    let source = fixture.source();
    let first = source
        .changes(None)
        .await
        .unwrap_or_else(|e| panic!("{name}: changes without a cursor failed: {e}"));
    let ChangeKind::Full(_) = &first.kind else {
        panic!("{name}: without a cursor the answer is a complete listing");
    };
    let before = apply(fixture, &BTreeMap::new(), &first);
    assert_eq!(before.len(), 3, "{name}: {:?}", before.keys());

    // Notion rounds edit times to the minute, so a second edit in the same minute has the
    // same version: the content is what must differ.
    fixture
        .put("edit.md", "# Edit\n\nThe second, longer version.\n")
        .await;
    fixture.remove("drop.md").await;
    fixture
        .put("new.md", "# New\n\nAdded after the cursor.\n")
        .await;
    let second = source
        .changes(first.cursor.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{name}: changes since the cursor failed: {e}"));
    let after = apply(fixture, &before, &second);
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        ["edit.md", "keep.md", "new.md"],
        "{name}: the changes since the cursor"
    );
    assert_eq!(after["keep.md"].size, before["keep.md"].size, "{name}");
    assert_eq!(
        after["keep.md"].version, before["keep.md"].version,
        "{name}"
    );
    let edited = source.read(&after["edit.md"]).await.expect("read");
    assert!(
        String::from_utf8_lossy(&edited).contains("second, longer version"),
        "{name}: the edit is what is read"
    );
    if let ChangeKind::Delta { entries, .. } = &second.kind {
        let named: BTreeSet<String> = by_name(fixture, entries).into_keys().collect();
        assert!(
            !named.contains("keep.md"),
            "{name}: a delta does not report what did not change"
        );
    }

    // Nothing changed since: the state stays as it is.
    let third = source
        .changes(second.cursor.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{name}: changes with nothing to report failed: {e}"));
    let still = apply(fixture, &after, &third);
    assert_eq!(
        still.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{name}: nothing changed"
    );
    for doc in ["keep.md", "edit.md", "new.md"] {
        fixture.remove(doc).await;
    }
}

/// A renamed or moved document keeps its content: the same content hash where the source
/// gives one, the same bytes otherwise, so the engine can carry its chunks over.
pub async fn a_moved_document_keeps_its_content(fixture: &dyn Fixture) {
    let name = fixture.name();
    fixture
        .put("before.md", "# Moving\n\nThe same words after the move.\n")
        .await;
    if !fixture.rename("before.md", "after.md").await {
        fixture.remove("before.md").await;
        return;
    }
    let source = fixture.source();
    // The rename is compared with a listing of the same content under the old name.
    fixture
        .put("twin.md", "# Moving\n\nThe same words after the move.\n")
        .await;
    let listed = listing(fixture, source.as_ref()).await;
    let found = by_name(fixture, &listed.entries);
    assert!(
        !found.contains_key("before.md"),
        "{name}: the old name is gone"
    );
    let (moved, twin) = (found["after.md"], found["twin.md"]);
    assert_eq!(
        moved.content_hash, twin.content_hash,
        "{name}: the same content has the same hash under a new name"
    );
    assert_eq!(
        source.read(moved).await.expect("read"),
        source.read(twin).await.expect("read"),
        "{name}"
    );
    fixture.remove("after.md").await;
    fixture.remove("twin.md").await;
}

/// A folder (or page) the source cannot see is an error or is marked `unlisted`: never an
/// empty listing, which would delete everything that was under it.
pub async fn an_unseen_folder_is_never_an_empty_listing(fixture: &dyn Fixture) {
    let name = fixture.name();
    fixture.put("seen.md", "# Seen\n\nVisible.\n").await;
    let source = fixture.source_with_unseen_folder().await;
    match source.list().await {
        Err(e) => assert!(
            matches!(
                e,
                Error::List { .. } | Error::Auth { .. } | Error::InvalidConfig(_)
            ),
            "{name}: an unseen folder is a listing error, not {e:?}"
        ),
        Ok(listing) => assert!(
            !listing.unlisted.is_empty(),
            "{name}: a listing that could not see a folder marks it unlisted: {listing:?}"
        ),
    }
    fixture.remove("seen.md").await;
}

/// A listing request that fails (after the source's retries) fails the listing: never a
/// partial listing, which would delete what the missing page held.
pub async fn a_failed_listing_is_an_error(fixture: &dyn Fixture) {
    let name = fixture.name();
    for i in 0..3 {
        fixture
            .put(&format!("page-{i}.md"), &format!("# Page {i}\n\nText.\n"))
            .await;
    }
    if fixture.fail_listings(true).await {
        let outcome = fixture.source().list().await;
        fixture.fail_listings(false).await;
        assert!(
            matches!(outcome, Err(Error::List { .. })),
            "{name}: a failed page is a listing error, not {outcome:?}"
        );
        // With the fault gone, the listing is whole.
        let listed = listing(fixture, fixture.source().as_ref()).await;
        assert_eq!(by_name(fixture, &listed.entries).len(), 3, "{name}");
    }
    for i in 0..3 {
        fixture.remove(&format!("page-{i}.md")).await;
    }
}

/// Credentials the service refuses are an [`Error::Auth`] (or a listing error naming the
/// refusal), never an empty listing.
pub async fn refused_credentials_are_an_auth_error(fixture: &dyn Fixture) {
    let name = fixture.name();
    fixture
        .put("secret.md", "# Secret\n\nBehind a key.\n")
        .await;
    let Some(refused) = fixture.refused_source() else {
        fixture.remove("secret.md").await;
        return;
    };
    let outcome = refused.list().await;
    match outcome {
        Err(Error::Auth { .. }) => {}
        Err(Error::List { reason, .. }) => assert!(
            [
                "403",
                "401",
                "denied",
                "refused",
                "credentials",
                "signature",
                "Forbidden",
                "InvalidAccessKeyId"
            ]
            .iter()
            .any(|w| reason.contains(w)),
            "{name}: the listing error names the refusal: {reason}"
        ),
        other => panic!("{name}: refused credentials are an auth error, not {other:?}"),
    }
    fixture.remove("secret.md").await;
}

/// 429s are waited out: the listing and the read succeed.
pub async fn rate_limits_are_waited_out(fixture: &dyn Fixture) {
    let name = fixture.name();
    fixture
        .put("patient.md", "# Patient\n\nWaits its turn.\n")
        .await;
    let source = fixture.source();
    fixture.throttle(2).await;
    let listed = listing(fixture, source.as_ref()).await;
    let found = by_name(fixture, &listed.entries);
    let entry = found
        .get("patient.md")
        .unwrap_or_else(|| panic!("{name}: listed"));
    fixture.throttle(1).await;
    let bytes = source
        .read(entry)
        .await
        .unwrap_or_else(|e| panic!("{name}: a throttled read is retried: {e}"));
    assert!(
        String::from_utf8_lossy(&bytes).contains("Waits its turn"),
        "{name}"
    );
    fixture.remove("patient.md").await;
}

/// A document over the source's size limit is refused as [`Error::TooLarge`] when read.
pub async fn oversized_documents_are_refused_as_too_large(fixture: &dyn Fixture) {
    let name = fixture.name();
    let big = format!("# Big\n\n{}\n", "a long line of words ".repeat(200));
    fixture.put("big.md", &big).await;
    fixture.put("small.md", "# Small\n\nFits.\n").await;
    let Some(source) = fixture.source_with_limit(1000) else {
        fixture.remove("big.md").await;
        fixture.remove("small.md").await;
        return;
    };
    let listed = listing(fixture, source.as_ref()).await;
    let found = by_name(fixture, &listed.entries);
    let small = source.read(found["small.md"]).await;
    assert!(small.is_ok(), "{name}: a small document reads: {small:?}");
    match found.get("big.md") {
        // A source that knows sizes when listing may leave it out, saying why.
        None => assert!(
            listed.issues.iter().any(|i| i.uri.contains("big")),
            "{name}: an oversized document left out of a listing is an issue: {:?}",
            listed.issues
        ),
        Some(big) => {
            let outcome = source.read(big).await;
            assert!(
                matches!(outcome, Err(Error::TooLarge { .. })),
                "{name}: reading an oversized document is TooLarge, not {:?}",
                outcome.map(|b| b.len())
            );
        }
    }
    fixture.remove("big.md").await;
    fixture.remove("small.md").await;
}
