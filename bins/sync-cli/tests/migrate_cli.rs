//! `sync-cli migrate` on tables written by LanceDB's Python package as the original system
//! wrote them: the dry-run plan, the migration, search over the result, a second run that
//! changes nothing, and the usage errors.
//! Run: cargo test --workspace --test migrate_cli

use std::path::Path;
use std::process::Output;

use lancesync_testkit::cli::succeeded as ok;
use lancesync_testkit::{LegacyTable, legacy_chunk, legacy_document, md5_hex};
use serde_json::Value;

fn run(work: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-cli"), work);
    cmd.args(args).env("EMBEDDING_PROVIDER", "builtin");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("sync-cli runs")
}

#[test]
fn migrate_plans_adopts_and_is_idempotent() {
    if !lancesync_testkit::python_lancedb_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("notes")).unwrap();
    let bread = w.join("notes/bread.md");
    let text = "Sourdough starter needs flour and water, fed daily.\n";
    std::fs::write(&bread, text).unwrap();
    ok(&run(
        w,
        &["sources", "add", "notes", "notes", "--user", "alice"],
        &[],
    ));

    // 1536-d vectors from OpenAI: the built-in embedder's index takes its own.
    let vector = vec![0.1f32; 1536];
    let original = w.join("original");
    lancesync_testkit::write_legacy_tables(
        original.join("users/alice").to_str().unwrap(),
        None,
        &[
            LegacyTable::documents(1536).rows([
                legacy_document(
                    "1",
                    "alice",
                    bread.to_str().unwrap(),
                    &md5_hex(text.as_bytes()),
                    1,
                    &vector,
                ),
                legacy_document(
                    "2",
                    "alice",
                    &w.join("notes/gone.md").to_string_lossy(),
                    "",
                    1,
                    &vector,
                ),
            ]),
            LegacyTable::chunks(1536).rows([
                legacy_chunk("1", "alice", 0, text.trim(), &vector),
                legacy_chunk("2", "alice", 0, "A note deleted since.", &vector),
            ]),
        ],
    );
    let from = original.to_string_lossy().into_owned();

    let out = ok(&run(
        w,
        &["migrate", "--from", &from, "--all-users", "--dry-run"],
        &[],
    ));
    assert!(
        out.contains("Migration plan (dry run: nothing written)"),
        "{out}"
    );
    assert!(out.contains("would adopt 1 unchanged"), "{out}");
    assert!(out.contains("1 embedded again"), "{out}");
    assert!(out.contains("not adopted: 2 ("), "{out}");
    assert!(out.contains("no longer in source \"notes\""), "{out}");
    assert!(
        !w.join("db/users/alice").exists(),
        "a dry run writes nothing"
    );

    // From LEGACY_LANCEDB_URI this time.
    let settings = [("LEGACY_LANCEDB_URI", from.as_str())];
    let out = ok(&run(
        w,
        &["migrate", "--user", "alice", "--json"],
        &settings,
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["layout"], "per_user");
    assert_eq!(report["users"][0]["adopted"], 1, "{report:#}");
    assert_eq!(report["users"][0]["vectors_reembedded"], 1);
    let out = ok(&run(
        w,
        &["search", "sourdough flour", "--user", "alice", "--json"],
        &[],
    ));
    assert!(out.contains("bread.md"), "{out}");

    // The next sync finds nothing to do; a second migration neither.
    let out = ok(&run(w, &["sync", "--user", "alice", "--json"], &[]));
    let sync: Value = serde_json::from_str(&out).unwrap();
    let first = &sync[0];
    assert_eq!(
        (first["unchanged"].as_u64(), first["created"].as_u64()),
        (Some(1), Some(0)),
        "{sync:#}"
    );
    let out = ok(&run(w, &["migrate", "--all-users", "--json"], &settings));
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["users"][0]["already_migrated"], 1, "{again:#}");
    assert_eq!(again["users"][0]["chunks_written"], 0);

    // Usage: a user or --all-users, and somewhere to migrate from.
    let out = run(w, &["migrate", "--from", &from], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(w, &["migrate", "--all-users"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEGACY_LANCEDB_URI"));
}
