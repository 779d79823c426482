#!/usr/bin/env bash
# Intake benchmark: how many webhook requests per second hookmail accepts
# (each answered 200 only after its group commit is fsynced), next to a bare
# net/http server that only parses the same form (bench/baseline).
#
#   bash bench/intake.sh                 # 15s per target
#   DURATION=30s CONNS=128 bash bench/intake.sh
#
# Loopback only. Results go to bench/results/ (gitignored). See bench/README.md.
set -euo pipefail

DURATION=${DURATION:-15s}       # measured run per target
WARMUP=${WARMUP:-3s}            # unmeasured run before it
THREADS=${THREADS:-2}           # wrk -t
CONNS=${CONNS:-64}              # wrk -c / hey -c
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}  # seconds to wait for the outbox to catch up
STOP_TIMEOUT=${STOP_TIMEOUT:-30}  # seconds SIGTERM may take before SIGKILL
PIN=${PIN:-0}                   # 1: server on CPU 0, load generator on CPU 1
KEEP=${KEEP:-0}                 # 1: keep the temp dir (binaries, spool, outbox, logs)
TOOL=${TOOL:-}                  # wrk (default when installed) or hey

BENCH_NAME=intake
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# seconds DURATION: wrk/hey durations (15s, 2m, 1h, bare seconds) as seconds.
seconds() {
	local d=$1
	case $d in
	*ms) echo 1 ;;
	*s) echo "${d%s}" ;;
	*m) echo $((${d%m} * 60)) ;;
	*h) echo $((${d%h} * 3600)) ;;
	*) echo "$d" ;;
	esac
}

server_cpu=() load_cpu=()
if [[ $PIN == 1 ]]; then
	server_cpu=(taskset -c 0) load_cpu=(taskset -c 1)
fi

# --- tools and binaries ------------------------------------------------------
if [[ -z $TOOL ]]; then
	if command -v wrk >/dev/null; then
		TOOL=wrk
	elif command -v hey >/dev/null; then
		TOOL=hey
	else
		die "neither wrk nor hey is installed"
	fi
fi
[[ $TOOL == wrk || $TOOL == hey ]] || die "TOOL must be wrk or hey"
command -v "$TOOL" >/dev/null || die "$TOOL is not installed"
command -v curl >/dev/null || die "curl is needed for the readiness and metrics checks"

say "# hookmail intake benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')"
say "# load: $TOOL, $THREADS threads, $CONNS connections, warm-up $WARMUP, run $DURATION, loopback; pinned: $PIN"
say "# work dir: $WORK"

(cd "$ROOT" && go build -o "$WORK/hookmail" . && go build -o "$WORK/baseline" ./bench/baseline) ||
	die "build failed"

printf '%s' "$BODY" >"$WORK/body.txt"
post_lua "$WORK/post.lua"

# --- helpers -------------------------------------------------------------------

# start NAME LOG CMD...: starts a server in the background, waits for its
# "listening" log line and for /healthz, and sets ADDR and PID.
start() {
	local name=$1 log=$2 i
	shift 2
	"${server_cpu[@]}" "$@" >"$log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	ADDR=
	for i in $(seq 100); do
		kill -0 "$PID" 2>/dev/null || { cat "$log" >&2; die "$name exited at start"; }
		ADDR=$(grep -v 'admin endpoint' "$log" 2>/dev/null | grep -m1 -o 'listening.* addr=[^ ]*' | sed 's/.* addr=//') || true
		[[ -n $ADDR ]] && break
		sleep 0.1
	done
	[[ -n $ADDR ]] || die "$name did not log its listening address within 10s"
	await_healthz "$name" "$PID" "$ADDR" "$log"
}

# load URL DURATION OUT: runs the load generator; sets RPS P50 P99 TOTAL NON2XX SOCKERR.
load() {
	local url=$1 dur=$2 out=$3 bound
	bound=$(($(seconds "$dur") + 30))
	if [[ $TOOL == wrk ]]; then
		timeout -k 5 "$bound" "${load_cpu[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$dur" --latency \
			-s "$WORK/post.lua" "$url" >"$out" 2>&1 || die "wrk failed: $(tail -3 "$out")"
		RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
		P50=$(awk '/Latency Distribution/ {f=1; next} f && $1=="50%" {print $2; exit}' "$out")
		P99=$(awk '/Latency Distribution/ {f=1; next} f && $1=="99%" {print $2; exit}' "$out")
		TOTAL=$(awk '/ requests in / {print $1; exit}' "$out")
		NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
		SOCKERR=$(awk -F'Socket errors: ' 'NF>1 {print $2}' "$out")
	else
		timeout -k 5 "$bound" "${load_cpu[@]}" hey -z "$dur" -c "$CONNS" -m POST -T "$CONTENT_TYPE" \
			-D "$WORK/body.txt" "$url" >"$out" 2>&1 || die "hey failed: $(tail -3 "$out")"
		RPS=$(awk '/Requests\/sec:/ {print $2}' "$out")
		P50=$(awk '$1=="50%%" || $1=="50%" {printf "%.2fms", $3*1000; exit}' "$out")
		P99=$(awk '$1=="99%%" || $1=="99%" {printf "%.2fms", $3*1000; exit}' "$out")
		TOTAL=$(awk '/^ *\[[0-9]+\]/ {n+=$2} END {print n+0}' "$out")
		NON2XX=$(awk '/^ *\[[0-9]+\]/ && $1 !~ /^\[2/ {n+=$2} END {print n+0}' "$out")
		SOCKERR=$(awk '/Error distribution/ {f=1; next} f && /\[[0-9]+\]/ {n+=substr($1,2)} END {print n+0}' "$out")
	fi
	NON2XX=${NON2XX:-0}
	SOCKERR=${SOCKERR:-none}
	[[ -n $RPS && -n $TOTAL ]] || die "could not read the load generator's output $out"
}

outbox_count() {
	find "$1" -maxdepth 1 -type f -name '*.eml' ! -name '.tmp-*' | wc -l
}

declare -A R_RPS R_P50 R_P99 R_NON2XX

# --- hookmail ------------------------------------------------------------------
say ""
say "== hookmail serve"
mkdir -p "$WORK/spool" "$WORK/outbox"
HLOG=$WORK/hookmail.log
start hookmail "$HLOG" env -u HOOKMAIL_CONFIG -C "$WORK" \
	HOOKMAIL_WEBHOOK_SECRETS=$SECRET HOOKMAIL_SPOOL_DIR="$WORK/spool" HOOKMAIL_OUTBOX_DIR="$WORK/outbox" \
	HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0 "$WORK/hookmail" serve --listen 127.0.0.1:0
HPID=$PID
URL=http://$ADDR/webhook
code=$(curl -sS -o "$WORK/probe.json" -w '%{http_code}' --max-time 5 -H "Content-Type: $CONTENT_TYPE" --data-binary @"$WORK/body.txt" "$URL") || true
[[ $code == 200 ]] || die "probe POST to hookmail answered $code: $(cat "$WORK/probe.json" 2>/dev/null)"
say "listening on $ADDR (pid $HPID); probe POST: 200 $(tr -d '\n' <"$WORK/probe.json")"

load "$URL" "$WARMUP" "$RESULTS/intake-$STAMP-hookmail-warmup.txt"
WARM_OK=$((TOTAL - NON2XX))
say "warm-up: $TOTAL requests, $NON2XX non-2xx"
load "$URL" "$DURATION" "$RESULTS/intake-$STAMP-hookmail.txt"
RUN_OK=$((TOTAL - NON2XX))
R_RPS[hookmail]=$RPS R_P50[hookmail]=$P50 R_P99[hookmail]=$P99 R_NON2XX[hookmail]=$NON2XX
say "run: $TOTAL requests, $NON2XX non-2xx, socket errors: $SOCKERR"
[[ $NON2XX == 0 && ($SOCKERR == none || $SOCKERR == 0) ]] || say "WARNING: hookmail answered $NON2XX non-2xx responses during the run (socket errors: $SOCKERR)"
ACCEPTED=$((1 + WARM_OK + RUN_OK)) # probe + warm-up + run

# Wait for the workers to catch up: until the queue is empty, or the outbox
# count stops growing for 5s, or DRAIN_TIMEOUT.
AT_END=$(outbox_count "$WORK/outbox")
drain_start=$SECONDS prev=-1 still=0
while ((SECONDS - drain_start < DRAIN_TIMEOUT)); do
	n=$(outbox_count "$WORK/outbox")
	depth=$(metric hookmail_queue_depth)
	[[ $depth == 0 ]] && break
	if [[ $n == "$prev" ]]; then still=$((still + 1)); else still=0; fi
	((still >= 5)) && break
	prev=$n
	sleep 1
done
DRAIN_S=$((SECONDS - drain_start))
DRAINED=$(outbox_count "$WORK/outbox")
Q_QUEUED=$(metric hookmail_events_received_total 'result="queued"')
Q_ALL=$(metric hookmail_events_received_total)
Q_SENT=$(metric hookmail_emails_sent_total)
Q_FAILED=$(metric hookmail_emails_failed_total)
[[ $Q_FAILED != "?" ]] || Q_FAILED=0 # no series yet: nothing failed

stop_start=$SECONDS
stop "$HPID"
STOP_S=$((SECONDS - stop_start))
WRITTEN=$(outbox_count "$WORK/outbox")
# What the spool still holds, read from the file once hookmail has exited.
SPOOL=$(env -u HOOKMAIL_CONFIG HOOKMAIL_SPOOL_DIR="$WORK/spool" "$WORK/hookmail" queue stats --json 2>/dev/null) || SPOOL='{"depth":"?","dead":"?"}'
Q_DEPTH=$(sed -nE 's/.*"depth": *"?([^",]+)"?.*/\1/p' <<<"$SPOOL")
Q_DEAD=$(sed -nE 's/.*"dead": *"?([^",]+)"?.*/\1/p' <<<"$SPOOL")
grep -q 'msg=stopped' "$HLOG" && STOPPED=graceful || STOPPED="NOT graceful (SIGKILL after ${STOP_TIMEOUT}s)"
SENT_AFTER_TERM=$(awk '/msg="shutting down"/ {f=1} f && /msg="email sent"/ {n++} END {print n+0}' "$HLOG")
say "stopped with SIGTERM in ${STOP_S}s: exit $STOP_RC, $STOPPED; $SENT_AFTER_TERM emails written after SIGTERM"
say "accepted: $ACCEPTED 2xx seen by clients (1 probe + $WARM_OK warm-up + $RUN_OK run);" \
	"server counted $Q_QUEUED queued of $Q_ALL requests"
say "written:  $WRITTEN .eml in the outbox ($AT_END when the run ended, $DRAINED after ${DRAIN_S}s of drain" \
	"at $(awk -v a="$AT_END" -v w="$DRAINED" -v s="$DRAIN_S" 'BEGIN {printf "%.0f", (s > 0 ? (w - a) / s : 0)}') emails/s);" \
	"after stop the spool still holds $Q_DEPTH, dead letters $Q_DEAD (sent $Q_SENT, failed attempts $Q_FAILED)"
if [[ $Q_QUEUED =~ ^[0-9]+$ && $Q_DEPTH =~ ^[0-9]+$ && $Q_DEAD =~ ^[0-9]+$ ]]; then
	extra=$((WRITTEN + Q_DEPTH + Q_DEAD - Q_QUEUED))
	if ((extra > 0)) && [[ $STOP_RC == killed ]]; then
		# At-least-once: written, then SIGKILLed before the Ack committed.
		say "note: $extra emails are both in the outbox and still spooled (SIGKILL between write and Ack);" \
			"a restart rewrites them under the same file name"
	elif ((extra != 0)); then
		say "MISMATCH: written + still spooled + dead = $((WRITTEN + Q_DEPTH + Q_DEAD)) != $Q_QUEUED queued"
	fi
	# A request the client gave up on at the end of a run may still be stored.
	if ((Q_QUEUED < ACCEPTED || Q_QUEUED > ACCEPTED + 2 * CONNS)); then
		say "MISMATCH: the server queued $Q_QUEUED but the clients saw $ACCEPTED 2xx"
	fi
fi
grep -E 'level=(WARN|ERROR)' "$HLOG" >"$RESULTS/intake-$STAMP-hookmail-problems.log" || true
N_WARN=$(grep -c 'level=WARN' "$HLOG" || true)
N_ERR=$(grep -c 'level=ERROR' "$HLOG" || true)
say "hookmail log: $(wc -l <"$HLOG") lines, $N_WARN WARN, $N_ERR ERROR"
if ((N_WARN + N_ERR > 0)); then
	sed -E 's/^time=[^ ]+ //; s/ (id|remote)=[^ ]+//g' "$RESULTS/intake-$STAMP-hookmail-problems.log" |
		sort | uniq -c | sort -rn | head -5 | while read -r line; do say "  $line"; done
fi

# --- baseline ------------------------------------------------------------------
say ""
say "== baseline (net/http + ParseForm only)"
start baseline "$WORK/baseline.log" "$WORK/baseline" -listen 127.0.0.1:0
BPID=$PID
URL=http://$ADDR/webhook
say "listening on $ADDR (pid $BPID)"
load "$URL" "$WARMUP" "$RESULTS/intake-$STAMP-baseline-warmup.txt"
load "$URL" "$DURATION" "$RESULTS/intake-$STAMP-baseline.txt"
R_RPS[baseline]=$RPS R_P50[baseline]=$P50 R_P99[baseline]=$P99 R_NON2XX[baseline]=$NON2XX
say "run: $TOTAL requests, $NON2XX non-2xx, socket errors: $SOCKERR"
stop "$BPID"

# --- table ---------------------------------------------------------------------
say ""
say "$(printf '%-10s %12s %10s %10s %8s' target req/s p50 p99 non-2xx)"
for t in hookmail baseline; do
	say "$(printf '%-10s %12s %10s %10s %8s' "$t" "${R_RPS[$t]}" "${R_P50[$t]}" "${R_P99[$t]}" "${R_NON2XX[$t]}")"
done
say "$(awk -v h="${R_RPS[hookmail]}" -v b="${R_RPS[baseline]}" \
	'BEGIN {if (b > 0) printf "ratio hookmail/baseline req/s: %.3f", h / b; else print "ratio: n/a"}')"
say "events: $ACCEPTED accepted (2xx), $WRITTEN written to the outbox, $Q_DEPTH still spooled, $Q_DEAD dead"
say ""
say "report: $REPORT (raw $TOOL output and hookmail's WARN/ERROR lines next to it)"
