#!/usr/bin/env bash
# Delivery benchmark: how many emails per second hookmail delivers end to end
# (spooled webhook -> SMTP -> accepted by Postfix's smtp-sink) with
# smtp.workers = 1, 4 and 16, next to Postfix's smtp-source sending messages
# of the same size to the same sink over the same number of connections.
#
#   bash bench/delivery.sh               # N=5000 emails per run
#   N=3000 WORKERS="1 4" bash bench/delivery.sh
#
# Loopback only. Results go to bench/results/ (gitignored). See bench/README.md.
set -euo pipefail

N=${N:-5000}                     # emails per run
WORKERS=${WORKERS:-"1 4 16"}     # smtp.workers values (and smtp-source sessions)
CONNS=${CONNS:-32}               # hey -c while pre-filling the spool
RETRY=${RETRY:-1s}               # HOOKMAIL_RETRY_INITIAL and HOOKMAIL_RETRY_MAX
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120} # seconds to wait for all N to be sent
STOP_TIMEOUT=${STOP_TIMEOUT:-30} # seconds SIGTERM may take before SIGKILL
KEEP=${KEEP:-0}                  # 1: keep the temp dir (binary, spools, logs)

BENCH_NAME=delivery
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools and binaries ------------------------------------------------------
for t in hey curl ss; do command -v "$t" >/dev/null || die "$t is not installed"; done
[[ -x $SMTP_SINK ]] || die "$SMTP_SINK is not installed (Postfix)"
[[ -x $SMTP_SOURCE ]] || die "$SMTP_SOURCE is not installed (Postfix)"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number"

say "# hookmail delivery benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')"
say "# $N emails per run, workers: $WORKERS; pre-fill with hey -c $CONNS; retry $RETRY; loopback"
say "# work dir: $WORK"

(cd "$ROOT" && go build -o "$WORK/hookmail" .) || die "build failed"
printf '%s' "$BODY" >"$WORK/body.txt"

# Size of one hookmail email, for smtp-source -l.
env -u HOOKMAIL_CONFIG -C "$WORK" HOOKMAIL_SPOOL_DIR="$WORK/render-spool" \
	"$WORK/hookmail" render --body "$WORK/body.txt" >"$WORK/one.eml" || die "hookmail render failed"
SIZE=$(wc -c <"$WORK/one.eml")
say "# one email: $SIZE bytes (hookmail render); smtp-source -l $SIZE"

# --- helpers -------------------------------------------------------------------

# start NAME LOG ADDR CMD...: starts hookmail in the background and waits for
# /healthz; sets ADDR and PID. hookmail logs its "hookmail listening ...
# addr=" line at info, which HOOKMAIL_LOG_LEVEL=warn hides, so it is given
# a free port (--listen ADDR) instead of 127.0.0.1:0.
start() {
	local name=$1 log=$2
	ADDR=$3
	shift 3
	"$@" >"$log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	await_healthz "$name" "$PID" "$ADDR" "$log"
}


declare -A R_FIRST R_HM R_SRC R_HM_S R_SRC_S R_CONN

for W in $WORKERS; do
	# --- hookmail ----------------------------------------------------------------
	say ""
	say "== hookmail, smtp.workers=$W"
	PORT=$(free_port)
	mkdir -p "$WORK/w$W/spool"
	HLOG=$WORK/w$W/hookmail.log
	# The sink is not running yet: every delivery attempt fails and is retried
	# after RETRY, so the spool fills up with N events first.
	HADDR=127.0.0.1:$(free_port)
	start hookmail "$HLOG" "$HADDR" env -u HOOKMAIL_CONFIG -C "$WORK/w$W" \
		HOOKMAIL_WEBHOOK_SECRETS=$SECRET HOOKMAIL_SPOOL_DIR="$WORK/w$W/spool" \
		HOOKMAIL_SMTP_HOST=127.0.0.1 HOOKMAIL_SMTP_PORT="$PORT" HOOKMAIL_SMTP_TLS=none \
		HOOKMAIL_SMTP_WORKERS="$W" HOOKMAIL_LOG_LEVEL=warn \
		HOOKMAIL_DEDUP_WINDOW=0 \
		HOOKMAIL_RETRY_INITIAL="$RETRY" HOOKMAIL_RETRY_MAX="$RETRY" \
		"$WORK/hookmail" serve --listen "$HADDR"
	HPID=$PID
	URL=http://$ADDR/webhook
	say "hookmail on $ADDR (pid $HPID), SMTP to 127.0.0.1:$PORT (sink not started yet)"

	out=$RESULTS/delivery-$STAMP-w$W-hey.txt
	timeout -k 5 300 hey -n "$N" -c "$CONNS" -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" "$URL" \
		>"$out" 2>&1 || die "hey failed: $(tail -3 "$out")"
	OK=$(awk '/^ *\[200\]/ {n+=$2} END {print n+0}' "$out")
	# hey sends floor(N / CONNS) * CONNS requests: post the rest with curl.
	extra=0
	for ((i = OK; i < N; i++)); do
		code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Content-Type: $CONTENT_TYPE" \
			--data-binary @"$WORK/body.txt" "$URL") || true
		[[ $code == 200 ]] && extra=$((extra + 1))
	done
	OK=$((OK + extra))
	QUEUED=$(metric hookmail_events_received_total 'result="queued"')
	SENT0=$(metric hookmail_emails_sent_total)
	[[ $SENT0 != "?" ]] || SENT0=0
	DEPTH=$(metric hookmail_queue_depth)
	say "pre-fill: hey $(awk '/Requests\/sec:/ {print $2}' "$out") req/s, $OK of $N answered 200 ($extra by curl);" \
		"queued $QUEUED, queue depth $DEPTH, sent so far $SENT0"
	[[ $OK == "$N" ]] || say "WARNING: only $OK of $N webhooks answered 200"
	[[ $SENT0 == 0 ]] || say "WARNING: $SENT0 emails were sent before the sink started"
	TARGET=$QUEUED
	[[ $TARGET =~ ^[0-9]+$ ]] || TARGET=$N

	SLOG=$WORK/w$W/sink.log
	t0=$(now)
	start_sink "$PORT" "$SLOG" -c
	SENT=0 MAXCONN=0 tf=
	while :; do
		SENT=$(metric hookmail_emails_sent_total)
		[[ $SENT != "?" ]] || SENT=0
		[[ -z $tf ]] && ((SENT > 0)) && tf=$(now)
		c=$(metric hookmail_smtp_connections)
		[[ $c =~ ^[0-9]+$ ]] && ((c > MAXCONN)) && MAXCONN=$c
		((SENT >= TARGET)) && break
		awk -v a="$t0" -v b="$(now)" -v m="$DRAIN_TIMEOUT" 'BEGIN {exit !(b - a >= m)}' && break
		sleep 0.2
	done
	t1=$(now)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	# The first retry after the sink starts can be up to RETRY away; this is
	# the time from the first poll that saw an email sent.
	FIRST=$(awk -v a="$t0" -v b="${tf:-$t1}" 'BEGIN {printf "%.2f", b - a}')
	FROMFIRST=$(awk -v a="${tf:-$t1}" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	CONN_END=$(metric hookmail_smtp_connections)
	FAILED=$(metric hookmail_emails_failed_total)
	[[ $FAILED != "?" ]] || FAILED=0
	DEAD=$(metric hookmail_dead_letters)
	LEFT=$(metric hookmail_queue_depth)
	if ((SENT >= TARGET)); then
		R_HM[$W]=$(rate "$SENT" "$ELAPSED")
	else
		say "WARNING: only $SENT of $TARGET sent within ${DRAIN_TIMEOUT}s"
		R_HM[$W]="$(rate "$SENT" "$ELAPSED")*"
	fi
	R_HM_S[$W]=$ELAPSED R_FIRST[$W]=$FIRST R_CONN[$W]="$MAXCONN"
	say "delivered: $SENT of $TARGET in ${ELAPSED}s after the sink started = ${R_HM[$W]} emails/s;" \
		"first email seen sent after ${FIRST}s, then $(rate "$SENT" "$FROMFIRST") emails/s;" \
		"smtp connections: max $MAXCONN seen, $CONN_END at the end;" \
		"failed attempts $FAILED (all before the sink), dead $DEAD, left $LEFT"
	stop "$HPID"
	say "hookmail stopped: exit $STOP_RC"
	stop "$SINK_PID"
	grep -E 'level=(WARN|ERROR)' "$HLOG" >"$RESULTS/delivery-$STAMP-w$W-hookmail-problems.log" || true
	N_WARN=$(grep -c 'level=WARN' "$HLOG" || true)
	N_ERR=$(grep -c 'level=ERROR' "$HLOG" || true)
	# Problems logged after the sink came up are the ones that matter.
	say "hookmail log: $(wc -l <"$HLOG") lines, $N_WARN WARN, $N_ERR ERROR"
	if ((N_WARN + N_ERR > 0)); then
		sed -E 's/^time=[^ ]+ //; s/ (id|remote|attempt|retry_in|next|next_attempt)=[^ ]+//g; s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g' \
			"$RESULTS/delivery-$STAMP-w$W-hookmail-problems.log" |
			sort | uniq -c | sort -rn | head -5 | while read -r line; do say "  $line"; done
	fi

	# --- smtp-source ---------------------------------------------------------------
	say "-- smtp-source -s $W -m $N -l $SIZE"
	PORT=$(free_port)
	SLOG=$WORK/w$W/sink-source.log
	start_sink "$PORT" "$SLOG" -c
	out=$RESULTS/delivery-$STAMP-w$W-smtp-source.txt
	t0=$(now)
	timeout -k 5 "$((DRAIN_TIMEOUT + 30))" "$SMTP_SOURCE" -c -d -s "$W" -m "$N" -l "$SIZE" "127.0.0.1:$PORT" \
		>"$out" 2>&1 || die "smtp-source failed: $(tr '\r' '\n' <"$out" | tail -3)"
	t1=$(now)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	sleep 0.2
	stop "$SINK_PID"
	R_SRC[$W]=$(rate "$N" "$ELAPSED") R_SRC_S[$W]=$ELAPSED
	say "sent $N in ${ELAPSED}s = ${R_SRC[$W]} emails/s"
done

# --- table ---------------------------------------------------------------------
say ""
say "$(printf '%-8s %18s %20s %7s %10s %11s' workers hookmail_mail/s smtp-source_mail/s ratio max_conns 1st_sent_at)"
for W in $WORKERS; do
	ratio=$(awk -v h="${R_HM[$W]%\*}" -v s="${R_SRC[$W]}" 'BEGIN {if (s > 0) printf "%.3f", h / s; else print "n/a"}')
	say "$(printf '%-8s %18s %20s %7s %10s %11s' "$W" "${R_HM[$W]} (${R_HM_S[$W]}s)" "${R_SRC[$W]} (${R_SRC_S[$W]}s)" "$ratio" "${R_CONN[$W]}" "${R_FIRST[$W]}s")"
done
say "hookmail time runs from the sink's start (includes up to $RETRY until the first retry) to all $N sent"
say "(* = not all emails were sent within DRAIN_TIMEOUT; rate over what was sent)"
say ""
say "report: $REPORT (raw hey/smtp-source output and hookmail's WARN/ERROR lines next to it)"
