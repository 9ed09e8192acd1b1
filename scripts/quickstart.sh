#!/usr/bin/env bash
# The main job on the embedded default: sync the sample folder into a local LanceDB index
# (./data/lancedb, the static model distilled from the local embedding model all-MiniLM-L6-v2 on
# first use, nothing to start), then search it.
# Run it again: the second sync reads nothing, because nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
lancesync_setup
lancesync_model_setup
# The workspace's binaries only, not its tests: the dependencies resolve to the same features
# as in `bash scripts/test.sh`'s build (the workspace's Cargo.toml enables what the tests add),
# so both commands share their compiled dependencies and the tests build only their own code.
cargo build --locked -q --workspace --bins
cli="$CARGO_TARGET_DIR/debug/sync-cli"
"$cli" sync examples/sample-docs
"$cli" search "keep an index true to edited and renamed files" --limit 3
# Meaning, not words: this shares no word with the bread guide it finds.
"$cli" search "how do I make a loaf with a natural leaven at home" --limit 1
