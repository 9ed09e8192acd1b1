//! Dry runs: they predict what the next run reports, document by document, and write nothing.

use super::*;

/// What a run reports that a dry run must predict.
fn counts(r: &SyncReport) -> [u64; 12] {
    [
        r.created,
        r.updated,
        r.moved,
        r.touched,
        r.deleted,
        r.unchanged,
        r.failed,
        r.waiting_retry,
        r.chunks_written,
        r.repaired,
        r.legacy,
        r.mass_delete_blocked.as_ref().map_or(0, |b| b.would_delete),
    ]
    .map(|n| n as u64)
}

fn dry() -> SyncOptions {
    SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    }
}

/// Everything a dry run could have written: table versions, rows, and the state folder's files.
async fn written(f: &Fixture) -> (u64, u64, Vec<String>, Vec<(String, SystemTime)>) {
    let status = f.engine.status("alice").await.unwrap();
    let (docs, chunks) = status.versions;
    let mut files = Vec::new();
    for entry in walk(&f.db) {
        let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
        files.push((entry.display().to_string(), modified));
    }
    files.sort();
    (docs, chunks, f.uris().await, files)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn ends(uris: &[String]) -> Vec<String> {
    let mut names: Vec<String> = uris
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_dry_run_predicts_the_next_run_exactly_and_writes_nothing() {
    let f = Fixture::new(|_| {});
    f.write("rivers.md", format!("# Rivers\n\n{}", text("rivers", 8)));
    f.write("mountains.txt", text("mountains", 5));
    f.write("page.html", format!("<p>{}</p>", text("oceans", 3)));
    f.write("old.md", text("old things", 2));
    f.write("keep.md", text("kept things", 4));
    f.write("bad.pdf", b"%PDF-1.7 this is not really a pdf");
    let first = f.sync().await;
    assert_eq!((first.created, first.failed), (5, 1), "{first:#?}");
    assert!(
        first.tokens_exact && first.tokens_embedded > 0,
        "{first:#?}"
    );

    // Every kind of change at once.
    f.write(
        "rivers.md",
        format!("# Rivers\n\n{}", text("rivers and lakes", 2)),
    );
    set_mtime(&f.docs.join("mountains.txt"), 60);
    std::fs::rename(f.docs.join("page.html"), f.docs.join("renamed.html")).unwrap();
    std::fs::remove_file(f.docs.join("old.md")).unwrap();
    f.write("new.md", text("new things", 6));
    f.write("new.docx", b"PK not a docx at all");

    let before = written(&f).await;
    let embedded = f.embedded();
    let planned = f.sync_with(dry()).await;
    assert_eq!(written(&f).await, before, "a dry run wrote something");
    assert!(
        f.embedded() - embedded <= 256,
        "a dry run embeds at most its speed sample"
    );
    assert!(planned.dry_run);
    let plan = planned.plan.clone().expect("a dry run has a plan");
    assert_eq!(ends(&plan.created), ["new.md"]);
    assert_eq!(ends(&plan.updated), ["rivers.md"]);
    assert_eq!(ends(&plan.touched), ["mountains.txt"]);
    assert_eq!(ends(&plan.deleted), ["old.md"]);
    assert_eq!(ends(&plan.retried), ["bad.pdf"]);
    assert!(plan.withheld.is_empty() && plan.legacy.is_empty());
    assert_eq!(plan.moved.len(), 1);
    assert!(
        plan.moved[0].from.ends_with("page.html") && plan.moved[0].to.ends_with("renamed.html")
    );
    let failed: Vec<String> = planned.failures.iter().map(|x| x.uri.clone()).collect();
    assert_eq!(ends(&failed), ["bad.pdf", "new.docx"]);
    // The cost: exactly the tokens of the chunks to write, by the embedder's own count, and
    // a speed measured here.
    let cost = &plan.cost;
    assert_eq!(cost.chunks, planned.chunks_written as u64);
    assert_eq!(cost.tokens, planned.tokens_embedded);
    assert!(cost.tokens_exact && cost.tokens > 0);
    assert!(cost.measured_tokens_per_second.is_some_and(|r| r > 0.0));
    assert!(cost.estimated_seconds.is_some_and(|s| s > 0.0));
    assert_eq!(cost.price, None, "no price configured");

    let real = f.sync().await;
    assert_eq!(counts(&planned), counts(&real), "{planned:#?}\n{real:#?}");
    assert_eq!(planned.tokens_embedded, real.tokens_embedded);
    assert_eq!(planned.chunks_saved, real.chunks_saved);
    assert_eq!(planned.tokens_saved, real.tokens_saved);
    assert!(real.chunks_saved > 0 && real.tokens_saved > 0, "{real:#?}");
    assert!(!real.dry_run && real.plan.is_none());
    let real_failed: Vec<String> = real.failures.iter().map(|x| x.uri.clone()).collect();
    assert_eq!(ends(&real_failed), ends(&failed));
    f.assert_consistent().await;

    // Nothing left to do: the plan is empty and every chunk is saved.
    let idle = f.sync_with(dry()).await;
    let plan = idle.plan.as_ref().unwrap();
    assert_eq!(
        (idle.created, idle.updated, idle.deleted, idle.unchanged),
        (0, 0, 0, 5)
    );
    assert_eq!((plan.cost.chunks, plan.cost.tokens), (0, 0));
    let chunks = f.engine.status("alice").await.unwrap().chunks as u64;
    assert_eq!(idle.chunks_saved, chunks);
    assert!(
        idle.tokens_saved > 0,
        "estimated from a sample of the stored chunks"
    );
    assert_eq!(counts(&idle), counts(&f.sync().await));
}

#[tokio::test]
async fn a_dry_run_shows_withheld_deletions_and_the_price() {
    let f = Fixture::new(|c| {
        c.mass_delete.min_documents = 2;
        c.embedding_price_per_million_tokens = Some(0.02);
    });
    for i in 0..4 {
        f.write(&format!("doc{i}.md"), text(&format!("topic {i}"), 3));
    }
    f.sync().await;
    for i in 0..3 {
        std::fs::remove_file(f.docs.join(format!("doc{i}.md"))).unwrap();
    }
    let planned = f.sync_with(dry()).await;
    let plan = planned.plan.as_ref().unwrap();
    assert_eq!(ends(&plan.withheld), ["doc0.md", "doc1.md", "doc2.md"]);
    assert!(plan.deleted.is_empty());
    assert_eq!(
        plan.cost.price,
        Some(0.0),
        "no tokens to embed cost nothing"
    );
    let real = f.sync().await;
    assert_eq!(counts(&planned), counts(&real));
    assert_eq!(f.uris().await.len(), 4, "withheld");

    // Allowed, the same deletions are planned as deletions; a new file has a price.
    f.write("fresh.md", text("fresh", 40));
    let allowed = SyncOptions {
        allow_mass_delete: true,
        ..dry()
    };
    let planned = f.sync_with(allowed).await;
    let plan = planned.plan.as_ref().unwrap();
    assert_eq!(ends(&plan.deleted), ["doc0.md", "doc1.md", "doc2.md"]);
    let price = plan.cost.price.unwrap();
    assert!((price - 0.02 * planned.tokens_embedded as f64 / 1e6).abs() < 1e-12);
    assert!(price > 0.0);
}

#[tokio::test]
async fn a_dry_run_for_a_user_without_tables_creates_nothing() {
    let f = Fixture::new(|_| {});
    f.write("a.md", text("alpha", 3));
    f.write("b.txt", text("beta", 3));
    let planned = f
        .engine
        .sync("bob", &f.source, dry(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((planned.created, planned.unchanged), (2, 0));
    assert_eq!(ends(&planned.plan.unwrap().created), ["a.md", "b.txt"]);
    assert!(!f.engine.user_exists("bob").await.unwrap());
    // Where a real run puts a user's database, nothing appeared for bob.
    f.engine
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(f.db.join("users").join("alice").is_dir());
    assert!(!f.db.join("users").join("bob").exists());
}
