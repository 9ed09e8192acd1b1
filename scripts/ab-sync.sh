#!/usr/bin/env bash
# Compare two sync-cli binaries on one corpus, alternating, so that both see the same machine
# noise: a cold sync, a no-change rescan, then one file in each of 100 folders changed and a
# rescan. Usage:
#   python3 scripts/ab-corpus.py /tmp/ab/corpus 10000
#   scripts/ab-sync.sh /tmp/ab/corpus 3 /tmp/ab/sync-cli-before /tmp/ab/sync-cli-after
# Each line: binary, seconds for the three steps, documents the last one updated. The corpus is
# changed by the third step (every run appends a line to 100 files). The embedder is the
# built-in one unless AB_EMBEDDER names another (static needs EMBEDDING_MODEL_PATH or the
# model scripts/env.sh installs; HOME is the run's own folder, so give the path).
set -euo pipefail
corpus=$1
repeat=${2:-3}
shift 2
now() { date +%s.%N; }
for r in $(seq 1 "$repeat"); do
    for bin in "$@"; do
        work=$(mktemp -d)
        export HOME=$work LANCEDB_URI=$work/db SYNC_STATE_DIR=$work/state EMBEDDING_PROVIDER=${AB_EMBEDDER:-builtin}
        s=$(now); "$bin" sync "$corpus" --json >/dev/null 2>"$work/err"
        m=$(now); "$bin" sync "$corpus" --json >/dev/null 2>>"$work/err"
        e=$(now)
        for folder in $(find "$corpus" -mindepth 1 -maxdepth 1 -type d | sort | head -100); do
            echo "changed in run $r by $(basename "$bin")" >>"$(find "$folder" -type f | sort | head -1)"
        done
        c=$(now); "$bin" sync "$corpus" --json >"$work/out.json" 2>>"$work/err"
        d=$(now)
        updated=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['updated'])" "$work/out.json")
        echo "$(basename "$bin") cold=$(echo "$m - $s" | bc) rescan=$(echo "$e - $m" | bc) changed_1pct=$(echo "$d - $c" | bc) updated=$updated"
        rm -rf "$work"
    done
done
