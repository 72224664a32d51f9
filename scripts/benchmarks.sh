#!/usr/bin/env bash
# Runs the nine benchmarks in one go, side by side on this machine, against one native Soketi that
# this script starts on free loopback ports (temp state dir) and stops by PID at the end; the
# cluster benchmark starts its own node and 3-node cluster the same way.
#   1. startup   2. emit throughput   3. listen throughput   4. bench capacity   5. pytest plugin
#   6. console (drives Debian's Chromium: /usr/bin/chromium, /usr/bin/chromedriver)
#   7. webhooks (starts its own Soketi, with webhook settings, and stops it)   8. cluster
#   9. gateway /realtime/auth against the Node reference   10. reconnect storm (own Soketi nodes)
# Usage: scripts/benchmarks.sh [--quick] [OUTDIR]     (figures also land as JSON in OUTDIR)
# Needs: .venv (scripts/test.sh sets it up), Node + `cd tests/js && npm ci` for pusher-js and ws,
# redis-server and haproxy (scripts/test.sh installs them). Sizes of the cluster benchmark:
# CLUSTER_ARGS="--subscribers 40000 --fanout-workers 4" scripts/benchmarks.sh
# Installs what is missing for 9 and 10: wrk (Debian), the Node reference gateway and the storm's
# Node clients (npm ci each).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
QUICK=()
if [[ "${1:-}" == "--quick" ]]; then QUICK=(--quick); shift; fi
OUT="${1:-$(mktemp -d -t rtctl-bench-out.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d -t rtctl-bench.XXXXXX)"
export RTCTL_CACHE_DIR="${RTCTL_CACHE_DIR:-$PWD/.cache/rtctl-test}"
# Thousands of sockets: one file descriptor each, in rtctl and in Soketi (which inherits this).
ulimit -n "$(ulimit -Hn)"

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
if [[ ! -d scripts/bench/node-gateway/node_modules/pusher ]]; then
  (cd scripts/bench/node-gateway && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
if [[ ! -d scripts/bench/storm-client/node_modules/ws ]]; then
  (cd scripts/bench/storm-client && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

echo "== machine =="
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo | sed 's/^model name\s*:\s*/cpu: /'
free -h | sed -n 2p | awk '{print "memory: " $2 " total, " $7 " available"}'
echo "open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
echo "python: $($PY --version 2>&1), node: $(node --version)"
uptime

SOKETI_PID="$($PY - "$WORK" <<'PYEOF'
import sys
from pathlib import Path
from rtctl.config import load_settings
from rtctl.runtime import native
from rtctl.testing.server import local_env, write_env

work = Path(sys.argv[1])
env_file = write_env(work / ".env", local_env())  # free loopback ports, fresh credentials
running, _ = native.start(load_settings(env_file=env_file), work / "state", timeout=30)
print(running.pid)
PYEOF
)"
stop_soketi() {
  $PY -c 'import sys; from pathlib import Path; from rtctl.runtime import native; native.stop(Path(sys.argv[1]))' "$WORK/state" || true
  rm -rf "$WORK"
}
trap stop_soketi EXIT
echo "soketi: pid $SOKETI_PID on $(grep REALTIME_PORT "$WORK/.env"), open files $(awk '/Max open files/ {print $4}' /proc/"$SOKETI_PID"/limits)"
echo

status=0
$PY scripts/bench_startup.py --json-out "$OUT/startup.json" || status=1
echo
$PY scripts/bench_emit.py --env-file "$WORK/.env" --json-out "$OUT/emit.json" || status=1
echo
$PY scripts/bench_listen.py --env-file "$WORK/.env" --json-out "$OUT/listen.json" || status=1
echo
$PY scripts/bench_capacity.py --env-file "$WORK/.env" --soketi-pid "$SOKETI_PID" \
  --json-out "$OUT/capacity.json" "${QUICK[@]}" || status=1
echo
PLUGIN_SCALE=()
if [[ ${#QUICK[@]} -gt 0 ]]; then PLUGIN_SCALE=(--runs 5 --starts 3 --events 50); fi
# starts its own Soketis: session start is part of what it measures
$PY scripts/bench_plugin.py --json-out "$OUT/plugin.json" "${PLUGIN_SCALE[@]}" || status=1
echo
$PY scripts/bench_console.py --env-file "$WORK/.env" --json-out "$OUT/console.json" \
  "${QUICK[@]}" || status=1
echo
$PY scripts/bench_webhooks.py --json-out "$OUT/webhooks.json" "${QUICK[@]}" || status=1
# shellcheck disable=SC2086  # CLUSTER_ARGS is a list of options
$PY scripts/bench_cluster.py --json-out "$OUT/cluster.json" "${QUICK[@]}" ${CLUSTER_ARGS:-} || status=1
echo
$PY scripts/bench_gateway.py --json-out "$OUT/gateway.json" "${QUICK[@]}" || status=1
echo
STORM_CLIENTS=20000
if [[ ${#QUICK[@]} -gt 0 ]]; then STORM_CLIENTS=2000; fi
# starts its own Soketi nodes (it restarts them)
$PY scripts/bench_storm.py --clients "$STORM_CLIENTS" --json-out "$OUT/storm.json" || status=1
echo
echo "figures as JSON in $OUT"
exit $status
