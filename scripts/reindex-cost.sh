#!/bin/bash
# What a blue/green re-index costs over building the new tables from nothing (docs/benchmarks.md,
# "Blue/green re-index"): the same corpus synced cold with the built-in embedder and re-indexed
# to the static model, then synced cold with the static model and rebuilt with it, no other load.
#
# Usage: bash scripts/reindex-cost.sh CORPUS OUT
#   CORPUS: a folder of documents, e.g. the 10,000 mixed documents the search bench writes to
#           /tmp/lsb-reindex/indexed (`cargo bench ... --bench search -- --docs 10000 --dir /tmp/lsb-reindex`)
#   OUT:    a scratch folder (emptied)
# Needs the built sync-cli (`cargo build --locked --workspace`) and the model from
# `source scripts/env.sh && lancesync_model_setup`.
set -euo pipefail
CORPUS=$1
OUT=$2
BIN=${CARGO_TARGET_DIR:-$HOME/.cache/lancesync/target}/debug/sync-cli
MODEL=$HOME/.local/share/lancesync/models/all-MiniLM-L6-v2
rm -rf "$OUT"
mkdir -p "$OUT/a" "$OUT/b"
run() {
    (cd "$1" && env -i HOME="$1" PATH="$PATH" EMBEDDING_MODEL_PATH="$MODEL" \
        CHUNK_CHARACTERS=250 CHUNK_OVERLAP=50 EMBEDDING_PROVIDER="$2" "$BIN" "${@:3}")
}
seconds() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    printf '%d.%02d' $(((end - start) / 1000000000)) $(((end - start) / 10000000 % 100))
}
run "$OUT/a" builtin sources add corpus "$CORPUS" >/dev/null
run "$OUT/b" auto sources add corpus "$CORPUS" >/dev/null
echo "cold sync, builtin: $(seconds run "$OUT/a" builtin sync --json) s"
echo "re-index builtin -> static: $(seconds run "$OUT/a" auto reindex --json) s"
echo "cold sync, static: $(seconds run "$OUT/b" auto sync --json) s"
echo "re-index static -> static (a rebuild): $(seconds run "$OUT/b" auto reindex --json) s"
