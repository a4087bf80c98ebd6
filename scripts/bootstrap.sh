#!/usr/bin/env bash
# Installs what the project needs on a fresh machine with only Node 20 + npm: system tools (rclone, FUSE,
# bubblewrap) through apt when missing, pnpm through npm, the workspace's dependencies, and a build.
# Sourced by demo.sh and test-all.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

need_apt=()
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
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

log "installing dependencies"
"${PNPM[@]}" install --frozen-lockfile --reporter=append-only >&2
log "building packages"
"${PNPM[@]}" run build >&2
