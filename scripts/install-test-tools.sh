#!/usr/bin/env bash
# Installs the Debian tools the tests drive, via apt-get, each only when it is missing: chromium for the page
# tests, wrk for the benchmark tests. Playwright's own browser download is never used: it reaches hosts
# outside the package registries. Safe to run again: with both present it does nothing.
set -euo pipefail

declare -A PACKAGE=([/usr/bin/chromium]=chromium [/usr/bin/wrk]=wrk)
missing=()
for tool in "${!PACKAGE[@]}"; do
    if [ ! -x "$tool" ]; then
        missing+=("${PACKAGE[$tool]}")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: ${missing[*]} missing and apt-get is not available; their tests will be skipped" >&2
    exit 0
fi
# apt-get needs root; without it, say so and let those tests skip rather than fail the build here.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-test-tools: ${missing[*]} missing and installing needs root; their tests will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-tools: installed ${missing[*]}"
