#!/usr/bin/env bash
# Install promtool (Debian package "prometheus") for the metrics exposition checks in the tests.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is missing and apt-get is not available: install Prometheus' promtool and put it on PATH" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
