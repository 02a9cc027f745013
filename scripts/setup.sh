#!/usr/bin/env bash
# Idempotent set-up: .venv with torch==2.13.0 (CPU wheel) installed FIRST, then shoprank.
# Usage: scripts/setup.sh [runtime|dev]
# Re-runs are cheap: the install is skipped while pyproject.toml and the profile are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"
python="${PYTHON:-python3}"
venv=".venv"

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

extras=""
[ "$profile" = "dev" ] && extras="[dev]"
stamp="$venv/.shoprank-$profile"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "==> installing torch==2.13.0 first (any other version pulls a multi-GB CUDA build)"
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
echo "==> installing shoprank$extras"
python -m pip install --quiet --disable-pip-version-check -e ".$extras"

if [ "$profile" = "dev" ]; then
  # Test reference only; --no-deps because its metadata pins numpy<2/pandas<2 (see pyproject.toml's dev extra).
  python -m pip install --quiet --disable-pip-version-check --no-deps "gbstats==0.8.0"
  scripts/install-browser.sh || echo "==> WARNING: Chromium not installed; browser tests will skip" >&2
fi
echo "$want" > "$stamp"
