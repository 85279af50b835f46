#!/usr/bin/env bash
# Install everything ConCNER Studio needs on a fresh Debian machine (as root, or with sudo).
# Idempotent: already-installed packages are skipped. Used by run.sh, test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(apertium apertium-eng-spa dict-freedict-eng-deu dict-freedict-eng-nld dict-freedict-eng-rus
      dict-freedict-eng-pol redis-server postgresql chromium chromium-driver)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# torch==2.13.0 is pinned in requirements.txt: a looser pin would pull a multi-GB CUDA build.
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements-dev.txt
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps -e .
echo "setup: done"
