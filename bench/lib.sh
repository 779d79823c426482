# Shared by bench/intake.sh, delivery.sh and postgres.sh: the gateway's
# sample body, the results and work directories, cleanup of every process in
# PIDS, and the helpers they use. Source it after setting BENCH_NAME and
# STOP_TIMEOUT. A script that starts something else to tear down at exit (a
# Postgres cluster) defines bench_cleanup: it runs once those processes are
# gone.
# shellcheck shell=bash

SECRET=f50f6f32ff605baf44483fcecceaba83fc3f9362
CONTENT_TYPE=application/x-www-form-urlencoded
BODY="secret=${SECRET}&type=sms&data%5Bid%5D=2&data%5Brid%5D=10593&data%5Bsim%5D=1&data%5Bdevice%5D=00000000-0000-0000-d57d-f30cb6a89289&data%5Bphone%5D=%2B639760713666&data%5Bmessage%5D=Hello+World%21&data%5Btimestamp%5D=1645684231"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
REPORT=$RESULTS/$BENCH_NAME-$STAMP.txt
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/hookmail-bench.XXXXXX")

PIDS=()
cleanup() {
	local rc=$? pid i
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	if declare -F bench_cleanup >/dev/null; then bench_cleanup || true; fi
	if [[ $KEEP == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
die() { say "error: $*"; exit 1; }

# stop PID: SIGTERM, then SIGKILL after STOP_TIMEOUT; sets STOP_RC
# (the exit status, or "killed").
stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq $((STOP_TIMEOUT * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	STOP_RC=0
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		STOP_RC=killed
		return
	fi
	wait "$pid" 2>/dev/null || STOP_RC=$?
}

# metric NAME [FILTER]: the sum of hookmail's series NAME (those containing
# FILTER) from http://$ADDR/metrics, or "?".
metric() {
	curl -fsS --max-time 5 "http://$ADDR/metrics" 2>/dev/null |
		awk -v name="$1" -v filter="${2:-}" '
			index($0, name) == 1 && (filter == "" || index($0, filter)) && substr($0, length(name)+1, 1) ~ /[ {]/ {s += $NF; n++}
			END {if (n) printf "%d\n", s; else print "?"}'
}
