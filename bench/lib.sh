# Shared by bench/intake.sh, delivery.sh, postgres.sh and cost.sh: the gateway's
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

CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID...: the CPU time (user + system, in clock ticks) the
# processes have used so far.
cpu_ticks() {
	local pid f t=0
	for pid in "$@"; do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		f=${f##*) } # after "pid (comm) ": state is field 3, utime 14, stime 15
		read -r -a f <<<"$f"
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
}

# median: the median of the numbers on stdin (one per word), or n/a.
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# post_lua FILE [PORT...]: writes a wrk script that POSTs the sample body
# with a data[id] of its own per request (thread, start time and a random
# number, then a counter; runs never repeat one), so deduplication stores
# each one as it would real traffic. With ports, wrk's threads take turns
# over 127.0.0.1 at those ports.
post_lua() {
	local file=$1 ports
	shift
	[[ $BODY != *[\"\\]* ]] || die "the body needs Lua escaping"
	[[ $BODY == *data%5Bid%5D=2\&* ]] || die "the body has no data[id] to vary"
	ports=$(printf '"%s", ' "$@")
	[[ $# -gt 0 ]] || ports=
	cat >"$file" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "$CONTENT_TYPE"
local pre, post = "${BODY%%data%5Bid%5D=2&*}data%5Bid%5D=", "&${BODY#*data%5Bid%5D=2&}"
local ports = { ${ports%, } }
local threads = 0
function setup(thread)
	threads = threads + 1
	if #ports > 0 then
		thread.addr = wrk.lookup("127.0.0.1", ports[(threads - 1) % #ports + 1])[1]
	end
	thread:set("tid", threads .. "-" .. os.time() .. "-" .. math.random(1000000))
end
local n = 0
function request()
	n = n + 1
	return wrk.format(nil, nil, nil, pre .. tid .. "-" .. n .. post)
end
EOF
}

# free_port (from .ci/postgres.sh, which defines only functions): prints a
# TCP port nothing on 127.0.0.1 listens on, below the kernel's ephemeral
# range: while the sink is down hookmail redials its port thousands of
# times, and a port inside that range can end up taken by a TCP
# self-connect.
# shellcheck source=../.ci/postgres.sh
source "$ROOT/.ci/postgres.sh"

# now: the time in seconds, for durations. rate N SECONDS: N per second.
now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.0f", n / s; else print "n/a"}'; }

# await_healthz NAME PID ADDR LOG: waits up to 10 s for the server PID to
# answer /healthz at ADDR; dies naming NAME (with the end of LOG when it
# exited) when it does not.
await_healthz() {
	local name=$1 pid=$2 addr=$3 log=$4 i
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; die "$name exited at start"; }
		curl -fsS -o /dev/null --max-time 1 "http://$addr/healthz" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$name at $addr did not answer /healthz within 10s"
}

SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
# smtp-sink must drop privileges when started as root.
SINK_USER=()
if [[ $(id -u) == 0 ]]; then SINK_USER=(-u root); fi

# start_sink PORT LOG [ARGS...]: starts smtp-sink on 127.0.0.1:PORT with
# ARGS (-c: count the messages), waits until it accepts connections, and
# sets SINK_PID.
start_sink() {
	local port=$1 log=$2 i
	shift 2
	"$SMTP_SINK" "$@" "${SINK_USER[@]}" "127.0.0.1:$port" 256 >"$log" 2>&1 &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	for i in $(seq 100); do
		kill -0 "$SINK_PID" 2>/dev/null || { cat "$log" >&2; die "smtp-sink exited at start"; }
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.05
	done
	die "smtp-sink on port $port did not accept connections within 5s"
}
