#!/usr/bin/env bash
# A client of `thrifty serve` in bash: curl for HTTP, jq for JSON (Debian: apt-get install curl jq).
# It creates a study (an admin token; or it uses the one there), then runs TRIALS trials:
# suggest -> report two steps (stopping when the service says so) -> complete, and prints the best.
#
#   THRIFTY_URL=http://127.0.0.1:8787 THRIFTY_TOKEN=thr_... THRIFTY_STUDY=demo bash curl_client.sh
#
# The objective stands in for any program: here (x - 0.3)^2 + (y - 2)^2 / 10, computed by jq.
set -euo pipefail

URL="${THRIFTY_URL:-http://127.0.0.1:8787}"
STUDY="${THRIFTY_STUDY:-curl-demo}"
TRIALS="${TRIALS:-10}"
CLIENT_ID="${CLIENT_ID:-curl-$$}"
API="$URL/api/v1"
AUTH=()
if [[ -n "${THRIFTY_TOKEN:-}" ]]; then AUTH=(-H "Authorization: Bearer $THRIFTY_TOKEN"); fi

# One call: METHOD PATH [JSON]. Prints the answer; on a 4xx/5xx prints the service's one-line error and exits.
api() {
  local method="$1" path="$2" body="${3:-}" out status
  out=$(mktemp)
  if [[ -n "$body" ]]; then
    status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "${AUTH[@]}" -H 'Content-Type: application/json' \
      --data "$body" "$API$path")
  else
    status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "${AUTH[@]}" "$API$path")
  fi
  if [[ "$status" -ge 400 ]]; then
    echo "thrifty service: HTTP $status on $method $path: $(jq -r '.error // .' < "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

study_json=$(jq -n --arg name "$STUDY" '{name: $name, objective: "min", strategy: "random", seed: 1,
  space: {x: {type: "float", low: 0, high: 1}, y: {type: "int", low: 0, high: 4}}, budget: {trials: 1000}}')
if ! api GET "/studies/$STUDY" > /dev/null 2>&1; then
  api POST /studies "$study_json" > /dev/null
  echo "created study $STUDY"
fi

for ((i = 0; i < TRIALS; i++)); do
  answer=$(api POST "/studies/$STUDY/suggest" "{\"count\": 1, \"client_id\": \"$CLIENT_ID\"}")
  if [[ $(jq '.trials | length' <<< "$answer") -eq 0 ]]; then
    echo "study exhausted: $(jq -r '.exhausted.message' <<< "$answer")"
    break
  fi
  number=$(jq '.trials[0].number' <<< "$answer")
  value=$(jq '.trials[0].params as $p | (($p.x - 0.3) * ($p.x - 0.3) + ($p.y - 2) * ($p.y - 2) / 10)' <<< "$answer")
  stopped=false
  for step in 1 2; do
    partial=$(jq -n --argjson v "$value" --argjson s "$step" '$v + 1 / $s')
    verdict=$(api POST "/studies/$STUDY/trials/$number/report" "{\"metrics\": $partial, \"step\": $step}")
    if [[ $(jq '.should_stop' <<< "$verdict") == true ]]; then stopped=true; break; fi
  done
  if $stopped; then
    api POST "/studies/$STUDY/trials/$number/stop" '{"reason": "the service said stop"}' > /dev/null
    echo "trial $number stopped early"
  else
    api POST "/studies/$STUDY/trials/$number/complete" "{\"value\": $value}" > /dev/null
    echo "trial $number completed: $value"
  fi
done

echo "best: $(api GET "/studies/$STUDY/best" | jq -c '.best | {number, params, metrics}')"
echo "spent: \$$(api GET "/studies/$STUDY/budget" | jq '.spent_usd')"
