#!/usr/bin/env bash
# Limits benchmark: at what intake load hookmail starts answering 429
# (webhook.rate_limit, per client IP) and 503 (webhook.max_concurrent: a
# request that waits over 1 s for a slot). hey drives the load on loopback.
#
#   bash bench/limits.sh
#   RATE=100 RATES="50 90 110 200" CAP=64 CONNS="64 256 1024" bash bench/limits.sh
#
# Results go to bench/results/ (gitignored).
set -euo pipefail

RATE=${RATE:-100}                      # webhook.rate_limit under test (req/s per IP)
BURST=${BURST:-20}                     # webhook.rate_burst
RATES=${RATES:-"50 90 110 150 300"}    # offered req/s from one client IP
CAP=${CAP:-64}                         # webhook.max_concurrent under test
CONNS=${CONNS:-"32 64 256 1024 2048"}  # concurrent clients offered
DURATION=${DURATION:-5}                # seconds per step
STOP_TIMEOUT=30
KEEP=${KEEP:-0}

BENCH_NAME=limits
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v hey >/dev/null || die "hey is not installed"
ulimit -n 65536 2>/dev/null || true

say "# hookmail limits benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); git $(git -C "$ROOT" rev-parse --short HEAD)"
(cd "$ROOT" && go build -o "$WORK/hookmail" .) || die "build failed"

# start_hookmail NAME ENV...: starts hookmail with the given extra env and
# sets URL and PID.
start_hookmail() {
	local name=$1 log=$WORK/$1.log port
	shift
	port=$(free_port)
	mkdir -p "$WORK/$name/spool" "$WORK/$name/outbox"
	env -u HOOKMAIL_CONFIG -C "$WORK/$name" HOOKMAIL_WEBHOOK_SECRETS=$SECRET \
		HOOKMAIL_SPOOL_DIR="$WORK/$name/spool" HOOKMAIL_OUTBOX_DIR="$WORK/$name/outbox" \
		HOOKMAIL_DEDUP_WINDOW=0 HOOKMAIL_LOG_LEVEL=warn "$@" \
		"$WORK/hookmail" serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	URL=http://127.0.0.1:$port/webhook
	await_healthz "$name" "$PID" "127.0.0.1:$port" "$log"
}

# codes FILE: "200:n 429:n ..." from hey's status code distribution.
codes() { awk '/^ *\[[0-9]+\]/ {gsub(/[\[\]]/, "", $1); printf "%s:%s ", $1, $2}' "$1"; }
rps() { awk '/Requests\/sec:/ {printf "%.0f", $2}' "$1"; }

printf '%s' "$BODY" >"$WORK/body.txt"

say ""
say "== 429: webhook.rate_limit=$RATE burst $BURST, one client IP offering a fixed rate for ${DURATION}s"
start_hookmail rate HOOKMAIL_WEBHOOK_RATE_LIMIT="$RATE" HOOKMAIL_WEBHOOK_RATE_BURST="$BURST"
say "$(printf '%-10s %-10s %s' offered achieved codes)"
for R in $RATES; do
	out=$WORK/rate-$R.txt
	# hey -q is per worker: 10 workers at R/10 each.
	hey -z "${DURATION}s" -c 10 -q "$(awk -v r="$R" 'BEGIN {printf "%.2f", r / 10}')" -m POST \
		-T "$CONTENT_TYPE" -D "$WORK/body.txt" "$URL" >"$out" 2>&1 || true
	say "$(printf '%-10s %-10s %s' "$R" "$(rps "$out")" "$(codes "$out")")"
	sleep 1
done
stop "$PID"

say ""
say "== 503: webhook.max_concurrent=$CAP, hey with more and more concurrent clients, no rate limit, ${DURATION}s each"
# hey's clients all come from 127.0.0.1: the per-IP connection cap is
# lifted so they measure max_concurrent, not webhook.max_connections_per_ip.
start_hookmail cap HOOKMAIL_WEBHOOK_MAX_CONCURRENT="$CAP" HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0 HOOKMAIL_WEBHOOK_MAX_CONNECTIONS=4096
say "$(printf '%-10s %-10s %-12s %s' clients req/s p99 codes)"
for C in $CONNS; do
	out=$WORK/cap-$C.txt
	hey -z "${DURATION}s" -c "$C" -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" "$URL" >"$out" 2>&1 || true
	p99=$(awk '/99% in/ {print $3 "s"}' "$out")
	say "$(printf '%-10s %-10s %-12s %s' "$C" "$(rps "$out")" "$p99" "$(codes "$out")")"
	sleep 1
done
stop "$PID"
say ""
say "report: $REPORT"
