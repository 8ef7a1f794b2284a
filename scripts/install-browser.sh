#!/usr/bin/env bash
# Installs the browser the page tests drive: Debian's chromium, via apt-get, only when it is missing.
# Playwright's own browser download is never used: it reaches hosts outside the package registries.
# Safe to run again: with /usr/bin/chromium present it does nothing.
set -euo pipefail

BROWSER=/usr/bin/chromium

if [ -x "$BROWSER" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: $BROWSER is missing and apt-get is not available; the page tests will be skipped" >&2
    exit 0
fi
# apt-get needs root; without it, say so and let the page tests skip rather than fail the build here.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-browser: $BROWSER is missing and installing it needs root; the page tests will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "install-browser: $("$BROWSER" --version 2>/dev/null)"
