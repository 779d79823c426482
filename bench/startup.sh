#!/usr/bin/env bash
# Start-up benchmark: how long `hookmail serve` takes from exec until it
# answers a webhook 200, on a spool holding a backlog, after a clean stop
# and after a crash (SIGKILL), from a cold page cache when it can drop it.
#
#   bash bench/startup.sh                      # 0, 100k, 200k, 1M queued; 3 runs each
#   SIZES="0 200000" RUNS=5 bash bench/startup.sh
#   REF=main bash bench/startup.sh             # the same for hookmail as of a git ref
#
# Loopback only. Results go to bench/results/ (gitignored). See bench/README.md.
set -euo pipefail

SIZES=${SIZES:-0 100000 200000 1000000}  # events queued
RUNS=${RUNS:-3}                 # timed starts per case; the median is reported
REF=${REF:-}                    # a git ref to measure beside the work tree
CRASH=${CRASH:-1}               # 1: also time starts after SIGKILL
COLD=${COLD:-1}                 # 1: drop the page cache before each start (needs root)
KEEP=${KEEP:-0}                 # 1: keep the temp dir (binaries, spools)
STOP_TIMEOUT=30

BENCH_NAME=startup
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cache=warm
if [[ $COLD == 1 ]] && { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
	cache=cold
fi
drop() { if [[ $cache == cold ]]; then sync && echo 3 >/proc/sys/vm/drop_caches; fi; }

say "# hookmail start-up benchmark $STAMP"
say "# host: $(nproc) CPUs, $(uname -sr); $(go version | cut -d' ' -f3-); load $(cut -d' ' -f1-3 /proc/loadavg)"
say "# git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')${REF:+; ref $REF = $(git -C "$ROOT" rev-parse --short "$REF")}"
say "# page cache: $cache before each start; spool in $WORK"

# build NAME SRC: hookmail, bench/spoolfill and bench/startup from SRC.
# spoolfill is this tree's, built against SRC's spool, so each hookmail
# starts on a spool its own code wrote.
build() {
	local name=$1 src=$2
	mkdir -p "$WORK/$name"
	if [[ $src != "$ROOT" ]]; then
		mkdir -p "$src/bench/spoolfill"
		cp "$ROOT/bench/spoolfill/main.go" "$src/bench/spoolfill/"
	fi
	(cd "$src" && go build -o "$WORK/$name/hookmail" . && go build -o "$WORK/$name/spoolfill" ./bench/spoolfill)
}
build tree "$ROOT"
(cd "$ROOT" && go build -o "$WORK/startup" ./bench/startup)
targets=(tree)
if [[ -n $REF ]]; then
	mkdir -p "$WORK/ref-src"
	git -C "$ROOT" archive "$REF" | tar -x -C "$WORK/ref-src"
	build ref "$WORK/ref-src"
	targets=(ref tree)
fi

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "?"}'; }

# timed BIN DIR [-kill]: one start; prints first_200_s and logs the line.
timed() {
	local out
	drop
	out=$("$WORK/startup" -bin "$1" -dir "$2" "${@:3}") || die "start failed: $out"
	echo "$out" >>"$REPORT"
	awk '{print $4}' <<<"$out"
}

rows=()
for size in $SIZES; do
	for target in "${targets[@]}"; do
		dir=$WORK/$target/spool-$size bin=$WORK/$target/hookmail
		mkdir -p "$dir"
		perEvent=-
		if ((size > 0)); then
			say "## $target: filling a spool with $size events"
			"$WORK/$target/spoolfill" -dir "$dir" -n "$size" | tee -a "$REPORT" >/tmp/spoolfill.$$
			perEvent=$(awk '/^file/ {print $4}' /tmp/spoolfill.$$)
			rm -f /tmp/spoolfill.$$
		fi
		say "## $target, $size queued: $RUNS starts after a clean stop"
		clean=$(for _ in $(seq "$RUNS"); do timed "$bin" "$dir"; done | median)
		crash=-
		if [[ $CRASH == 1 ]]; then
			say "## $target, $size queued: $RUNS starts after SIGKILL"
			timed "$bin" "$dir" -kill >/dev/null # the first start follows a clean stop
			crash=$(for _ in $(seq "$RUNS"); do timed "$bin" "$dir" -kill; done | median)
		fi
		rows+=("$(printf '%-5s %9s %14s %14s %12s' "$target" "$size" "$clean" "$crash" "$perEvent")")
		rm -rf "$dir"
	done
done

say ""
say "# exec to first 200, seconds (median of $RUNS, page cache $cache); file bytes per event"
say "$(printf '%-5s %9s %14s %14s %12s' target queued clean-stop after-crash file/event)"
for r in "${rows[@]}"; do say "$r"; done
say "report: $REPORT"
