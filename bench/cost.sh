#!/usr/bin/env bash
# Cost benchmark: what one event costs hookmail on the spool, each figure
# measured beside its reference in the same round, ROUNDS rounds, medians.
#
#   intake      wrk -t2 -c64 against `hookmail serve` (delivery held by
#               smtp.rate 1/d) and against bench/baseline, a net/http
#               server that only parses the form: req/s and CPU per request
#   delivery    N events queued, then hookmail restarted on that spool with
#               W workers and Postfix's smtp-sink up: emails/s and CPU per
#               email, next to smtp-source sending N messages of the same
#               size over W sessions to the same kind of sink
#   end to end  N webhooks posted (hey -c 16) to a hookmail delivering to
#               smtp-sink with 4 workers: CPU per email, webhook to SMTP,
#               and the peak resident memory (VmHWM)
#
# hookmail runs as `serve` does by default but for dedup (off, so the
# delivery phases' identical bodies are N events) and the log level (info).
#
#   bash bench/cost.sh                    # 3 rounds, N=20000, about 8 minutes
#   ROUNDS=1 N=5000 bash bench/cost.sh
#   PROFILE=1 bash bench/cost.sh          # also a CPU profile of each hookmail phase
#   REF=959e570 bash bench/cost.sh        # hookmail as of a git ref too, phase by phase
#
# Loopback only. Results go to bench/results/ (gitignored). See bench/README.md.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-20000}                    # events per delivery and end-to-end run
DURATION=${DURATION:-10s}        # measured intake run per target
WARMUP=${WARMUP:-3s}             # unmeasured intake run before it
DRAIN_WORKERS=${DRAIN_WORKERS:-"4 16"}
LOG_LEVEL=${LOG_LEVEL:-info}
PROFILE=${PROFILE:-0}
REF=${REF:-}                     # a git ref to measure in the same rounds, beside the work tree
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
KEEP=${KEEP:-0}

BENCH_NAME=cost
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in wrk hey curl ss; do command -v "$t" >/dev/null || die "$t is not installed"; done
[[ -x $SMTP_SINK && -x $SMTP_SOURCE ]] || die "$SMTP_SINK and $SMTP_SOURCE are needed (Debian's postfix)"
command -v /usr/bin/time >/dev/null || die "/usr/bin/time is needed (Debian's time)"

say "# hookmail cost benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); load at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')${REF:+; ref $REF = $(git -C "$ROOT" rev-parse --short "$REF")}"
say "# $ROUNDS rounds; intake wrk -t2 -c64 ${DURATION}; delivery and end to end N=$N; log level $LOG_LEVEL"
say "# work dir: $WORK"

(cd "$ROOT" && go build -o "$WORK/hookmail" . && go build -o "$WORK/baseline" ./bench/baseline) || die "build failed"
TARGETS=(now)
declare -A BIN=([now]=$WORK/hookmail)
if [[ -n $REF ]]; then
	mkdir -p "$WORK/ref-src"
	git -C "$ROOT" archive "$REF" | tar -x -C "$WORK/ref-src" || die "cannot read $REF"
	(cd "$WORK/ref-src" && go build -o "$WORK/hookmail-ref" .) || die "building $REF failed"
	TARGETS=(ref now)
	BIN[ref]=$WORK/hookmail-ref
fi
printf '%s' "$BODY" >"$WORK/body.txt"
post_lua "$WORK/post.lua"
env -u HOOKMAIL_CONFIG -C "$WORK" HOOKMAIL_SPOOL_DIR="$WORK/render-spool" \
	"$WORK/hookmail" render --body "$WORK/body.txt" >"$WORK/one.eml" || die "hookmail render failed"
SIZE=$(wc -c <"$WORK/one.eml")
SINK_PORT=$(free_port)
start_sink "$SINK_PORT" "$WORK/sink.log" -c
say "# one email: $SIZE bytes; smtp-sink on 127.0.0.1:$SINK_PORT"

# hookmail DIR ADDR [VAR=VALUE...]: starts hookmail (the build of target
# $T) on the spool in DIR, sending to the sink, and waits for /healthz;
# sets ADDR and HPID.
hookmail() {
	local dir=$1
	ADDR=$2
	shift 2
	mkdir -p "$dir"
	env -u HOOKMAIL_CONFIG -C "$dir" HOOKMAIL_WEBHOOK_SECRETS=$SECRET HOOKMAIL_SPOOL_DIR="$dir/spool" \
		HOOKMAIL_SMTP_HOST=127.0.0.1 HOOKMAIL_SMTP_PORT="$SINK_PORT" HOOKMAIL_SMTP_TLS=none \
		HOOKMAIL_DEDUP_WINDOW=0 HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0 HOOKMAIL_LOG_LEVEL="$LOG_LEVEL" \
		"$@" "${BIN[$T]}" serve --listen "$ADDR" >>"$dir/hookmail.log" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
	await_healthz hookmail "$HPID" "$ADDR" "$dir/hookmail.log"
}

# profile DIR NAME SECONDS: takes a CPU profile of the hookmail on DIR's
# spool in the background, from its admin endpoint (PROFILE=1 only).
profile() {
	[[ $PROFILE == 1 ]] || return 0
	local i
	# /healthz answers while the spool still opens; the admin socket comes after.
	for i in $(seq 50); do [[ -S $1/spool/admin.sock ]] && break; sleep 0.1; done
	curl -s --max-time $(($3 + 10)) --unix-socket "$1/spool/admin.sock" -H 'X-Hookmail-Admin: 1' \
		"http://localhost/debug/pprof/profile?seconds=$3" -o "$RESULTS/cost-$STAMP-$2.pprof" &
}

# us TICKS COUNT: CPU microseconds per item.
us() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "n/a"}'; }
# peak_rss PID: the most memory PID has held resident so far, in MiB.
peak_rss() { awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

# wrk_run URL PID OUT: the measured wrk run; sets RPS, TOTAL and TICKS
# (PID's CPU during the run and the second after it, which finishes the
# requests wrk left in flight).
wrk_run() {
	local url=$1 pid=$2 out=$3 c0 non2xx
	timeout -k 5 60 wrk -t2 -c64 -d"$WARMUP" -s "$WORK/post.lua" "$url" >"$out-warmup.txt" 2>&1 || die "wrk failed"
	sleep 1
	c0=$(cpu_ticks "$pid")
	timeout -k 5 120 wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/post.lua" "$url" >"$out.txt" 2>&1 || die "wrk failed"
	sleep 1
	TICKS=$(($(cpu_ticks "$pid") - c0))
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out.txt")
	TOTAL=$(awk '/ requests in / {print $1; exit}' "$out.txt")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out.txt")
	[[ -z $non2xx ]] || say "WARNING: $non2xx non-2xx answers in $out.txt"
}

# fill DIR: queues N events in DIR's spool with delivery held, stops
# hookmail cleanly and sets DEPTH to what the spool holds.
fill() {
	local dir=$1 out ok
	hookmail "$dir" "127.0.0.1:$(free_port)" HOOKMAIL_SMTP_RATE=1/d
	out=$dir/fill-hey.txt
	timeout -k 5 300 hey -n "$N" -c 32 -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" "http://$ADDR/webhook" >"$out" 2>&1 ||
		die "hey failed: $(tail -3 "$out")"
	ok=$(awk '/^ *\[200\]/ {n+=$2} END {print n+0}' "$out")
	((ok > N * 9 / 10)) || die "only $ok of $N webhooks answered 200 while filling"
	stop "$HPID"
	DEPTH=$(env -u HOOKMAIL_CONFIG HOOKMAIL_SPOOL_DIR="$dir/spool" "${BIN[$T]}" queue stats --json 2>/dev/null |
		sed -nE 's/.*"depth": *"?([0-9]+).*/\1/p')
	[[ $DEPTH =~ ^[0-9]+$ ]] || die "cannot read the filled spool's depth"
}

# wait_sent TARGET LIMIT: waits until hookmail has sent TARGET emails, or
# LIMIT seconds; sets SENT.
wait_sent() {
	local target=$1 limit=$2 t0
	t0=$(now)
	while :; do
		SENT=$(metric hookmail_emails_sent_total)
		[[ $SENT =~ ^[0-9]+$ ]] || SENT=0
		((SENT >= target)) && return 0
		awk -v a="$t0" -v b="$(now)" -v m="$limit" 'BEGIN {exit !(b - a >= m)}' && return 0
		sleep 0.25
	done
}

declare -A F # F[figure,round]

for r in $(seq "$ROUNDS"); do
	say ""
	say "== round $r (load $(cut -d' ' -f1 /proc/loadavg))"
	# With REF, the two builds swap places each round (ref first in odd
	# rounds), so neither always runs on the disk and caches the other
	# just left. (The noise is larger still: in one round the same intake
	# code measured 79 us per event in one build and 110 in the other.)
	ORDER=("${TARGETS[@]}")
	((r % 2 == 0 && ${#TARGETS[@]} == 2)) && ORDER=("${TARGETS[1]}" "${TARGETS[0]}")

	# --- intake: hookmail, then the parse-only baseline ------------------------
	for T in "${ORDER[@]}"; do
		dir=$WORK/r$r-$T-intake
		hookmail "$dir" "127.0.0.1:$(free_port)" HOOKMAIL_SMTP_RATE=1/d
		profile "$dir" "r$r-$T-intake" 10
		wrk_run "http://$ADDR/webhook" "$HPID" "$RESULTS/cost-$STAMP-r$r-intake-$T"
		F[$T.intake_rps,$r]=$RPS F[$T.intake_us,$r]=$(us "$TICKS" "$TOTAL")
		stop "$HPID"
		rm -rf "$dir"
		say "intake, $T: ${F[$T.intake_rps,$r]} req/s, ${F[$T.intake_us,$r]} us CPU per event"
	done
	BADDR=127.0.0.1:$(free_port)
	"$WORK/baseline" -listen "$BADDR" >"$WORK/baseline.log" 2>&1 &
	BPID=$!
	PIDS+=("$BPID")
	for i in $(seq 50); do curl -fsS -o /dev/null --max-time 1 "http://$BADDR/healthz" 2>/dev/null && break; sleep 0.1; done
	wrk_run "http://$BADDR/webhook" "$BPID" "$RESULTS/cost-$STAMP-r$r-intake-baseline"
	F[base_rps,$r]=$RPS F[base_us,$r]=$(us "$TICKS" "$TOTAL")
	stop "$BPID"
	say "intake, parse-only: ${F[base_rps,$r]} req/s, ${F[base_us,$r]} us CPU per request"

	# --- delivery only: drain N queued events, then smtp-source ----------------
	for w in $DRAIN_WORKERS; do
		for T in "${ORDER[@]}"; do
			dir=$WORK/r$r-$T-drain$w
			fill "$dir"
			t0=$(now)
			hookmail "$dir" "127.0.0.1:$(free_port)" HOOKMAIL_SMTP_WORKERS="$w"
			c0=$(cpu_ticks "$HPID")
			depth=$DEPTH
			profile "$dir" "r$r-$T-drain$w" 3
			wait_sent "$depth" 300
			secs=$(since "$t0")
			ticks=$(($(cpu_ticks "$HPID") - c0))
			stop "$HPID"
			rm -rf "$dir"
			F[$T.drain_rps_$w,$r]=$(rate "$SENT" "$secs") F[$T.drain_us_$w,$r]=$(us "$ticks" "$SENT")
			say "drain, $w workers, $T: $SENT of $depth in ${secs}s = ${F[$T.drain_rps_$w,$r]} emails/s, ${F[$T.drain_us_$w,$r]} us CPU per email (start-up included)"
		done
		/usr/bin/time -f '%e %U %S' -o "$WORK/source-time" \
			"$SMTP_SOURCE" -d -s "$w" -m "$N" -l "$SIZE" "127.0.0.1:$SINK_PORT" >"$WORK/source.log" 2>&1 ||
			die "smtp-source failed: $(tail -3 "$WORK/source.log")"
		read -r e u s <"$WORK/source-time"
		F[src_rps_$w,$r]=$(rate "$N" "$e")
		F[src_us_$w,$r]=$(awk -v u="$u" -v s="$s" -v n="$N" 'BEGIN {printf "%.0f", (u + s) * 1e6 / n}')
		say "drain, smtp-source -s $w: ${F[src_rps_$w,$r]} emails/s, ${F[src_us_$w,$r]} us per email"
	done

	# --- end to end: webhook to SMTP -------------------------------------------
	for T in "${ORDER[@]}"; do
		dir=$WORK/r$r-$T-e2e
		hookmail "$dir" "127.0.0.1:$(free_port)" HOOKMAIL_SMTP_WORKERS=4
		c0=$(cpu_ticks "$HPID")
		t0=$(now)
		profile "$dir" "r$r-$T-e2e" 5
		timeout -k 5 300 hey -n "$N" -c 16 -m POST -T "$CONTENT_TYPE" -D "$WORK/body.txt" "http://$ADDR/webhook" >"$dir/hey.txt" 2>&1 ||
			die "hey failed: $(tail -3 "$dir/hey.txt")"
		ok=$(awk '/^ *\[200\]/ {n+=$2} END {print n+0}' "$dir/hey.txt")
		wait_sent "$ok" 300
		secs=$(since "$t0")
		ticks=$(($(cpu_ticks "$HPID") - c0))
		F[$T.e2e_rss,$r]=$(peak_rss "$HPID")
		stop "$HPID"
		rm -rf "$dir"
		F[$T.e2e_us,$r]=$(us "$ticks" "$SENT")
		say "end to end, $T: $ok webhooks answered 200, $SENT emails sent in ${secs}s, ${F[$T.e2e_us,$r]} us CPU per email, peak RSS ${F[$T.e2e_rss,$r]} MiB"
	done
done

med() {
	local k=$1 r all=
	for r in $(seq "$ROUNDS"); do all+="${F[$k,$r]:-} "; done
	echo "$(median <<<"$all")"
}
rounds() {
	local k=$1 r all=
	for r in $(seq "$ROUNDS"); do all+="${F[$k,$r]:-}/"; done
	echo "${all%/}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

say ""
say "# medians of $ROUNDS rounds (each round's figures after the median)"
row() { say "$(printf '%-46s %-26s %-34s %s' "$@")"; }
row figure hookmail reference ratio
for T in "${TARGETS[@]}"; do
	name=hookmail
	[[ $T == ref ]] && name="hookmail as of $REF"
	say "## $name"
	row "intake req/s, wrk -c64" "$(med $T.intake_rps) ($(rounds $T.intake_rps))" "parse-only $(med base_rps) ($(rounds base_rps))" "$(ratio "$(med $T.intake_rps)" "$(med base_rps)")"
	row "CPU per event, intake only (us)" "$(med $T.intake_us) ($(rounds $T.intake_us))" "parse-only $(med base_us) ($(rounds base_us))" ""
	row "CPU per email, webhook to SMTP, 4 workers (us)" "$(med $T.e2e_us) ($(rounds $T.e2e_us))" "" ""
	row "peak RSS, webhook to SMTP (MiB)" "$(med $T.e2e_rss) ($(rounds $T.e2e_rss))" "" ""
	for w in $DRAIN_WORKERS; do
		row "CPU per email, delivery only, $w workers (us)" "$(med $T.drain_us_$w) ($(rounds $T.drain_us_$w))" "smtp-source $(med src_us_$w) ($(rounds src_us_$w))" ""
		row "emails/s draining $N, $w workers" "$(med $T.drain_rps_$w) ($(rounds $T.drain_rps_$w))" "smtp-source $(med src_rps_$w) ($(rounds src_rps_$w))" "$(ratio "$(med $T.drain_rps_$w)" "$(med src_rps_$w)")"
	done
done
say ""
say "report: $REPORT"
