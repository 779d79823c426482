#!/usr/bin/env bash
# Postgres benchmark: intake req/s and end-to-end emails/s of hookmail on the
# spool (one instance), and on the Postgres queue with one and with three
# instances sharing one database, all on this machine, back to back, RUNS
# times; the table shows the medians.
#
#   bash bench/postgres.sh                     # 3 rounds, about 5 minutes
#   RUNS=1 CONFIGS="postgres:1" bash bench/postgres.sh
#
# Postgres is a throwaway cluster (.ci/postgres.sh) with fsync,
# synchronous_commit and full_page_writes on (DURABLE=1), unlike the CI
# cluster. Loopback only. Results go to bench/results/ (gitignored). See
# bench/README.md.
set -euo pipefail

DURATION=${DURATION:-15s}            # measured intake run per configuration
WARMUP=${WARMUP:-3s}                 # unmeasured intake run before it
THREADS=${THREADS:-2}                # wrk -t (rounded up to a multiple of the instances)
CONNS=${CONNS:-64}                   # wrk -c (rounded down to a multiple of the threads)
N=${N:-5000}                         # events per end-to-end run
POST_CONNS=${POST_CONNS:-32}         # hey -c while posting them, split over the instances
WORKERS=${WORKERS:-4}                # smtp.workers of each instance
RUNS=${RUNS:-3}                      # rounds; each runs every configuration once
CONFIGS=${CONFIGS:-"spool:1 postgres:1 postgres:3"} # backend:instances
PHASES=${PHASES:-"intake e2e"}       # which measurements to make
BIN=${BIN:-}                         # a hookmail binary to measure instead of building one
DURABLE=${DURABLE:-1}                # 1: Postgres with fsync and synchronous_commit on
PG_STATS=${PG_STATS:-0}              # 1: load pg_stat_statements and report the top statements
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}  # seconds to wait for all N to be sent
STOP_TIMEOUT=${STOP_TIMEOUT:-30}     # seconds SIGTERM may take before SIGKILL
KEEP=${KEEP:-0}                      # 1: keep the temp dir (binary, spools, logs)

BENCH_NAME=postgres
# (lib.sh brings .ci/postgres.sh: free_port, launch_test_postgres,
# stop_test_postgres.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

for t in wrk hey curl; do command -v "$t" >/dev/null || die "$t is not installed"; done
[[ -x $SMTP_SINK ]] || die "$SMTP_SINK is not installed (Postfix)"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number"

# --- Postgres ------------------------------------------------------------------
PG_OPTS=""
if [[ $DURABLE == 1 ]]; then
	PG_OPTS="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
fi
if [[ $PG_STATS == 1 ]]; then
	PG_OPTS+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
fi
bench_cleanup() { stop_test_postgres; }
PG_TEST_OPTIONS=$PG_OPTS launch_test_postgres >"$WORK/postgres-start.log" 2>&1 ||
	die "postgres did not start: $(tail -3 "$WORK/postgres-start.log")"
ADMIN_URL=$HOOKMAIL_TEST_POSTGRES_URL
unset HOOKMAIL_TEST_POSTGRES_URL
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$1" -X -q -v ON_ERROR_STOP=1 -At "${@:2}"; }
# withdb URL DB [USER PASSWORD]: URL naming database DB (and the user).
withdb() {
	local u=$1 db=$2
	u=${u%%\?*}
	u="${u%/*}/$db?sslmode=disable"
	[[ -n ${3:-} ]] && u="postgres://$3:$4@${u#*@}"
	echo "$u"
}
PG_SETTINGS=$(psql_admin "$ADMIN_URL" -F= -c "SELECT name, current_setting(name) FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_connections') ORDER BY name" | tr '\n' ' ')
PG_VERSION=$(psql_admin "$ADMIN_URL" -c "SHOW server_version")
# hookmail's role, as in relay/postgres/pgtest: no superuser, allowed to
# create in its database's public schema only.
PG_ROLE=hookmail_bench
PG_PASSWORD=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql_admin "$ADMIN_URL" -c "CREATE ROLE $PG_ROLE LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$PG_PASSWORD'"

# new_database NAME: a fresh, empty database for one run; sets DB_URL.
new_database() {
	psql_admin "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
	psql_admin "$(withdb "$ADMIN_URL" "$1")" -c "GRANT USAGE, CREATE ON SCHEMA public TO $PG_ROLE"
	if [[ $PG_STATS == 1 ]]; then
		psql_admin "$(withdb "$ADMIN_URL" "$1")" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
			-c "SELECT pg_stat_statements_reset()" >/dev/null
	fi
	DB_URL=$(withdb "$ADMIN_URL" "$1" "$PG_ROLE" "$PG_PASSWORD")
}

say "# hookmail Postgres benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); load average at start: $(loadavg)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')"
say "# postgres $PG_VERSION on 127.0.0.1, data in $PG_TEST_DIR ($(df -PT "$PG_TEST_DIR" | awk 'NR==2 {print $2}')): $PG_SETTINGS"
say "# spool in $WORK ($(df -PT "$WORK" | awk 'NR==2 {print $2}')); configurations: $CONFIGS; $RUNS rounds"
say "# intake: wrk, warm-up $WARMUP, run $DURATION, about $CONNS connections; SMTP stalled, so no email goes out"
say "# end to end: $N events posted with hey -c $POST_CONNS (dedup.window 0) to instances with $WORKERS workers each, into smtp-sink"

if [[ -n $BIN ]]; then
	cp "$BIN" "$WORK/hookmail" || die "cannot copy $BIN"
	say "# binary: $BIN, not built from the tree"
else
	(cd "$ROOT" && go build -o "$WORK/hookmail" .) || die "build failed"
fi
printf '%s' "$BODY" >"$WORK/body.txt"

# --- helpers -------------------------------------------------------------------

# start_instances BACKEND K DIR SMTP_PORT [VAR=VALUE...]: starts K hookmails
# on the backend (the database DB_URL for postgres), each with its own
# spool.dir and webhook port, one after the other (the first creates the
# schema); sets ADDRS and HPIDS.
start_instances() {
	local backend=$1 k=$2 dir=$3 smtp=$4 i j log addr env
	shift 4
	ADDRS=() HPIDS=()
	for ((i = 1; i <= k; i++)); do
		mkdir -p "$dir/i$i/spool"
		log=$dir/i$i/hookmail.log
		env=(HOOKMAIL_WEBHOOK_SECRETS=$SECRET HOOKMAIL_SPOOL_DIR="$dir/i$i/spool"
			HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0
			HOOKMAIL_SMTP_HOST=127.0.0.1 HOOKMAIL_SMTP_PORT="$smtp" HOOKMAIL_SMTP_TLS=none
			HOOKMAIL_SMTP_WORKERS="$WORKERS" HOOKMAIL_SHUTDOWN_DRAIN=0 "$@")
		if [[ $backend == postgres ]]; then
			env+=(HOOKMAIL_QUEUE_BACKEND=postgres HOOKMAIL_QUEUE_POSTGRES_URL="$DB_URL")
		fi
		env -u HOOKMAIL_CONFIG -C "$dir/i$i" "${env[@]}" "$WORK/hookmail" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
		HPIDS+=($!)
		PIDS+=($!)
		addr=
		for j in $(seq 300); do
			kill -0 "${HPIDS[-1]}" 2>/dev/null || { tail -5 "$log" >&2; die "hookmail $i exited at start"; }
			addr=$(grep -v 'admin endpoint' "$log" 2>/dev/null | grep -m1 -o 'listening.* addr=[^ ]*' | sed 's/.* addr=//') || true
			[[ -n $addr ]] && curl -fsS -o /dev/null --max-time 1 "http://$addr/healthz" 2>/dev/null && break
			addr=
			sleep 0.1
		done
		[[ -n $addr ]] || die "hookmail $i did not listen and answer /healthz within 30s"
		ADDRS+=("$addr")
	done
}

# stop_instances: SIGTERM to every instance at once, then waits for them.
stop_instances() {
	local pid stoppers=()
	for pid in "${HPIDS[@]}"; do
		stop "$pid" &
		stoppers+=($!)
	done
	wait "${stoppers[@]}"
}

# kill_instances: SIGKILL, for instances whose workers wait on the stalled
# sink (a graceful stop would wait for them) and whose queue is thrown away.
kill_instances() {
	local pid
	for pid in "${HPIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	for pid in "${HPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# metric_sum NAME [FILTER]: metric summed over ADDRS ("?" if one fails).
metric_sum() {
	local a v s=0
	for a in "${ADDRS[@]}"; do
		v=$(ADDR=$a metric "$@")
		[[ $v =~ ^[0-9]+$ ]] || v=0
		s=$((s + v))
	done
	echo "$s"
}

# problems LOG...: the WARN and ERROR lines, but for the sample secret's
# warning at start and the requests wrk leaves in flight when it stops
# (their client gone, the Postgres queue's statement is canceled).
# pg_ticks: the CPU time the Postgres cluster has used so far: the
# postmaster's, its live children's (backends, WAL writer, checkpointer,
# autovacuum), and that of the children it has reaped (cutime and cstime,
# fields 16 and 17): a backend whose client hung up mid-statement ends
# during the run, and its time still counts.
pg_ticks() {
	local pm f pid t=0
	pm=$(head -1 "$PG_TEST_DIR/data/postmaster.pid")
	f=$(cat "/proc/$pm/stat") || { echo 0; return; }
	f=${f##*) }
	read -r -a f <<<"$f"
	t=$((f[11] + f[12] + f[13] + f[14]))
	for pid in /proc/[0-9]*; do
		f=$(cat "$pid/stat" 2>/dev/null) || continue
		f=${f##*) }
		read -r -a f <<<"$f"
		((f[1] == pm)) && t=$((t + f[11] + f[12]))
	done
	echo "$t"
}

problems() {
	cat "$@" | grep -E 'level=(WARN|ERROR)' | grep -v 'sample secret' | grep -cv 'err="postgres: context canceled"' || true
}


declare -A INTAKE E2E LOADS MED CPU

# intake CFG BACKEND K RUN: wrk against K instances with SMTP stalled.
intake() {
	local cfg=$1 backend=$2 k=$3 run=$4 dir threads conns a ports out rps total non2xx sockerr queued la0 la1 code hm0 hm1 pg0 pg1 hmus pgus
	dir=$WORK/r$run-$backend$k-intake
	[[ $backend == postgres ]] && new_database "hb_r${run}_${k}_intake"
	start_instances "$backend" "$k" "$dir" "$STALL_PORT" HOOKMAIL_SMTP_TIMEOUT=10m
	for a in "${ADDRS[@]}"; do
		code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Content-Type: $CONTENT_TYPE" \
			--data-binary @"$WORK/body.txt" "http://$a/webhook") || true
		[[ $code == 200 ]] || die "probe POST to hookmail at $a answered $code"
	done
	# wrk threads go to the instances in turn, so each gets the same share.
	threads=$(((THREADS + k - 1) / k * k))
	conns=$((CONNS / threads * threads))
	post_lua "$dir/post.lua" "${ADDRS[@]##*:}"
	out=$RESULTS/postgres-$STAMP-r$run-$backend$k-intake
	timeout -k 5 120 wrk -t"$threads" -c"$conns" -d"$WARMUP" -s "$dir/post.lua" "http://${ADDRS[0]}/webhook" >"$out-warmup.txt" 2>&1 ||
		die "wrk failed: $(tail -3 "$out-warmup.txt")"
	# CPU used by hookmail and, on postgres, the whole cluster during the
	# run, per request: unlike req/s, it hardly depends on what else runs.
	# When wrk stops, the requests it leaves in flight have their
	# statements canceled, and pgx closes those connections: the pauses
	# let their backends end and be reaped outside the measured span.
	sleep 2
	la0=$(loadavg)
	hm0=$(cpu_ticks "${HPIDS[@]}") pg0=0
	if [[ $backend == postgres ]]; then pg0=$(pg_ticks); fi
	timeout -k 5 300 wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$dir/post.lua" "http://${ADDRS[0]}/webhook" >"$out.txt" 2>&1 ||
		die "wrk failed: $(tail -3 "$out.txt")"
	la1=$(loadavg)
	sleep 2
	hm1=$(cpu_ticks "${HPIDS[@]}") pg1=0
	if [[ $backend == postgres ]]; then pg1=$(pg_ticks); fi
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out.txt")
	total=$(awk '/ requests in / {print $1; exit}' "$out.txt")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out.txt")
	sockerr=$(awk -F'Socket errors: ' 'NF>1 {print $2}' "$out.txt")
	queued=$(metric_sum hookmail_events_received_total 'result="queued"')
	[[ $backend == postgres && $PG_STATS == 1 ]] && pg_top "hb_r${run}_${k}_intake" "$out-statements.txt"
	kill_instances
	hmus=$(awk -v t=$((hm1 - hm0)) -v n="$total" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')
	pgus=$(awk -v t=$((pg1 - pg0)) -v n="$total" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')
	INTAKE[$cfg,$run]=$rps LOADS[$cfg,$run]="${la1%% *}" CPU[$cfg,$run]=$((hmus + pgus))
	say "$(printf '%-11s round %d intake: %6s req/s (%s requests, %s non-2xx, socket errors %s, %s queued in all), CPU per request %sus hookmail + %sus postgres, p50 %s p99 %s, wrk -t%d -c%d; load %s -> %s; %s WARN/ERROR' \
		"$cfg" "$run" "$rps" "$total" "${non2xx:-0}" "${sockerr:-none}" "$queued" "$hmus" "$pgus" \
		"$(awk '/Latency Distribution/ {f=1; next} f && $1=="50%" {print $2; exit}' "$out.txt")" \
		"$(awk '/Latency Distribution/ {f=1; next} f && $1=="99%" {print $2; exit}' "$out.txt")" \
		"$threads" "$conns" "$la0" "$la1" "$(problems "$dir"/i*/hookmail.log)")"
	[[ ${non2xx:-0} == 0 ]] || say "WARNING: $non2xx non-2xx answers; see $dir/i*/hookmail.log (KEEP=1 keeps it)"
}

# e2e CFG BACKEND K RUN: N events posted to K instances delivering into
# smtp-sink; the time from the first post until all are sent.
e2e() {
	local cfg=$1 backend=$2 k=$3 run=$4 dir port per c i ok extra t0 t1 tp sent target elapsed la0 out code rate heys poll left a v
	dir=$WORK/r$run-$backend$k-e2e
	[[ $backend == postgres ]] && new_database "hb_r${run}_${k}_e2e"
	port=$(free_port)
	mkdir -p "$dir"
	start_sink "$port" "$dir/sink.log" -c
	# Every post is the same body, so dedup is off (as in delivery.sh).
	start_instances "$backend" "$k" "$dir" "$port" HOOKMAIL_DEDUP_WINDOW=0
	per=$((N / k)) c=$((POST_CONNS / k))
	((c >= 1)) || c=1
	out=$RESULTS/postgres-$STAMP-r$run-$backend$k-e2e
	la0=$(loadavg)
	t0=$(now)
	heys=()
	for ((i = 0; i < k; i++)); do
		timeout -k 5 300 hey -n "$per" -c "$c" -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" \
			"http://${ADDRS[i]}/webhook" >"$out-hey$i.txt" 2>&1 &
		heys+=($!)
	done
	for i in "${heys[@]}"; do wait "$i" || die "hey failed: $(tail -3 "$out"-hey*.txt)"; done
	ok=$(cat "$out"-hey*.txt | awk '/^ *\[200\]/ {n+=$2} END {print n+0}')
	# hey sends floor(n / c) * c requests: curl posts the rest.
	extra=0
	for ((i = ok; i < N; i++)); do
		code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Content-Type: $CONTENT_TYPE" \
			--data-binary @"$WORK/body.txt" "http://${ADDRS[i % k]}/webhook") || true
		[[ $code == 200 ]] && extra=$((extra + 1))
	done
	tp=$(now)
	ok=$((ok + extra))
	[[ $ok == "$N" ]] || say "WARNING: only $ok of $N posts answered 200"
	target=$(metric_sum hookmail_events_received_total 'result="queued"')
	# Done when the queue is empty: every event acked after the sink took
	# it (or dead, which the sent count below shows). Each scrape counts
	# the queue (on Postgres, a pass over its table), and on Postgres one
	# instance's depth is the whole shared queue's, so one is polled.
	poll=("${ADDRS[@]}")
	[[ $backend == postgres ]] && poll=("${ADDRS[0]}")
	while :; do
		left=0
		for a in "${poll[@]}"; do
			v=$(ADDR=$a metric hookmail_queue_depth)
			[[ $v =~ ^[0-9]+$ ]] || v=1 # no answer: not done
			left=$((left + v))
		done
		((left == 0)) && break
		awk -v a="$t0" -v b="$(now)" -v m="$DRAIN_TIMEOUT" 'BEGIN {exit !(b - a >= m)}' && break
		sleep 0.25
	done
	t1=$(now)
	sent=$(metric_sum hookmail_emails_sent_total)
	elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	rate=$(awk -v n="$sent" -v s="$elapsed" 'BEGIN {printf "%.0f", n / s}')
	stop_instances
	stop "$SINK_PID"
	if ((sent < target)); then
		say "WARNING: only $sent of $target sent within ${DRAIN_TIMEOUT}s"
		rate="$rate*"
	fi
	E2E[$cfg,$run]=$rate
	say "$(printf '%-11s round %d e2e:    %6s emails/s (%s of %s sent in %ss; all posted after %ss at %s req/s); load %s -> %s; %s WARN/ERROR' \
		"$cfg" "$run" "$rate" "$sent" "$target" "$elapsed" \
		"$(awk -v a="$t0" -v b="$tp" 'BEGIN {printf "%.2f", b - a}')" \
		"$(awk -v a="$t0" -v b="$tp" -v n="$ok" 'BEGIN {printf "%.0f", n / (b - a)}')" \
		"$la0" "$(loadavg)" "$(problems "$dir"/i*/hookmail.log)")"
}

# pg_top DB OUT: the statements that took the most time in DB.
pg_top() {
	psql_admin "$(withdb "$ADMIN_URL" "$1")" -F' | ' -c "SELECT round(total_exec_time)::int AS ms, calls,
		round((total_exec_time / calls)::numeric, 3) AS ms_per_call, left(regexp_replace(query, '\s+', ' ', 'g'), 150)
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$1')
		ORDER BY total_exec_time DESC LIMIT 12" >"$2" 2>&1 || true
}

# --- the rounds ----------------------------------------------------------------

# One stalled sink for every intake run: it answers up to DATA, then never,
# so each worker holds one event for smtp.timeout and the queue serves
# intake alone (a refused connection would instead make every event a
# lease and a retry, doubling the writes).
STALL_PORT=$(free_port)
start_sink "$STALL_PORT" "$WORK/stall-sink.log" -w 3600
STALL_PID=$SINK_PID

for ((run = 1; run <= RUNS; run++)); do
	say ""
	say "== round $run of $RUNS (load average $(loadavg))"
	for phase in $PHASES; do
		for cfg in $CONFIGS; do
			"$phase" "$cfg" "${cfg%%:*}" "${cfg##*:}" "$run"
		done
	done
done
stop "$STALL_PID"

# --- table ---------------------------------------------------------------------
say ""
say "medians of $RUNS rounds (each round's figures in brackets); postgres: $PG_SETTINGS"
say "$(printf '%-12s %9s %-22s %9s %-22s %9s  %s' config intake/s '(rounds)' emails/s '(rounds)' 'CPU/req' 'load after intake')"
for cfg in $CONFIGS; do
	i_all= e_all= l_all= c_all=
	for ((run = 1; run <= RUNS; run++)); do
		i_all+="${INTAKE[$cfg,$run]:-} " e_all+="${E2E[$cfg,$run]:-} " l_all+="${LOADS[$cfg,$run]:-} " c_all+="${CPU[$cfg,$run]:-} "
	done
	MED[$cfg]=$(median <<<"$i_all") MED[$cfg,cpu]=$(median <<<"$c_all")
	say "$(printf '%-12s %9s %-22s %9s %-22s %7sus  %s' "${cfg/:/ x}" "${MED[$cfg]}" "(${i_all% })" \
		"$(median <<<"${e_all//\*/}")" "(${e_all% })" "${MED[$cfg,cpu]}" "${l_all% }")"
done
# Each round runs the configurations back to back, so a round's ratio
# compares like with like better than a ratio of medians does.
if [[ " $CONFIGS " == *" spool:1 "* ]]; then
	for cfg in $CONFIGS; do
		[[ $cfg == postgres:* ]] || continue
		r_all=
		for ((run = 1; run <= RUNS; run++)); do
			r_all+="$(awk -v p="${INTAKE[$cfg,$run]:-0}" -v s="${INTAKE[spool:1,$run]:-0}" 'BEGIN {if (s > 0) printf "%.2f", p / s}') "
		done
		say "$(printf '%s intake / spool intake: %s (rounds: %s); CPU per request, spool / %s: %s' "${cfg/:/ x}" \
			"$(median <<<"$r_all" | awk '{printf "%.2f", $1}')" "${r_all% }" "${cfg/:/ x}" \
			"$(awk -v p="${MED[$cfg,cpu]}" -v s="${MED[spool:1,cpu]}" 'BEGIN {if (p > 0) printf "%.2f", s / p}')")"
	done
fi
say "CPU/req: CPU time hookmail (and the Postgres cluster) used during the intake run, per request (the machine's"
say "other processes change it little, unlike req/s); load: the 1-minute load average ($(nproc) CPUs)"
say ""
say "report: $REPORT (raw wrk and hey output next to it)"
