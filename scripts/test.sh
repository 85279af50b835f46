#!/usr/bin/env bash
# The test command (README and .ci/run): install what is needed, start the services the
# integration tests use (PostgreSQL; the Argilla stack is started by the tests' fixture),
# and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CONCNER_REQUIRE_SERVICES=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
workdir="${CONCNER_TEST_WORKDIR:-$PWD/.concner-test}"
mkdir -p "$workdir"

if [ -x scripts/start_postgres.sh ]; then
  CONCNER_TEST_POSTGRES_URL="$(scripts/start_postgres.sh "$workdir/postgres")"
  export CONCNER_TEST_POSTGRES_URL
  trap 'scripts/stop_postgres.sh "$workdir/postgres" >/dev/null 2>&1 || true' EXIT
fi

python3 -m pytest "$@"
