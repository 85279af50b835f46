#!/usr/bin/env bash
# The test command (README and .ci/run): install what is needed, start the services the
# integration tests use (PostgreSQL; the Argilla stack is started by the tests' fixture),
# and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Lint first: it takes a second, and ruff is pinned in requirements-dev.txt so its rules
# (its defaults, nothing selected in pyproject.toml) cannot change under us.
python3 -m ruff check .

export CONCNER_REQUIRE_SERVICES=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
workdir="${CONCNER_TEST_WORKDIR:-$PWD/.concner-test}"
mkdir -p "$workdir"

# A throwaway PostgreSQL cluster (under /tmp: it runs as the postgres user, which must be
# able to reach its folder), stopped again when the tests end.
pgdir="$(mktemp -d /tmp/concner-pg.XXXXXX)"
chmod 755 "$pgdir"
CONCNER_TEST_POSTGRES_URL="$(scripts/start_postgres.sh "$pgdir" "${CONCNER_TEST_PG_PORT:-5433}")"
export CONCNER_TEST_POSTGRES_URL
trap 'scripts/start_postgres.sh --stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"' EXIT

# The two whole-system tests (a browser against the app with a local Argilla, and
# `concner up`) run in their own session after the rest, so processes they start cannot
# disturb the unit tests. Both sessions always run (a failure in the first must not hide
# the browser test's result); the exit code is the first failure's.
status=0
python3 -m pytest --ignore tests/integration/test_app_up.py --ignore tests/integration/browser "$@" || status=$?
python3 -m pytest tests/integration/browser tests/integration/test_app_up.py "$@" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
