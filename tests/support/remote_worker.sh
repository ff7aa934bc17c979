#!/usr/bin/env bash
# A remote worker in bash and curl only: it claims a run of $AGENT (a long poll), beats for
# it, does the work, and completes it with its lease. ONCE=1: one run, then exit.
set -euo pipefail
: "${AGENTCRON_URL:?}" "${AGENTCRON_TOKEN:?}" "${AGENT:?}"
WORKER_ID="${WORKER_ID:-curl-worker}"
api() { curl -sS --fail-with-body -X POST "$AGENTCRON_URL$1" -d "$2" \
  -H "Authorization: Bearer $AGENTCRON_TOKEN" -H 'Content-Type: application/json'; }
while true; do
  claim=$(api /api/v1/workers/claim \
    "{\"worker_id\":\"$WORKER_ID\",\"agents\":[\"$AGENT\"],\"max\":1,\"wait\":\"20s\"}")
  id=$(printf '%s' "$claim" | grep -o '"id":"[^"]*"' | head -n1 | cut -d'"' -f4 || true)
  [ -n "$id" ] || continue
  lease=$(printf '%s' "$claim" | grep -o '"lease":[0-9]*' | head -n1 | cut -d: -f2)
  api "/api/v1/workers/$WORKER_ID/heartbeat" "{\"runs\":[{\"id\":\"$id\",\"lease\":$lease}]}"
  echo
  api "/api/v1/runs/$id/complete" \
    "{\"lease\":$lease,\"status\":\"succeeded\",\"output\":\"done by $WORKER_ID\"}"
  echo
  [ -z "${ONCE:-}" ] || exit 0
done
