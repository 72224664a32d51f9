#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine (Python deps in .venv, the pinned native
# Soketi, pusher-js for the end-to-end tests, the reconnect storm's Node clients, Chromium for the
# console's browser tests, redis-server, nats-server and haproxy for the cluster tests), then runs
# lint, format check, types, the check that the generated docs match the CLI, and the tests.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k listen
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/packages.sh
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install "the native Soketi and the pusher-js tests" nodejs npm
fi
# The cluster tests run the bus and the front door for real; so does the gateway's front-door
# recipe (docs/gateway.md).
install_cluster_programs
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install "the console's and the gateway CORS browser tests" chromium chromium-driver
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
(cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
# the reconnect storm's clients (tests/test_gateway_storm.py runs scripts/bench_storm.py)
(cd scripts/bench/storm-client && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
export RTCTL_CACHE_DIR="$PWD/.cache/rtctl-test"
.venv/bin/python -c 'from rtctl.runtime.native import ensure_installed; ensure_installed(print)'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python scripts/gen_docs.py --check  # usage lines and option tables match the CLI
.venv/bin/python -m pytest "$@"
