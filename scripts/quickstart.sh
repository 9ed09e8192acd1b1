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
# Build exactly what `bash scripts/test.sh` builds (every target of the workspace), so both
# commands share one build: a narrower build resolves dependency features differently and
# would compile lancedb a second time.
cargo build --locked -q --workspace --all-targets
cli="$CARGO_TARGET_DIR/debug/sync-cli"
"$cli" sync examples/sample-docs
"$cli" search "keep an index true to edited and renamed files" --limit 3
# Meaning, not words: this shares no word with the bread guide it finds.
"$cli" search "how do I make a loaf with a natural leaven at home" --limit 1
