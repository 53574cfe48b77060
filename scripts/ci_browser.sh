#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/test_browser.py drives it with Playwright for
# Python at /usr/bin/chromium). `playwright install` is never used: it downloads a browser.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
/usr/bin/chromium --version || true
