#!/usr/bin/env bash
# Make Debian's chromium available for the Playwright tests (report, console). Never fails the build: where it
# cannot be installed, it says why and the browser tests skip with that reason.
set -uo pipefail
chromium="${1:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: $chromium is missing and this is not root with apt-get: the browser tests will skip (install it with: sudo apt-get install chromium)" >&2
  exit 0
fi
echo "installing Debian's chromium for the browser tests (apt-get install chromium)" >&2
log=$(mktemp)
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >"$log" 2>&1; then
  # A fresh machine's package lists may be stale or empty.
  apt-get update -q >>"$log" 2>&1
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >>"$log" 2>&1; then
    echo "note: apt-get install chromium failed (last lines below): the browser tests will skip" >&2
    tail -5 "$log" >&2
  fi
fi
rm -f "$log"
exit 0
