#!/usr/bin/env bash
# Installs what the project needs on a fresh machine with only Node 20 + npm: system tools (rclone, FUSE,
# bubblewrap, slirp4netns, iproute2) through apt when missing, pnpm through npm, the workspace's dependencies, and a build.
# Sourced by demo.sh and test-all.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

need_apt=()
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || need_apt+=(slirp4netns)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The E2B stand-in's envd does its filesystem work with the system's python3 inside each sandbox.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_apt[*]} with apt"
    $SUDO apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2 ||
      log "apt could not install ${need_apt[*]}: the tests that need them will report it"
  else
    log "no apt-get here: install ${need_apt[*]} yourself for mount and isolation features"
  fi
fi

if command -v pnpm >/dev/null 2>&1 && pnpm --version 2>/dev/null | grep -q '^10\.'; then
  PNPM=(pnpm)
else
  log "installing pnpm 10 with npm"
  if npm install -g pnpm@10.34.9 >&2 2>/dev/null; then PNPM=(pnpm); else PNPM=(npx -y pnpm@10); fi
fi
export PNPM_CMD="${PNPM[*]}"

# Node 22 and 24 for the unit-test matrix (scripts/test-node-matrix.sh), from the npm registry's `node` packages.
for major in ${RODER_NODE_MATRIX-22 24}; do
  if [ ! -x ".node-versions/$major/node_modules/node/bin/node" ]; then
    log "installing Node $major from the npm registry (node@$major)"
    npm install --prefix ".node-versions/$major" --no-audit --no-fund --loglevel=error "node@$major" >&2 ||
      log "could not install Node $major: the matrix run will report it"
  fi
done

log "installing dependencies"
"${PNPM[@]}" install --frozen-lockfile --reporter=append-only >&2
log "building packages"
"${PNPM[@]}" run build >&2
