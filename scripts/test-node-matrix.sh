#!/usr/bin/env bash
# The unit tests of every package (vitest.unit.config.ts) on Node 22 and 24, besides the whole suite on Node 20.
# The Node builds come from the npm registry's `node` packages, installed by bootstrap.sh under .node-versions/.
# Writes one vitest JSON report per version (.vitest-results-node<major>.json) for scripts/vitest-totals.mjs,
# and prints a line per version on stderr. RODER_NODE_MATRIX="" skips it; default "22 24".
set -uo pipefail
cd "$(dirname "$0")/.."
versions="${RODER_NODE_MATRIX-22 24}"
status=0
for major in $versions; do
  report=".vitest-results-node${major}.json"
  rm -f "$report"
  bin="$PWD/.node-versions/${major}/node_modules/node/bin"
  if [ ! -x "$bin/node" ]; then
    echo "[node-matrix] Node ${major} is not installed under .node-versions/${major} (bootstrap.sh installs it)" >&2
    status=1
    continue
  fi
  start=$(date +%s)
  PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run --config vitest.unit.config.ts \
    --reporter=default --reporter=json --outputFile.json="$report" >&2 || status=1
  echo "[node-matrix] Node $("$bin/node" --version): unit tests in $(($(date +%s) - start)) s, $(node scripts/vitest-totals.mjs "$report")" >&2
done
exit "$status"
