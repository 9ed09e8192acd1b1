#!/usr/bin/env bash
# Every test of the workspace: unit, integration, binaries, examples (built) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
lancesync_setup
lancesync_test_setup
cargo test --locked --workspace "$@"
