#!/usr/bin/env bash
# Runs every test of the monorepo on a fresh clone: bootstraps, builds, runs vitest once over all
# packages (on the Node that runs this script), then every package's unit tests on Node 22 and 24
# (scripts/test-node-matrix.sh), and ends with one line of totals, "N passed, N failed" (summed from
# vitest's JSON reports).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh || { echo "bootstrap failed" >&2; echo "0 passed, 1 failed"; exit 1; }
set +e
rm -f .vitest-results.json
export NODE_OPTIONS="${NODE_OPTIONS:-} --max-old-space-size=8192"
$PNPM_CMD exec vitest run --reporter=default --reporter=json --outputFile.json=.vitest-results.json "$@" >&2
status=$?
# Then the unit tests of every package on Node 22 and 24 (RODER_NODE_MATRIX="" skips them); totals add up.
reports=(.vitest-results.json)
if [ "$#" -eq 0 ]; then
  bash scripts/test-node-matrix.sh || status=1
  for major in ${RODER_NODE_MATRIX-22 24}; do reports+=(".vitest-results-node${major}.json"); done
fi
node scripts/vitest-totals.mjs "${reports[@]}"
totals=$?
[ "$status" -eq 0 ] && [ "$totals" -eq 0 ] && exit 0
exit 1
