#!/usr/bin/env bash
# Checks the public listener's TLS with testssl.sh (Debian package `testssl.sh`): starts Coffer on an embedded
# database in a temporary home, on loopback, runs testssl against it, and prints what it offers (protocols,
# ciphers, HSTS) and every finding of severity LOW or above. Exits 1 if testssl reports anything MEDIUM or worse.
#   bash bench/tls-check.sh        (npm run check:tls)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v testssl >/dev/null || { echo "testssl is not installed: apt-get install -y testssl.sh" >&2; exit 2; }

home=$(mktemp -d)
log="$home/coffer.log"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$home"; }
trap cleanup EXIT

COFFER_HOME="$home" COFFER_PORT=0 COFFER_INTERNAL_PORT=0 COFFER_JOBS=false COFFER_LOG_LEVEL=warn node bin/coffer.js start >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do grep -q 'Ready in' "$log" && break; sleep 0.5; done
port=$(sed -n 's#.*API *https://[^:]*:\([0-9]*\)/v1.*#\1#p' "$log" | head -n 1)
[ -n "$port" ] || { cat "$log"; echo "Coffer did not start" >&2; exit 2; }
echo "Coffer listening on 127.0.0.1:$port; running testssl (about two minutes)…"

json="$home/testssl.json"
testssl --quiet --color 0 --warnings off --sneaky --protocols --server-defaults --headers --vulnerable \
  --std --server-preference --jsonfile "$json" "https://127.0.0.1:$port/health" >/dev/null 2>&1 || true

node --input-type=module -e '
import fs from "node:fs";
const findings = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const pick = (id) => findings.filter((f) => f.id === id).map((f) => f.finding).join("; ");
for (const id of ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"]) console.log(`${id.padEnd(8)} ${pick(id)}`);
console.log(`HSTS     ${findings.filter((f) => f.id.startsWith("HSTS")).map((f) => f.finding).join("; ")}`);
console.log(`cipher order ${pick("cipher_order")}`);
const order = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
const serious = findings.filter((f) => order.includes(f.severity));
// A self-signed certificate on loopback is expected for the test listener; it is reported, not counted.
const certificate = (f) => /^cert_|chain_of_trust|OCSP|CRL|DNS_CAArecord|cert$/.test(f.id);
for (const f of serious) console.log(`${f.severity.padEnd(8)} ${f.id}: ${f.finding}${certificate(f) ? " (the test certificate)" : ""}`);
const bad = serious.filter((f) => f.severity !== "LOW" && !certificate(f));
console.log(bad.length === 0 ? "No finding of MEDIUM or above outside the self-signed test certificate." : `${bad.length} finding(s) of MEDIUM or above.`);
process.exit(bad.length === 0 ? 0 : 1);
' "$json"
