#!/usr/bin/env bash
# The main job on a fresh machine, in one command: install rtctl, write a working .env (unless one
# exists), start a real Soketi (Docker if an engine answers, else natively from npm), check the
# deployment, and prove with `rtctl smoke` that events really arrive.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/packages.sh
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if ! docker info >/dev/null 2>&1; then
    apt_install "the native Soketi: no Docker engine here" nodejs npm
  fi
fi
install_cluster_programs

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
[ -f .env ] || .venv/bin/rtctl init
.venv/bin/rtctl up
.venv/bin/rtctl doctor
.venv/bin/rtctl smoke
echo "Soketi is running: .venv/bin/rtctl status shows it, .venv/bin/rtctl down stops it." >&2
