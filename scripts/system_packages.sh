#!/usr/bin/env bash
# Debian packages some tests and benchmarks run for real (nginx for the front-proxy recipe,
# wrk for the load benchmarks, Chromium and its driver for the page's browser tests). Installed
# when missing and this user can; otherwise the tests that need them skip and say which package
# to install. Prints how long the installation took.
set -uo pipefail
missing=()
have() { command -v "$1" >/dev/null 2>&1 || test -x "/usr/sbin/$1"; }
have nginx || missing+=(nginx-light)
have wrk || missing+=(wrk)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "warning: not installed: ${missing[*]} (Debian: apt-get install ${missing[*]});" \
         "the tests that need them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
} || { echo "error: apt-get could not install ${missing[*]}" >&2; exit 1; }
echo "installed ${missing[*]} in $(( $(date +%s) - started )) s"
