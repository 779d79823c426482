#!/usr/bin/env bash
# Idle benchmark: the CPU `hookmail serve` uses while nothing happens, in
# milliseconds per second, next to bench/baseline (a bare net/http server).
# hookmail takes one webhook first and delivers it to the outbox, so its
# spool holds a dedup key, as a real one does; then nothing comes.
#
#   bash bench/idle.sh                  # 60s measured per target
#   DURATION=120 REF=main bash bench/idle.sh
#
# Loopback only. Results go to bench/results/ (gitignored). See bench/README.md.
set -euo pipefail

DURATION=${DURATION:-60}        # seconds measured per target
SETTLE=${SETTLE:-5}             # seconds after start-up before measuring
REF=${REF:-}                    # a git ref to measure beside the work tree
KEEP=${KEEP:-0}
STOP_TIMEOUT=30

BENCH_NAME=idle
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

say "# hookmail idle benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); load $(cut -d' ' -f1-3 /proc/loadavg)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')${REF:+; ref $REF = $(git -C "$ROOT" rev-parse --short "$REF")}"
say "# settle ${SETTLE}s, then ${DURATION}s measured from /proc/PID/task/*/schedstat (run time of each thread)"

(cd "$ROOT" && go build -o "$WORK/hookmail" . && go build -o "$WORK/baseline" ./bench/baseline)
targets=(hookmail baseline)
if [[ -n $REF ]]; then
	mkdir -p "$WORK/ref-src"
	git -C "$ROOT" archive "$REF" | tar -x -C "$WORK/ref-src"
	(cd "$WORK/ref-src" && go build -o "$WORK/ref" .)
	targets=(ref hookmail baseline)
fi
ticks=$(getconf CLK_TCK)

# cpu_ms PID: the CPU time PID has used so far, in milliseconds: the sum
# of its threads' run time in /proc/PID/task/*/schedstat (nanoseconds; a
# Go process keeps its threads), else utime+stime (clock ticks).
cpu_ms() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {if (NR) printf "%.3f\n", s / 1e6; else exit 1}' ||
		awk -v t="$ticks" '{print ($14 + $15) * 1000 / t}' "/proc/$1/stat"
}

rows=()
for target in "${targets[@]}"; do
	log=$WORK/$target.log
	if [[ $target == baseline ]]; then
		"$WORK/baseline" --listen 127.0.0.1:0 >"$log" 2>&1 &
	else
		HOOKMAIL_WEBHOOK_SECRETS=$SECRET HOOKMAIL_SPOOL_DIR=$WORK/$target-spool HOOKMAIL_OUTBOX_DIR=$WORK/$target-outbox \
			HOOKMAIL_SHUTDOWN_DRAIN=0 "$WORK/$target" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
	fi
	pid=$!
	PIDS+=("$pid")
	ADDR=
	for _ in $(seq 100); do
		ADDR=$(grep -v 'admin endpoint' "$log" 2>/dev/null | grep -m1 -o 'listening.* addr=[^ ]*' | sed 's/.* addr=//') || true
		[[ -n $ADDR ]] && break
		sleep 0.1
	done
	[[ -n $ADDR ]] || die "$target did not start: $(cat "$log")"
	if [[ $target != baseline ]]; then
		curl -fsS -o /dev/null -H "Content-Type: $CONTENT_TYPE" --data "$BODY" "http://$ADDR/webhook" || die "$target refused the webhook"
	fi
	sleep "$SETTLE"
	before=$(cpu_ms "$pid")
	sleep "$DURATION"
	after=$(cpu_ms "$pid")
	stop "$pid"
	rate=$(awk -v a="$after" -v b="$before" -v d="$DURATION" 'BEGIN {printf "%.3f", (a - b) / d}')
	say "$target: $rate ms/s of CPU idle"
	rows+=("$(printf '%-9s %8s' "$target" "$rate")")
done

say ""
say "# idle CPU, ms per second (${DURATION}s)"
for r in "${rows[@]}"; do say "$r"; done
say "report: $REPORT"
