#!/usr/bin/env bash
# The run command (README): install, then start the app with its embedded default services
# (store, queue worker, local Argilla, Streamlit) on this machine. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec concner up "$@"
