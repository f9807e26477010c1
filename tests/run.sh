#!/usr/bin/env bash
# Set up and run the tests: a pip virtual environment in .venv, the Debian packages that some
# tests drive for real (listed in tests/apt-packages.txt; installed only where missing and
# where apt-get can run), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(grep -v '^#' tests/apt-packages.txt | xargs)
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done | xargs)
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: $missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
