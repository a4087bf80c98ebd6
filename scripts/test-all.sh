#!/usr/bin/env bash
# Runs every test of the monorepo on a fresh clone: bootstraps, builds, runs vitest once over all
# packages, and ends with one line of totals, "N passed, N failed" (taken from vitest's JSON reporter).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh || { echo "bootstrap failed" >&2; echo "0 passed, 1 failed"; exit 1; }
set +e
rm -f .vitest-results.json
export NODE_OPTIONS="${NODE_OPTIONS:-} --max-old-space-size=8192"
$PNPM_CMD exec vitest run --reporter=default --reporter=json --outputFile.json=.vitest-results.json "$@" >&2
status=$?
node scripts/vitest-totals.mjs .vitest-results.json
totals=$?
[ "$status" -eq 0 ] && [ "$totals" -eq 0 ] && exit 0
exit 1
