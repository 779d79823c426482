#!/usr/bin/env bash
# Probe-flood benchmark: how much a flood of GET /metrics or GET /readyz
# slows the webhooks. A sender posts webhooks one at a time at a steady
# rate (as the gateway does) for DURATION, first alone, then while wrk
# floods /metrics, then /readyz, with FLOOD_CONNS connections, and last a
# flood of a path that is only a 404: the floor, what any flood of HTTP
# requests costs the webhooks on the same cores. The webhook latency
# percentiles of the runs are compared.
#
#   bash bench/probes.sh
#   DURATION=20 RATE=50 FLOOD_CONNS=64 bash bench/probes.sh
#   BIN=/tmp/hookmail-old bash bench/probes.sh   # another build, for a before/after
#
# Loopback only. Results go to bench/results/ (gitignored).
set -euo pipefail

DURATION=${DURATION:-15}       # seconds per run
RATE=${RATE:-50}               # webhooks per second, one at a time
FLOOD_CONNS=${FLOOD_CONNS:-64} # wrk -c of the flood
BIN=${BIN:-}                   # a hookmail binary to measure instead of this tree's
STOP_TIMEOUT=30
KEEP=${KEEP:-0}

BENCH_NAME=probes
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v hey >/dev/null || die "hey is not installed"
command -v wrk >/dev/null || die "wrk is not installed"

say "# hookmail probe-flood benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); git $(git -C "$ROOT" rev-parse --short HEAD)"
say "# sender: hey -c 1 -q $RATE for ${DURATION}s; flood: wrk -t1 -c$FLOOD_CONNS"
if [[ -n $BIN ]]; then
	cp "$BIN" "$WORK/hookmail"
else
	(cd "$ROOT" && go build -o "$WORK/hookmail" .) || die "build failed"
fi
printf '%s' "$BODY" >"$WORK/body.txt"

port=$((20000 + RANDOM % 10000))
ADDR=127.0.0.1:$port
mkdir -p "$WORK/spool" "$WORK/outbox"
env -u HOOKMAIL_CONFIG -C "$WORK" HOOKMAIL_WEBHOOK_SECRETS=$SECRET \
	HOOKMAIL_SPOOL_DIR="$WORK/spool" HOOKMAIL_OUTBOX_DIR="$WORK/outbox" \
	HOOKMAIL_DEDUP_WINDOW=0 HOOKMAIL_LOG_LEVEL=warn HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0 \
	"$WORK/hookmail" serve --listen "$ADDR" >"$WORK/hookmail.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
for i in $(seq 100); do
	curl -fsS -o /dev/null --max-time 1 "http://$ADDR/healthz" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null --max-time 1 "http://$ADDR/healthz" || die "hookmail did not start: $(tail -3 "$WORK/hookmail.log")"

# sender OUT: the steady webhook sender; prints p50 p99 and the codes.
sender() {
	local out=$1
	hey -z "${DURATION}s" -c 1 -q "$RATE" -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" \
		"http://$ADDR/webhook" >"$out" 2>&1 || true
	awk '/50%% in|50% in/ {p50=$3} /99%% in|99% in/ {p99=$3}
		/^ *\[[0-9]+\]/ {gsub(/[\[\]]/, "", $1); codes = codes $1 ":" $2 " "}
		END {printf "p50 %.2fms  p99 %.2fms  %s", p50*1000, p99*1000, codes}' "$out"
}

say ""
say "$(printf '%-16s %s' flood 'webhook latency (answered one at a time)')"
say "$(printf '%-16s %s' none "$(sender "$WORK/alone.txt")")"
for path in /metrics /readyz /no-such-page; do
	wrk -t1 -c"$FLOOD_CONNS" -d"$((DURATION + 2))s" "http://$ADDR$path" >"$WORK/flood.txt" 2>&1 &
	FPID=$!
	PIDS+=("$FPID")
	sleep 1
	line=$(sender "$WORK/sender$(tr / - <<<"$path").txt")
	wait "$FPID" || true
	flood_rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$WORK/flood.txt")
	say "$(printf '%-16s %s  (flood: %s req/s)' "$path" "$line" "$flood_rps")"
done
stop "$HPID"
say ""
say "report: $REPORT"
