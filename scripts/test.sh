#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, check the code with ruff and
# the layering with import-linter (settings in pyproject.toml), then run the tests.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk
  fi
fi

# The PostgreSQL backend's tests start a throwaway server (tests/pg_server.py) with Debian's
# initdb/pg_ctl; the tests need pg_trgm and citext (postgresql-contrib: on Debian 12 a pointer
# to postgresql-15, which holds them; a separate package on older releases).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib
  fi
fi

bash scripts/setup.sh --dev

# Lint and the import contracts first: a failure here fails the run (set -e).
echo "ruff check ." >&2
.venv/bin/ruff check .
echo "lint-imports" >&2
.venv/bin/lint-imports --no-cache --no-logo

# pytest exits 5 when it collected no test: that fails here like any other failure.
exec .venv/bin/python -m pytest "$@"
