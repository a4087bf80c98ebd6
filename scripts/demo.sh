#!/usr/bin/env bash
# The main job on the embedded default: the local runner, no account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec $PNPM_CMD exec tsx packages/local/examples/demo.ts "$@"
