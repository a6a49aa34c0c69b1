#!/usr/bin/env bash
# OpenAPI-driven fuzzing of a running gate with schemathesis (PyPI): generated requests for every
# operation in /openapi.json; fails on any 5xx answer or any response that breaks the schema.
# Usage: scripts/schemathesis.sh [EXAMPLES_PER_OPERATION]   (default 60: about 1,400 cases)
# The gate listens on 127.0.0.1 only. Excluded operations:
# - POST /control/api/preflight makes outbound HTTP requests to the URL it is given, and generated
#   URLs could point off this machine (it is tested against 127.0.0.1 in GateTests);
# - POST /control/api/flags: generated calls switch live dispatch off, after which a live
#   dispatch-next is answered 501 by design (Enoch's contract), not by a fault (tested in GateTests).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-60}"
python3 -c 'import schemathesis' 2>/dev/null || pip install -q schemathesis
[ -x .build/debug/switchyard-gate ] || swift build
state=$(mktemp -d /tmp/sy-schemathesis-XXXXXX)
token=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
SWITCHYARD_STATE_DIR="$state" SWITCHYARD_GATE_LISTEN=127.0.0.1:0 SWITCHYARD_CONTROL_TOKEN="$token" SWITCHYARD_LOG=stderr \
  .build/debug/switchyard-gate 2> "$state/gate.log" &
gate=$!
trap 'kill $gate 2>/dev/null; wait $gate 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 100); do [ -s "$state/run/gate.address" ] && break; sleep 0.1; done
base="http://$(cat "$state/run/gate.address")"
# Something to find: a few tasks.
for i in 1 2 3; do
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"prompt\":\"seed $i\",\"lane\":\"l$i\"}" "$base/control/api/tasks"
done
schemathesis run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --exclude-path /control/api/preflight --exclude-path /control/api/flags \
  --max-examples "$examples" \
  --seed 1 2>&1 | tee .build/schemathesis.log | tail -40
status=${PIPESTATUS[0]}
if grep -q "Internal Server Error\|500" "$state/gate.log"; then echo "gate logged server errors:"; grep -i error "$state/gate.log" | tail -5; fi
exit "$status"
