#!/usr/bin/env bash
# bench/run.sh: motehub against Mosquitto, side by side, as BENCHMARKS.md asks.
#
#   make bench                    # the full matrix (about 1.5 hours), then docs/benchmarks.md
#   BENCH_QUICK=1 make bench      # a smoke test (a few minutes): 1 repeat, short windows, a small matrix
#
# It builds hub and hubbench, then re-runs itself inside `unshare --net` (a network
# namespace with only loopback: Mosquitto's WebSocket listener binds every address),
# raises the open-file limit, and for each run starts a fresh target (the hub, or
# Mosquitto with a generated config) on free loopback ports, runs `hubbench run`
# against it, and stops it by its PID. Results go to a JSON-lines file; the report
# is regenerated from it at the end.
#
# Environment (defaults for the full run; BENCH_QUICK=1 changes them):
#   BENCH_REPEATS   repeats per cell                          3        (quick: 1)
#   BENCH_WARMUP    warm-up                                   5s       (quick: 2s)
#   BENCH_MEASURE   measured window                           15s      (quick: 5s)
#   BENCH_SUBS      subscriber counts, in the order run       "1000 100 5000"   (quick: "100 1000")
#   BENCH_LOADS     offered deliveries/s                      "10000 50000 100000 200000 400000" (quick: "10000 100000")
#   BENCH_SERIES    series: hub-ws hub-ws-batch hub-sse mosq-ws (all)
#   BENCH_PROBE     1: the 10 msg/s latency probe per subscriber count (1)
#   BENCH_EXTRAS    1: unpinned and GOMAXPROCS=1 runs, and the batch ceiling (1)
#   BENCH_PROFILE   1: perf profile of the hub under 1,000 WS subscribers (1)
#   BENCH_MANY      many clients: this many WS (and Mosquitto WS) subscribers of one target,
#                   unpinned, 10 msg/s broadcast; fewer when the open-file limit does not allow
#                   as many (the shortfall is recorded); 0: not run   50000    (quick: 0)
#   BENCH_OUT       results file; the profile goes beside it
#                   (bench/results/full.jsonl; quick: bench/results/quick/results.jsonl)
#   BENCH_REPORT    report to write   (docs/benchmarks.md; quick: bench/results/quick/benchmarks.md)
#   BENCH_MAX_FOREIGN  CPU (cores) other processes may use during a run before it is tried again;
#                   0 turns the check and the wait for a quiet machine off (0.3)
#   BENCH_TRIES     tries per run, the last recorded whatever happened (3)
#   BENCH_QUIET_TIMEOUT  longest wait for a quiet machine before a try (30s)
#   BENCH_APPEND    1: add to an existing results file instead of starting a new one (0);
#                   e.g. BENCH_APPEND=1 BENCH_SUBS= BENCH_EXTRAS=0 make bench redoes only the profile
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	: "${BENCH_REPEATS:=1}" "${BENCH_WARMUP:=2s}" "${BENCH_MEASURE:=5s}"
	: "${BENCH_SUBS:=100 1000}" "${BENCH_LOADS:=10000 100000}"
	: "${BENCH_OUT:=bench/results/quick/results.jsonl}" "${BENCH_REPORT:=bench/results/quick/benchmarks.md}"
	: "${BENCH_MANY:=0}"
	MODE=quick
else
	: "${BENCH_REPEATS:=3}" "${BENCH_WARMUP:=5s}" "${BENCH_MEASURE:=15s}"
	: "${BENCH_SUBS:=1000 100 5000}" "${BENCH_LOADS:=10000 50000 100000 200000 400000}"
	: "${BENCH_OUT:=bench/results/full.jsonl}" "${BENCH_REPORT:=docs/benchmarks.md}"
	: "${BENCH_MANY:=50000}"
	MODE=full
fi
: "${BENCH_SERIES:=hub-ws mosq-ws hub-sse hub-ws-batch}" "${BENCH_PROBE:=1}" "${BENCH_EXTRAS:=1}" "${BENCH_PROFILE:=1}"
: "${BENCH_MAX_FOREIGN:=0.3}" "${BENCH_TRIES:=3}" "${BENCH_QUIET_TIMEOUT:=30s}"
export BENCH_REPEATS BENCH_WARMUP BENCH_MEASURE BENCH_SUBS BENCH_LOADS BENCH_OUT BENCH_REPORT
export BENCH_SERIES BENCH_PROBE BENCH_EXTRAS BENCH_PROFILE BENCH_QUICK BENCH_MANY
export BENCH_MAX_FOREIGN BENCH_TRIES BENCH_QUIET_TIMEOUT

if [ "${BENCH_IN_NETNS:-0}" != 1 ]; then
	for cmd in mosquitto taskset unshare ip; do
		command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install mosquitto util-linux iproute2)" >&2; exit 1; }
	done
	BENCH_WORK=$(mktemp -d /tmp/hubbench.XXXXXX)
	export BENCH_WORK
	echo "bench: building hub and hubbench into $BENCH_WORK" >&2
	go build -o "$BENCH_WORK/hub" ./cmd/hub
	go build -o "$BENCH_WORK/hubbench" ./cmd/hubbench
	rc=0
	BENCH_IN_NETNS=1 unshare --net "$0" "$@" || rc=$?
	rm -rf "$BENCH_WORK"
	exit "$rc"
fi

# --- inside the network namespace from here on ---
ip link set lo up
if ! ulimit -n 65536 2>/dev/null; then
	ulimit -n "$(ulimit -Hn)"
	echo "bench: cannot raise the open-file limit to 65536; it is $(ulimit -n)" >&2
fi
WORK=$BENCH_WORK
HB=$WORK/hubbench
OUT=$BENCH_OUT
mkdir -p "$(dirname "$OUT")" "$(dirname "$BENCH_REPORT")"
if [ "${BENCH_APPEND:-0}" != 1 ] && [ -f "$OUT" ]; then mv "$OUT" "$OUT.prev"; fi
MQ_VERSION=$(mosquitto -h 2>/dev/null | head -n1 | sed 's/^mosquitto version //') || true
COMMAND="make bench"
[ "$MODE" = quick ] && COMMAND="BENCH_QUICK=1 make bench"
[ -s "$OUT" ] || "$HB" meta -out "$OUT" -mode "$MODE" -mosquitto "$MQ_VERSION" -command "$COMMAND" \
	-notes "repeats $BENCH_REPEATS, warm-up $BENCH_WARMUP, measured $BENCH_MEASURE; hub --log-level warn --data '' --mqtt-rate-limit -1, connection limits 100000; Mosquitto: max_queued_messages 4096 (the hub's per-client queue bound; default 1000), set_tcp_nodelay true, persistence false; ulimit -n $(ulimit -n)"

TPID=""
stop_target() {
	[ -n "$TPID" ] || return 0
	kill -TERM "$TPID" 2>/dev/null || true
	for _ in $(seq 1 100); do # up to 10 s
		kill -0 "$TPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$TPID" 2>/dev/null || true
	wait "$TPID" 2>/dev/null || true
	TPID=""
}
trap stop_target EXIT
trap 'stop_target; exit 130' INT TERM

# start_target TARGET VARIANT: a fresh target on free ports; sets TPID, SUB, PUB, GCTRACE.
start_target() {
	local target=$1 variant=$2 pin="" gomax="" ports p1 p2
	[ "$variant" = pinned ] && pin="taskset -c 0"
	[ "$variant" = gomaxprocs1 ] && gomax="GOMAXPROCS=1"
	ports=$("$HB" freeport -n 2)
	p1=$(echo "$ports" | sed -n 1p)
	p2=$(echo "$ports" | sed -n 2p)
	case $target in
	motehub)
		GCTRACE=$WORK/gctrace.log
		: >"$GCTRACE"
		env GODEBUG=gctrace=1 $gomax $pin "$WORK/hub" --http "127.0.0.1:$p1" --mqtt "127.0.0.1:$p2" --log-level warn \
			--data "" --max-connections 100000 --max-connections-per-address 100000 --mqtt-max-sessions 100000 --mqtt-rate-limit -1 \
			>"$WORK/hub.log" 2>"$GCTRACE" &
		TPID=$!
		SUB=127.0.0.1:$p1 PUB=127.0.0.1:$p2
		;;
	mosquitto)
		GCTRACE=""
		cat >"$WORK/mosquitto.conf" <<-EOF
			per_listener_settings false
			allow_anonymous true
			persistence false
			max_queued_messages 4096
			set_tcp_nodelay true
			log_dest stderr
			log_type error
			log_type warning
			listener $p1 127.0.0.1
			listener $p2 127.0.0.1
			protocol websockets
		EOF
		$pin mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
		TPID=$!
		SUB=127.0.0.1:$p2 PUB=127.0.0.1:$p1
		;;
	esac
	if ! "$HB" wait -timeout 10s "$PUB" "$SUB"; then
		echo "bench: $target did not start:" >&2
		cat "$WORK/hub.log" "$WORK/mosquitto.log" 2>/dev/null | tail -n 20 >&2
		stop_target
		return 1
	fi
}

series_target() { case $1 in mosq-*) echo mosquitto ;; *) echo motehub ;; esac; }
series_transport() {
	case $1 in
	hub-ws) echo ws ;; hub-ws-batch) echo ws-batch ;; hub-sse) echo sse ;; mosq-ws) echo mqtt-ws ;;
	*) echo "bench: unknown series $1" >&2; return 1 ;;
	esac
}

# one_run SERIES VARIANT SUBS RATE REPEAT OUTFILE [hubbench run flags...]
# Each try waits for the machine to be quiet first; a run that other processes
# competed with (more than BENCH_MAX_FOREIGN cores) is tried again, and the
# last try is recorded whatever happened.
one_run() {
	local s=$1 variant=$2 n=$3 rate=$4 rep=$5 out=$6 pinl=""
	shift 6
	local target transport attempt rc
	target=$(series_target "$s")
	transport=$(series_transport "$s")
	[ "$variant" = pinned ] && pinl="taskset -c 1"
	local extra=()
	[ "$target" = motehub ] && extra=(-dump-on-stall)
	for attempt in $(seq 1 "$BENCH_TRIES"); do
		local tries=(-attempt "$attempt")
		if [ "$BENCH_MAX_FOREIGN" != 0 ]; then
			"$HB" quiet -max "$BENCH_MAX_FOREIGN" -for 2s -timeout "$BENCH_QUIET_TIMEOUT"
			tries+=(-max-foreign "$BENCH_MAX_FOREIGN")
			[ "$attempt" = "$BENCH_TRIES" ] && tries+=(-last-try)
		fi
		echo "bench: $variant $s subs=$n rate=$rate/s repeat=$rep try=$attempt" >&2
		start_target "$target" "$variant" || {
			"$HB" skip -out "$out" -variant "$variant" -target "$target" -transport "$transport" -subs "$n" \
				-offered "$(awk "BEGIN{print $n*$rate}")" -reason "the target did not start"
			return 0
		}
		rc=0
		$pinl "$HB" run -target "$target" -transport "$transport" -variant "$variant" -repeat "$rep" \
			-sub "$SUB" -pub "$PUB" -pid "$TPID" -gctrace "$GCTRACE" -subs "$n" -rate "$rate" \
			-warmup "$BENCH_WARMUP" -measure "$BENCH_MEASURE" -out "$out" "${extra[@]}" "${tries[@]}" "$@" || rc=$?
		stop_target
		# A hub that delivered nothing was asked for its goroutine stacks: keep them.
		if [ -n "$GCTRACE" ] && grep -q '^goroutine ' "$GCTRACE"; then
			STALLS=$((STALLS + 1))
			cp "$GCTRACE" "$(dirname "$OUT")/stall-$STALLS-$variant-$s-$n-$rate.txt"
			echo "bench: the hub delivered nothing; its stacks are in $(dirname "$OUT")/stall-$STALLS-*.txt" >&2
		fi
		case $rc in
		0) return 0 ;;
		3) echo "bench: other processes used the CPU during the run; trying again" >&2 ;;
		*) echo "bench: the run failed; its error is in $out" >&2; return 0 ;;
		esac
	done
}
STALLS=0

# matrix VARIANT "SERIES..." "SUBS..." "LOADS..." [probe]: every cell, the series
# alternated (A B A B, the order flipped every repeat); a series that is
# saturated at a load skips the higher loads at that subscriber count.
matrix() {
	local variant=$1 sers=$2 subs=$3 loads=$4 probe=${5:-0}
	local n load rate rep s order target transport
	for n in $subs; do
		local saturated=" "
		if [ "$probe" = 1 ]; then
			for rep in $(seq 1 "$BENCH_REPEATS"); do
				for s in $sers; do one_run "$s" "$variant" "$n" 10 "$rep" "$OUT" -probe; done
			done
		fi
		for load in $loads; do
			rate=$(awk "BEGIN{print $load/$n}")
			for rep in $(seq 1 "$BENCH_REPEATS"); do
				order=$sers
				[ $((rep % 2)) = 0 ] && order=$(echo "$sers" | tr ' ' '\n' | tac | tr '\n' ' ')
				for s in $order; do
					case $saturated in *" $s "*) continue ;; esac
					one_run "$s" "$variant" "$n" "$rate" "$rep" "$OUT"
				done
			done
			for s in $sers; do
				target=$(series_target "$s")
				transport=$(series_transport "$s")
				case $saturated in
				*" $s "*)
					"$HB" skip -out "$OUT" -variant "$variant" -target "$target" -transport "$transport" -subs "$n" \
						-offered "$load" -reason "not run: saturated at a lower load (every repeat < 90 % delivered or p99 > 1 s)"
					;;
				*)
					if "$HB" saturated -in "$OUT" -variant "$variant" -target "$target" -transport "$transport" -subs "$n" -offered "$load"; then
						saturated="$saturated$s "
					fi
					;;
				esac
			done
		done
	done
}

# The profile: perf on the hub during a 1,000-subscriber WS run at 100k deliveries/s.
if [ "$BENCH_PROFILE" = 1 ]; then
	if command -v perf >/dev/null; then
		secs=$(awk "BEGIN{d=\"$BENCH_MEASURE\"; sub(/s$/,\"\",d); print d}")
		rm -f "$WORK/perf.data"
		one_run hub-ws pinned 1000 100 1 "$WORK/profile.jsonl" \
			-during "perf record -e cpu-clock -F 499 -g -o $WORK/perf.data -p \$PID -- sleep $secs 2>/dev/null"
		if [ -s "$WORK/perf.data" ]; then
			pdir=$(dirname "$OUT")
			report() { perf report -i "$WORK/perf.data" --stdio -g none "$@" 2>/dev/null || true; }
			report --no-children --sort symbol >"$pdir/profile-self.txt"
			report --children --sort symbol >"$pdir/profile-children.txt"
			report --no-children --sort dso >"$pdir/profile-dso.txt"
			report --no-children --sort symbol --dsos hub >"$pdir/profile-user.txt"
		fi
	else
		echo "bench: perf is missing (apt-get install linux-perf): no profile" >&2
	fi
fi

matrix pinned "$BENCH_SERIES" "$BENCH_SUBS" "$BENCH_LOADS" "$BENCH_PROBE"

if [ "$BENCH_EXTRAS" = 1 ]; then
	if [ "$MODE" = quick ]; then
		matrix unpinned "hub-ws mosq-ws" 1000 100000
		matrix gomaxprocs1 "hub-ws" 1000 100000
	else
		case " $BENCH_SERIES " in *" hub-ws-batch "*)
			matrix pinned hub-ws-batch 1000 "800000 1600000 2400000" ;;
		esac
		matrix unpinned "hub-ws mosq-ws" 1000 "100000 200000 400000"
		matrix gomaxprocs1 "hub-ws" 1000 "100000 200000 400000"
	fi
fi

# Many clients: one target, BENCH_MANY WebSocket subscribers, a 10 msg/s broadcast. Each side
# needs a descriptor per client, so the open-file limit may allow fewer: then the full count is
# recorded as not run, with the reason, and the most that fit are measured.
if [ "$BENCH_MANY" != 0 ]; then
	fit=$(($(ulimit -n) - 500))
	many=$BENCH_MANY
	if [ "$many" -gt "$fit" ]; then
		for s in hub-ws mosq-ws; do
			"$HB" skip -out "$OUT" -variant unpinned -target "$(series_target "$s")" -transport "$(series_transport "$s")" \
				-subs "$many" -offered "$((many * 10))" -reason "ulimit -n is $(ulimit -n) here; measured with $fit subscribers"
		done
		many=$fit
	fi
	matrix unpinned "hub-ws mosq-ws" "$many" "$((many * 10))"
fi

notes_flags=()
[ -f bench/notes.md ] && [ "$MODE" = full ] && notes_flags=(-notes bench/notes.md)
"$HB" report -in "$OUT" -out "$BENCH_REPORT" -command "$COMMAND" -profile-dir "$(dirname "$OUT")" "${notes_flags[@]}"
echo "bench: results in $OUT, report in $BENCH_REPORT" >&2
