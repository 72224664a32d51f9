#!/usr/bin/env bash
# CI smoke for a realtime deployment: wait until the server is ready, run `rtctl smoke`, leave a
# JUnit report (for the CI's test view) and the JSON report (artifact) behind, print a summary,
# and exit with smoke's own exit code (0 ok, 3 config, 4 unreachable, 5 auth, 6 no delivery, 1 other).
#
# Configuration comes from the environment (PUSHER_APP_ID/KEY/SECRET, REALTIME_PROVIDER,
# REALTIME_HOST/PORT or PUSHER_APP_CLUSTER, ...) or from the .env in the working folder.
# Knobs (all optional):
#   RTCTL_BIN          command that runs rtctl (default: rtctl)
#   SMOKE_REPORT_DIR   where smoke.xml and smoke.json go (default: smoke-reports)
#   SMOKE_TIMEOUT      seconds per wait inside the smoke (default: 10)
#   SMOKE_WAIT         seconds to wait for the server to become ready first (default: 60)
#   SMOKE_CHECKS       comma-separated subset of checks (default: all)
#   SMOKE_GATEWAY_URL  also check the gateway (needs RTCTL_SMOKE_TOKEN, a user's JWT, and
#                      REALTIME_EMIT_TOKEN)
set -uo pipefail

read -r -a RTCTL <<<"${RTCTL_BIN:-rtctl}"
REPORT_DIR="${SMOKE_REPORT_DIR:-smoke-reports}"
TIMEOUT="${SMOKE_TIMEOUT:-10}"
WAIT="${SMOKE_WAIT:-60}"
mkdir -p "$REPORT_DIR"

# 1. Wait for readiness (service containers start in parallel with the job's first steps).
#    Exit 4 means "not reachable yet": retry; anything else is final and reported by the smoke.
deadline=$((SECONDS + WAIT))
while :; do
  "${RTCTL[@]}" smoke --checks health --timeout 2 --json >/dev/null 2>&1
  code=$?
  if [ "$code" -ne 4 ] || [ "$SECONDS" -ge "$deadline" ]; then
    break
  fi
  sleep 1
done

# 2. The smoke itself.
args=(smoke --timeout "$TIMEOUT" --junit "$REPORT_DIR/smoke.xml" --json)
if [ -n "${SMOKE_CHECKS:-}" ]; then
  args+=(--checks "$SMOKE_CHECKS")
fi
if [ -n "${SMOKE_GATEWAY_URL:-}" ]; then
  args+=(--via-gateway "$SMOKE_GATEWAY_URL")
fi
"${RTCTL[@]}" "${args[@]}" >"$REPORT_DIR/smoke.json"
code=$?

# 3. A summary for the log (the JSON report is the source; python3 comes with rtctl).
python3 - "$REPORT_DIR/smoke.json" <<'PY' || cat "$REPORT_DIR/smoke.json"
import json, sys
report = json.load(open(sys.argv[1]))
if "checks" not in report:  # a usage error before any check ran: rtctl printed it on stderr
    sys.exit(0)
for check in report["checks"]:
    line = f"smoke: {check['status'].upper():4} {check['name']:<13} {check['duration_ms']:8.1f} ms  {check['evidence']}"
    print(line)
    if check["status"] == "fail" and check.get("hint"):
        print(f"smoke:      hint: {check['hint']}")
print(f"smoke: verdict {report['verdict']} (exit {report['exit_code']}), run {report['run_id']}")
PY
exit "$code"
