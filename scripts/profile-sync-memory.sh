#!/usr/bin/env bash
# Profile one cold `sync-cli sync` of a folder: RSS sampled every 0.5 s, beside the engine's
# debug log of each maintenance step (index builds, folds, compaction). Produces the
# "where the peak comes from" figures of docs/benchmarks.md.
#
#   bash scripts/profile-sync-memory.sh FOLDER [OUT_DIR]
#   LANCE_SHUFFLE_BATCH_BYTES=16777216 bash scripts/profile-sync-memory.sh FOLDER   # lance knobs pass through
#   GLIBC_TUNABLES=off bash scripts/profile-sync-memory.sh FOLDER   # glibc's defaults (MALLOC_* pass too)
#
# FOLDER: e.g. the bench's 100,000-doc corpus, /tmp/lancesync-bench/mixed-large (written by
# `cargo bench --bench sync`). Uses the release build of sync-cli.
set -euo pipefail
folder=$(realpath "$1")
out=${2:-/tmp/lancesync-memprof}
bin="${CARGO_TARGET_DIR:-$HOME/.cache/lancesync/target}/release/sync-cli"
[ -x "$bin" ] || { echo "build it first: cargo build --release --locked --workspace --bins" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"
lance_env=()
while IFS= read -r var; do lance_env+=("$var"); done < <(env | grep -E '^(LANCE_|MALLOC_|GLIBC_TUNABLES=)' || true)
env -i HOME="$out" PATH="$PATH" LANCEDB_URI="$out/db" SYNC_STATE_DIR="$out/state" \
    RUST_LOG="warn,lancesync_engine=debug" "${lance_env[@]}" \
    "$bin" sync "$folder" --json > "$out/report.json" 2> "$out/log.txt" &
pid=$!
start=$(date +%s.%N)
peak=0
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$rss" ]; then
        echo "$(echo "$(date +%s.%N) - $start" | bc) $rss" >> "$out/rss.txt"
        [ "$rss" -gt "$peak" ] && peak=$rss
    fi
    sleep 0.5
done
wait "$pid"
echo "peak RSS $((peak / 1024)) MB; samples (seconds, KiB) in $out/rss.txt"
sed 's/\x1b\[[0-9;]*m//g' "$out/log.txt" | grep -E 'built|folded|compacted|sync finished' || true
