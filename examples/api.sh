#!/usr/bin/env bash
# The common flows of lancesync's REST API with curl: health, add a folder source, scan it,
# search, status, list documents, remove the source. Like the seeds' troubleshooting
# commands; kept working by bins/sync-server/tests/server.rs.
#
# Usage: LANCESYNC_URL=http://127.0.0.1:8000 LANCESYNC_TOKEN=<admin token> \
#        bash examples/api.sh /path/to/folder "a query"
# (LANCESYNC_TOKEN may be empty when the server runs without tokens on 127.0.0.1.)
set -euo pipefail

url="${LANCESYNC_URL:-http://127.0.0.1:8000}"
folder="${1:?usage: bash examples/api.sh FOLDER [QUERY]}"
query="${2:-tomatoes}"
user="${LANCESYNC_USER:-default}"
headers=(-H 'Content-Type: application/json')
if [ -n "${LANCESYNC_TOKEN:-}" ]; then
    headers+=(-H "Authorization: Bearer ${LANCESYNC_TOKEN}")
fi

# One request: print the JSON answer; fail (with the server's JSON error) on a 4xx/5xx.
api() {
    curl --silent --show-error --fail-with-body "${headers[@]}" "$@"
    echo
}

echo "# health"
api "$url/health"

echo "# add a folder source for user $user"
api -X POST "$url/api/v1/sources" \
    -d "{\"user_id\": \"$user\", \"source_id\": \"example-docs\", \"config\": {\"watch_paths\": [\"$folder\"]}}"

echo "# scan it now (waits up to 60 s; a longer scan answers 202 with a job to poll)"
api -X POST "$url/api/v1/sources/local_filesystem/example-docs/scan?user_id=$user&wait=60"

echo "# search"
api -X POST "$url/api/v1/search" -d "{\"user_id\": \"$user\", \"query\": \"$query\", \"limit\": 3}"

echo "# sync status"
api "$url/api/v1/sync/status?user_id=$user"

echo "# documents"
api "$url/api/v1/documents?user_id=$user&limit=5"

echo "# remove the source (and its documents)"
api -X DELETE "$url/api/v1/sources/local_filesystem/example-docs?user_id=$user"
