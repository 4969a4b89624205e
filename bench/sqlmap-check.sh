#!/usr/bin/env bash
# Runs sqlmap (Debian package `sqlmap`) against every filter parameter of the merchant API's list endpoints on a
# fresh Coffer (embedded database, temporary home, loopback only), authenticated with the demo secret key, with
# boolean, error, union, stacked-query and time-based techniques. Prints what sqlmap concluded for each endpoint
# and exits 1 if it found any parameter injectable.
#   bash bench/sqlmap-check.sh        (npm run check:sqlmap; about ten minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlmap >/dev/null || { echo "sqlmap is not installed: apt-get install -y sqlmap" >&2; exit 2; }

home=$(mktemp -d)
log="$home/coffer.log"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$home"; }
trap cleanup EXIT

COFFER_HOME="$home" COFFER_PORT=0 COFFER_INTERNAL_PORT=0 COFFER_JOBS=false COFFER_LOG_LEVEL=warn \
  COFFER_RATE_LIMIT_PER_KEY=100000 COFFER_RATE_LIMIT_PER_ADDRESS=100000 node bin/coffer.js start >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do grep -q 'Ready in' "$log" && break; sleep 0.5; done
port=$(sed -n 's#.*API *https://[^:]*:\([0-9]*\)/v1.*#\1#p' "$log" | head -n 1)
[ -n "$port" ] || { cat "$log"; echo "Coffer did not start" >&2; exit 2; }
key=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).secretKey)' "$home/demo-merchant.json")
base="https://127.0.0.1:$port/v1"

# Some rows to list, so that a filter that leaked into SQL would change what comes back.
call() { curl -sk -u "$key:" "$@" >/dev/null; }
call "$base/customers" -d email=ann@example.com -d name=Ann
customer=$(curl -sk -u "$key:" "$base/customers?limit=1" | sed -n 's/.*"id": *"\(cus_[A-Za-z0-9]*\)".*/\1/p' | head -n 1)
for amount in 1000 2000 3000; do
  call "$base/payment_intents" -d amount=$amount -d currency=usd -d payment_method=pm_card_visa -d confirm=true -d customer="$customer"
done
intent=$(curl -sk -u "$key:" "$base/payment_intents?limit=1" | sed -n 's/.*"id": *"\(pi_[A-Za-z0-9]*\)".*/\1/p' | head -n 1)
echo "Coffer on 127.0.0.1:$port with a customer ($customer) and three payments; running sqlmap…"

status=0
scan() {
  local name=$1 url=$2
  local out="$home/sqlmap-$name"
  sqlmap -u "$url" --headers="Authorization: Bearer $key" --batch --level=3 --risk=2 --dbms=PostgreSQL \
    --technique=BEUST --time-sec=2 --timeout=10 --retries=1 --threads=2 --flush-session --disable-coloring \
    --output-dir="$out" >"$out.log" 2>&1 || true
  local tested injectable payloads baseline
  baseline=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$url")
  tested=$(grep -oE "(GET|Custom) parameter '[^']+'" "$out.log" | sort -u | sed "s/GET parameter //" | tr '\n' ' ' || true)
  payloads=$(grep -c "testing '" "$out.log" || true)
  injectable=$(grep -E "is vulnerable|appears to be '.*' injectable|sqlmap identified the following injection point" "$out.log" || true)
  if [ -n "$injectable" ]; then
    echo "$name: INJECTABLE"; echo "$injectable"; status=1
  elif grep -q "all tested parameters do not appear to be injectable" "$out.log"; then
    echo "$name (answers $baseline): no parameter injectable; $payloads techniques tried on ${tested:-no parameter}"
  else
    echo "$name: sqlmap did not conclude; its last lines:"; tail -n 15 "$out.log"; status=1
  fi
}

scan payment_intents "$base/payment_intents?limit=3&customer=$customer&starting_after=$intent&created%5Bgte%5D=1"
scan payment_intents_before "$base/payment_intents?ending_before=$intent&created%5Blt%5D=9999999999"
scan customers "$base/customers?limit=3&email=ann%40example.com&starting_after=$customer"
scan charges "$base/charges?limit=3&customer=$customer&payment_intent=$intent"
scan refunds "$base/refunds?limit=3&payment_intent=$intent"
scan events "$base/events?limit=3&type=payment_intent.succeeded"
exit $status
