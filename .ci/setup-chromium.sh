#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for the browser test of `usvid stream --serve`.
# Optional: tests/streaming/test_browser.py and test_live_page.py skip cleanly when no chromium binary is on PATH.
# Idempotent: does nothing when chromium is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# apt keeps every downloaded .deb in its cache; they are not needed once installed, and CI disks are small.
trap '$SUDO apt-get clean || true' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
chromium --version
