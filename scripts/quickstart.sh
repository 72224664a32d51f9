#!/usr/bin/env bash
# The main job on a fresh machine, in one command: install rtctl, write a working .env (unless one
# exists), start a real Soketi (Docker if an engine answers, else natively from npm), check the
# deployment, and prove with `rtctl smoke` that events really arrive.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if ! docker info >/dev/null 2>&1; then
    echo "installing Node.js and npm from Debian's packages (no Docker engine here)" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
fi

# A cluster (`rtctl up --nodes 3`) also runs a bus and a front door from Debian's packages;
# `rtctl up` never installs system packages itself, so this script does. nats-server and haproxy
# live in /usr/sbin: look there too.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v haproxy >/dev/null || missing+=(haproxy)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian's packages (a cluster's bus and front door)" >&2
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
[ -f .env ] || .venv/bin/rtctl init
.venv/bin/rtctl up
.venv/bin/rtctl doctor
.venv/bin/rtctl smoke
echo "Soketi is running: .venv/bin/rtctl status shows it, .venv/bin/rtctl down stops it." >&2
