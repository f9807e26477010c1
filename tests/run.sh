#!/usr/bin/env bash
# Set up and run the tests: a pip virtual environment in .venv, the Debian packages that some
# tests drive for real (listed in tests/apt-packages.txt; installed only where missing and
# where apt-get can run), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(grep -v '^#' tests/apt-packages.txt | xargs)
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done | xargs)
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Only what is missing, without recommends, and never an upgrade of what the system already
  # has: when the packages would need newer versions of installed ones (systemd, perl...), apt's
  # dry run (-s) says so and nothing is installed; the tests that need them skip.
  install=(apt-get install -y -qq --no-install-recommends --no-upgrade)
  apt-get update -qq
  upgrades=$("${install[@]}" -s $missing | awk '/^Inst [^ ]+ \[/ {print $2}' | xargs)
  if [ -n "$upgrades" ]; then
    echo "not installing Debian packages $missing: apt-get would upgrade installed packages" \
      "($upgrades). Install them yourself if you want those tests; they skip without them." >&2
  else
    echo "installing Debian packages (and what they need, nothing upgraded): $missing"
    DEBIAN_FRONTEND=noninteractive "${install[@]}" $missing >/dev/null
  fi
elif [ -n "$missing" ]; then
  echo "Debian packages missing (the tests that need them skip): $missing" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
