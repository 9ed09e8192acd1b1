//! docs/architecture.md's crate table is the workspace as built: every package is a row, and
//! each row's "depends on" column names exactly the package's normal dependencies on other
//! lancesync packages (as `cargo metadata` reports them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Package name → its lancesync dependencies (without the `lancesync-` prefix; the facade is
/// `lancesync`), from `cargo metadata`.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let members: BTreeSet<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    let short = |name: &str| name.strip_prefix("lancesync-").unwrap_or(name).to_string();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name");
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                // Normal dependencies only: dev- and build-dependencies have "kind" set.
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name"))
                .filter(|d| members.contains(d) && *d != name)
                .map(short)
                .collect();
            (name.to_string(), deps)
        })
        .collect()
}

/// The table's rows: the package named in the first column (`lancesync-x`, `lancesync`
/// (root), `bins/sync-cli`) → the names in its last column.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    let table = doc
        .split("## Crates")
        .nth(1)
        .expect("a Crates section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2);
    table
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
            let package = cells[0]
                .trim_matches('`')
                .split('`')
                .next()
                .expect("a package")
                .trim_start_matches("bins/")
                .to_string();
            let depends = cells.last().expect("a last column");
            let deps = if *depends == "—" {
                BTreeSet::new()
            } else {
                without_parentheses(depends)
                    .split(',')
                    .map(|d| d.trim().to_string())
                    .collect()
            };
            (package, deps)
        })
        .collect()
}

/// `text` without its parenthesised remarks (which may hold commas).
fn without_parentheses(text: &str) -> String {
    let mut depth = 0usize;
    text.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

#[test]
fn the_crate_table_matches_cargo_metadata() {
    let built = workspace_dependencies();
    let documented = documented();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        built.keys().collect::<Vec<_>>(),
        "docs/architecture.md's crate table must have one row per workspace package"
    );
    for (package, deps) in &built {
        assert_eq!(
            &documented[package], deps,
            "docs/architecture.md: the \"depends on\" of {package} must list its lancesync dependencies"
        );
    }
}
