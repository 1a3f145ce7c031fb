#!/usr/bin/env bash
# bench/run.sh: motehub against its peers (Centrifugo, NATS server, Mosquitto), side by side,
# as BENCHMARKS.md asks.
#
#   make bench                    # every run, every target, then docs/benchmarks.md
#   BENCH_QUICK=1 make bench      # a smoke test (a few minutes): every run and target, tiny counts
#
# It builds hub and hubbench, builds the Go peers once into a cache outside the repository
# (bench/peers.sh), then re-runs itself inside `unshare --net` (a network namespace with only
# loopback: Mosquitto's WebSocket listener binds every address), raises the open-file limit,
# and for each run starts a fresh target on free loopback ports, runs hubbench against it, and
# stops it by its PID. Results go to a JSON-lines file; the report is regenerated from it.
#
# The runs (BENCH_RUNS, any of them, in this order):
#   idle     memory per idle client, nothing published: WebSocket clients (all four targets),
#            SSE streams (motehub), MQTT/TCP devices with one subscription each (motehub and
#            Mosquitto; connect rate too), then as many devices as the open-file limit allows
#   many     many WebSocket subscribers of one target at a few msg/s each (all four)
#   ingest   hubbench ingest: MQTT devices on their own topics -> dashboards on '#', a rate sweep
#            per series (BENCH_INGEST_SERIES), the series alternated at each rate (A B A B, the
#            order flipped every repeat), stopping a series at the first rate it does not sustain
#            (>= 99.9 % delivered, p99 < 1 s, nobody cut off; without dashboards: the devices on
#            time)
#   matrix   the fan-out matrix: subscriber counts x offered loads, the 10 msg/s probe, the perf
#            profile of the hub, and the extras (unpinned, GOMAXPROCS=1, the batch ceiling)
#   cluster  not in the default set (ask for it: BENCH_RUNS=cluster): hub replicas in front of a
#            three-node NATS cluster against one replica, 1,000 WebSocket subscribers, every
#            process's CPU (bench/cluster.sh, which says how); its own results file,
#            BENCH_CLUSTER_OUT, and its own section of the report. About 7 minutes without retries
#            (12 here with BENCH_TRIES=2 on a shared machine; quick: under a minute);
#            asked for alone, it leaves BENCH_OUT alone and regenerates the report from the
#            results file the report already names (BENCH_REPORT_IN to choose another)
#
# Environment (defaults for the full run; BENCH_QUICK=1 changes them):
#   BENCH_RUNS      which runs                                  "idle many ingest matrix"
#   BENCH_TARGETS   which targets                               "motehub centrifugo nats mosquitto"
#   BENCH_CACHE     where bench/peers.sh keeps the peers' binaries (${XDG_CACHE_HOME:-$HOME/.cache}/motehub-bench)
#   BENCH_REPEATS   repeats per cell                            3        (quick: 1)
#   BENCH_WARMUP    warm-up                                     5s       (quick: 2s)
#   BENCH_MEASURE   measured window                             15s      (quick: 5s)
#   idle:
#   BENCH_IDLE_WS       idle WebSocket clients (and SSE streams)     5000   (quick: 200)
#   BENCH_IDLE_DEVICES  idle MQTT devices                            2000   (quick: 200)
#   BENCH_IDLE_MAX      1: also as many devices as the open-file limit allows, up to 100,000 (1; quick: 0)
#   many:
#   BENCH_MANY          cells as SUBSxRATE (msg/s)                   "10000x10 19000x5"  (quick: "5500x2")
#   BENCH_MANY_VARIANT  placement                                    pinned
#   ingest:
#   BENCH_INGEST_SERIES     any of hub hub-data hub-history hub-latest mosq   "hub hub-data hub-history hub-latest mosq":
#                           hub          motehub without --data
#                           hub-data     motehub --data DIR --history-bytes 0 (persistence, no history)
#                           hub-history  motehub --data DIR, history on with its defaults (the same
#                                        run otherwise: hub-history against hub-data is history's cost)
#                           hub-latest   motehub without --data, dashboards with overflow "latest"
#                           mosq         Mosquitto, dashboards speaking MQTT over WebSocket
#   BENCH_INGEST_RATES      msg/s, all devices, ascending           "5000 10000 20000 30000 40000 50000 60000 80000" (quick: "2000")
#   BENCH_INGEST_DEVICES    devices                                 2000   (quick: 200)
#   BENCH_INGEST_DASHBOARDS dashboards on '#' (0: none, the devices only)  10
#   BENCH_INGEST_VARIANT    placement                               pinned
#   matrix:
#   BENCH_SUBS      subscriber counts, in the order run       "1000 100 5000"   (quick: "1000")
#   BENCH_LOADS     offered deliveries/s                      "10000 50000 100000 200000 400000" (quick: "100000")
#   BENCH_SERIES    hub-ws mosq-ws cent-ws nats-ws hub-sse hub-ws-batch (all; filtered by BENCH_TARGETS)
#   BENCH_PROBE     1: the 10 msg/s latency probe per subscriber count (1)
#   BENCH_EXTRAS    1: unpinned and GOMAXPROCS=1 runs, and the batch ceiling (1)
#   BENCH_PROFILE   1: perf profile of the hub under 1,000 WS subscribers (1)
#   cluster (bench/cluster.sh):
#   BENCH_CLUSTER_SUBS      WebSocket subscribers                   1000
#   BENCH_CLUSTER_RATES     msg/s, each a set of runs               "100 400"  (quick: "100")
#   BENCH_CLUSTER_LAYOUTS   replica counts compared                 "2 1"
#   BENCH_CLUSTER_OUT       results file  (bench/results/cluster.jsonl; quick: bench/results/quick/cluster.jsonl)
#   output and the machine:
#   BENCH_OUT       results file; the profile goes beside it
#                   (bench/results/full.jsonl; quick: bench/results/quick/results.jsonl)
#   BENCH_REPORT    report to write   (docs/benchmarks.md; quick: bench/results/quick/benchmarks.md)
#   BENCH_REPORT_IN the results the report is made from (BENCH_OUT; with BENCH_RUNS=cluster alone,
#                   the file BENCH_REPORT names in its first lines, if it is there)
#   BENCH_MAX_FOREIGN  CPU (cores) other processes may use during a run before it is tried again;
#                   0 turns the check and the wait for a quiet machine off (0.3)
#   BENCH_TRIES     tries per run, the last recorded whatever happened (3; quick: 1)
#   BENCH_QUIET_TIMEOUT  longest wait for a quiet machine before a try (30s; quick: 5s)
#   BENCH_APPEND    1: add to an existing results file instead of starting a new one (0); a cell
#                   measured again replaces its earlier runs in the report (the latest session wins),
#                   so e.g. BENCH_APPEND=1 BENCH_TARGETS=motehub make bench redoes motehub's runs and
#                   keeps the peers'
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	: "${BENCH_REPEATS:=1}" "${BENCH_WARMUP:=2s}" "${BENCH_MEASURE:=5s}"
	: "${BENCH_SUBS:=1000}" "${BENCH_LOADS:=100000}"
	: "${BENCH_OUT:=bench/results/quick/results.jsonl}" "${BENCH_REPORT:=bench/results/quick/benchmarks.md}"
	: "${BENCH_IDLE_WS:=200}" "${BENCH_IDLE_DEVICES:=200}" "${BENCH_IDLE_MAX:=0}"
	: "${BENCH_MANY:=5500x2}"
	: "${BENCH_INGEST_RATES:=2000}" "${BENCH_INGEST_DEVICES:=200}"
	: "${BENCH_CLUSTER_RATES:=100}" "${BENCH_CLUSTER_OUT:=bench/results/quick/cluster.jsonl}"
	: "${BENCH_TRIES:=1}" "${BENCH_QUIET_TIMEOUT:=5s}" # a smoke test: no waiting out the neighbours
	MODE=quick
else
	: "${BENCH_REPEATS:=3}" "${BENCH_WARMUP:=5s}" "${BENCH_MEASURE:=15s}"
	: "${BENCH_SUBS:=1000 100 5000}" "${BENCH_LOADS:=10000 50000 100000 200000 400000}"
	: "${BENCH_OUT:=bench/results/full.jsonl}" "${BENCH_REPORT:=docs/benchmarks.md}"
	: "${BENCH_IDLE_WS:=5000}" "${BENCH_IDLE_DEVICES:=2000}" "${BENCH_IDLE_MAX:=1}"
	: "${BENCH_MANY:=10000x10 19000x5}"
	: "${BENCH_INGEST_RATES:=5000 10000 20000 30000 40000 50000 60000 80000}" "${BENCH_INGEST_DEVICES:=2000}"
	: "${BENCH_CLUSTER_RATES:=100 400}" "${BENCH_CLUSTER_OUT:=bench/results/cluster.jsonl}"
	MODE=full
fi
: "${BENCH_RUNS:=idle many ingest matrix}" "${BENCH_TARGETS:=motehub centrifugo nats mosquitto}"
: "${BENCH_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/motehub-bench}"
: "${BENCH_SERIES:=hub-ws mosq-ws cent-ws nats-ws hub-sse hub-ws-batch}" "${BENCH_PROBE:=1}" "${BENCH_EXTRAS:=1}" "${BENCH_PROFILE:=1}"
: "${BENCH_MANY_VARIANT:=pinned}"
: "${BENCH_INGEST_SERIES:=hub hub-data hub-history hub-latest mosq}" "${BENCH_INGEST_DASHBOARDS:=10}" "${BENCH_INGEST_VARIANT:=pinned}"
: "${BENCH_MAX_FOREIGN:=0.3}" "${BENCH_TRIES:=3}" "${BENCH_QUIET_TIMEOUT:=30s}"
export BENCH_REPEATS BENCH_WARMUP BENCH_MEASURE BENCH_SUBS BENCH_LOADS BENCH_OUT BENCH_REPORT
export BENCH_SERIES BENCH_PROBE BENCH_EXTRAS BENCH_PROFILE BENCH_QUICK BENCH_RUNS BENCH_TARGETS BENCH_CACHE
export BENCH_IDLE_WS BENCH_IDLE_DEVICES BENCH_IDLE_MAX BENCH_MANY BENCH_MANY_VARIANT
export BENCH_INGEST_SERIES BENCH_INGEST_RATES BENCH_INGEST_DEVICES BENCH_INGEST_DASHBOARDS BENCH_INGEST_VARIANT
: "${BENCH_CLUSTER_SUBS:=1000}" "${BENCH_CLUSTER_LAYOUTS:=2 1}"
export BENCH_MAX_FOREIGN BENCH_TRIES BENCH_QUIET_TIMEOUT
export BENCH_CLUSTER_SUBS BENCH_CLUSTER_RATES BENCH_CLUSTER_LAYOUTS BENCH_CLUSTER_OUT

if [ "${BENCH_IN_NETNS:-0}" != 1 ]; then
	for cmd in mosquitto taskset unshare ip; do
		command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install mosquitto util-linux iproute2)" >&2; exit 1; }
	done
	BENCH_WORK=$(mktemp -d /tmp/hubbench.XXXXXX)
	export BENCH_WORK
	echo "bench: building hub and hubbench into $BENCH_WORK" >&2
	go build -o "$BENCH_WORK/hub" ./cmd/hub
	go build -o "$BENCH_WORK/hubbench" ./cmd/hubbench
	# The Go peers, built once (outside the namespace: the module proxy is on the network).
	CENTRIFUGO_BIN="" NATS_BIN=""
	case " $BENCH_TARGETS  $BENCH_RUNS " in *" centrifugo "* | *" nats "* | *" cluster "*)
		while read -r name bin; do
			case $name in centrifugo) CENTRIFUGO_BIN=$bin ;; nats-server) NATS_BIN=$bin ;; esac
		done < <(bench/peers.sh)
		;;
	esac
	export CENTRIFUGO_BIN NATS_BIN
	rc=0
	BENCH_IN_NETNS=1 unshare --net "$0" "$@" || rc=$?
	rm -rf "$BENCH_WORK"
	exit "$rc"
fi

# --- inside the network namespace from here on ---
ip link set lo up
# 100,000 idle devices (issue 19's count) need a descriptor each in the hub and in hubbench.
if ! ulimit -n 101000 2>/dev/null; then
	ulimit -n "$(ulimit -Hn)"
	echo "bench: cannot raise the open-file limit to 101000; it is $(ulimit -n)" >&2
fi
WORK=$BENCH_WORK
HB=$WORK/hubbench
OUT=$BENCH_OUT
mkdir -p "$(dirname "$OUT")" "$(dirname "$BENCH_REPORT")"
# ONLY_CLUSTER: the cluster run alone, which has its own results file and leaves BENCH_OUT alone.
ONLY_CLUSTER=0
[ -z "$(echo " $BENCH_RUNS " | sed 's/ cluster / /g' | tr -d ' ')" ] && ONLY_CLUSTER=1
if [ "$ONLY_CLUSTER" = 0 ] && [ "${BENCH_APPEND:-0}" != 1 ] && [ -f "$OUT" ]; then mv "$OUT" "$OUT.prev"; fi
MQ_VERSION=$(mosquitto -h 2>/dev/null | head -n1 | sed 's/^mosquitto version //') || true
PEER_VERSIONS=""
[ -n "${CENTRIFUGO_BIN:-}" ] && PEER_VERSIONS="$PEER_VERSIONS Centrifugo ${CENTRIFUGO_BIN##*-}"
[ -n "${NATS_BIN:-}" ] && PEER_VERSIONS="$PEER_VERSIONS, NATS server ${NATS_BIN##*-}"
COMMAND="make bench"
[ "$MODE" = quick ] && COMMAND="BENCH_QUICK=1 make bench"
# Every session records its machine, its load and its settings (the latest session's are shown).
[ "$ONLY_CLUSTER" = 0 ] && "$HB" meta -out "$OUT" -mode "$MODE" -mosquitto "$MQ_VERSION" -command "$COMMAND" \
	-notes "runs: $BENCH_RUNS; targets: $BENCH_TARGETS;${PEER_VERSIONS:+ peers built from the module proxy:$PEER_VERSIONS;} load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); repeats $BENCH_REPEATS, warm-up $BENCH_WARMUP, measured $BENCH_MEASURE; hub --log-level warn --data '' --mqtt-rate-limit -1, connection limits 110000 (ingest hub-data: --data DIR --history-bytes 0; hub-history: --data DIR, history's defaults); Mosquitto: max_queued_messages 4096 (the hub's per-client queue bound; default 1000), set_tcp_nodelay true, persistence false; Centrifugo: client.insecure, HTTP API key, defaults otherwise; NATS: websocket no_tls, defaults otherwise; ulimit -n $(ulimit -n)"

has_run() { case " $BENCH_RUNS " in *" $1 "*) return 0 ;; esac; return 1; }

# has_target TARGET: asked for in BENCH_TARGETS, and its binary is there.
has_target() {
	case " $BENCH_TARGETS " in *" $1 "*) ;; *) return 1 ;; esac
	case $1 in
	centrifugo) [ -n "${CENTRIFUGO_BIN:-}" ] ;;
	nats) [ -n "${NATS_BIN:-}" ] ;;
	esac
}
for t in centrifugo nats; do
	case " $BENCH_TARGETS " in *" $t "*) has_target "$t" || echo "bench: $t was not built: its runs are left out" >&2 ;; esac
done

# shellcheck source=bench/cluster.sh
. bench/cluster.sh

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
trap 'stop_target; cluster_stop' EXIT
trap 'stop_target; cluster_stop; exit 130' INT TERM

# start_target TARGET VARIANT [DATA]: a fresh target on free ports; sets TPID, SUB (where
# browsers connect), PUB (where the publisher connects: MQTT/TCP, NATS/TCP or Centrifugo's HTTP
# API) and GCTRACE. DATA=1 gives the hub a fresh --data directory ($WORK/data) without history
# (--history-bytes 0), DATA=history the same with history on (its defaults).
start_target() {
	local target=$1 variant=$2 data=${3:-0} pin="" gomax="" ports p1 p2 datadir="" hist=()
	[ "$variant" = pinned ] && pin="taskset -c 0"
	[ "$variant" = gomaxprocs1 ] && gomax="GOMAXPROCS=1"
	ports=$("$HB" freeport -n 2)
	p1=$(echo "$ports" | sed -n 1p)
	p2=$(echo "$ports" | sed -n 2p)
	GCTRACE=""
	case $target in
	motehub)
		GCTRACE=$WORK/gctrace.log
		: >"$GCTRACE"
		if [ "$data" = 1 ] || [ "$data" = history ]; then
			rm -rf "$WORK/data"
			mkdir -p "$WORK/data"
			datadir=$WORK/data
			[ "$data" = 1 ] && hist=(--history-bytes 0)
		fi
		env GODEBUG=gctrace=1 $gomax $pin "$WORK/hub" --http "127.0.0.1:$p1" --mqtt "127.0.0.1:$p2" --log-level warn \
			--data "$datadir" "${hist[@]}" --max-connections 110000 --max-connections-per-address 110000 --mqtt-max-sessions 110000 --mqtt-rate-limit -1 \
			>"$WORK/hub.log" 2>"$GCTRACE" &
		TPID=$!
		SUB=127.0.0.1:$p1 PUB=127.0.0.1:$p2
		;;
	mosquitto)
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
	centrifugo)
		cat >"$WORK/centrifugo.json" <<-EOF
			{
			  "log": {"level": "error"},
			  "http_server": {"address": "127.0.0.1", "port": $p1},
			  "client": {"insecure": true},
			  "http_api": {"key": "hubbench"},
			  "channel": {"without_namespace": {"allow_subscribe_for_client": true}},
			  "usage_stats": {"disabled": true}
			}
		EOF
		GCTRACE=$WORK/gctrace.log
		: >"$GCTRACE"
		(cd "$WORK" && exec env GODEBUG=gctrace=1 $gomax $pin "$CENTRIFUGO_BIN" --config "$WORK/centrifugo.json") >"$WORK/centrifugo.log" 2>"$GCTRACE" &
		TPID=$!
		SUB=127.0.0.1:$p1 PUB=127.0.0.1:$p1
		;;
	nats)
		cat >"$WORK/nats.conf" <<-EOF
			listen: 127.0.0.1:$p1
			websocket {
			  listen: "127.0.0.1:$p2"
			  no_tls: true
			}
		EOF
		GCTRACE=$WORK/gctrace.log
		: >"$GCTRACE"
		env GODEBUG=gctrace=1 $gomax $pin "$NATS_BIN" -c "$WORK/nats.conf" >"$WORK/nats.log" 2>"$GCTRACE" &
		TPID=$!
		SUB=127.0.0.1:$p2 PUB=127.0.0.1:$p1
		;;
	esac
	if ! "$HB" wait -timeout 10s "$PUB" "$SUB"; then
		echo "bench: $target did not start:" >&2
		for f in hub.log mosquitto.log centrifugo.log nats.log gctrace.log; do
			[ -s "$WORK/$f" ] && tail -n 10 "$WORK/$f" >&2
		done
		stop_target
		return 1
	fi
}

series_target() {
	case $1 in
	mosq-*) echo mosquitto ;; cent-*) echo centrifugo ;; nats-*) echo nats ;; *) echo motehub ;;
	esac
}
series_transport() {
	case $1 in
	hub-ws) echo ws ;; hub-ws-batch) echo ws-batch ;; hub-sse) echo sse ;; mosq-ws) echo mqtt-ws ;;
	cent-ws) echo cent-ws ;; nats-ws) echo nats-ws ;; hub-mqtt | mosq-mqtt) echo mqtt-tcp ;;
	*) echo "bench: unknown series $1" >&2; return 1 ;;
	esac
}

# only_wanted "SERIES...": the series whose target is wanted and there.
only_wanted() {
	local s out=""
	for s in $1; do has_target "$(series_target "$s")" && out="$out $s"; done
	echo "$out"
}

# quiet_first: wait for a quiet machine; sets TRIES to hubbench's retry flags for try $1.
quiet_first() {
	TRIES=(-attempt "$1")
	if [ "$BENCH_MAX_FOREIGN" != 0 ]; then
		"$HB" quiet -max "$BENCH_MAX_FOREIGN" -for 2s -timeout "$BENCH_QUIET_TIMEOUT"
		TRIES+=(-max-foreign "$BENCH_MAX_FOREIGN")
		[ "$1" = "$BENCH_TRIES" ] && TRIES+=(-last-try)
	fi
	return 0
}

# keep_stacks LABEL: a hub that delivered nothing was asked for its goroutine stacks: keep them.
keep_stacks() {
	if [ "$1" = motehub ] && [ -n "$GCTRACE" ] && grep -q '^goroutine ' "$GCTRACE"; then
		STALLS=$((STALLS + 1))
		cp "$GCTRACE" "$(dirname "$OUT")/stall-$STALLS-$2.txt"
		echo "bench: the hub delivered nothing; its stacks are in $(dirname "$OUT")/stall-$STALLS-*.txt" >&2
	fi
}
STALLS=0

# one_run SERIES VARIANT SUBS RATE REPEAT OUTFILE [hubbench run flags...]
# Each try waits for the machine to be quiet first; a run that other processes
# competed with (more than BENCH_MAX_FOREIGN cores) is tried again, and the
# last try is recorded whatever happened.
one_run() {
	local s=$1 variant=$2 n=$3 rate=$4 rep=$5 out=$6 pinl=""
	shift 6
	local target transport attempt rc sub
	target=$(series_target "$s")
	transport=$(series_transport "$s")
	[ "$variant" = pinned ] && pinl="taskset -c 1"
	local extra=()
	[ "$target" = motehub ] && extra=(-dump-on-stall)
	for attempt in $(seq 1 "$BENCH_TRIES"); do
		quiet_first "$attempt"
		echo "bench: $variant $s subs=$n rate=$rate/s repeat=$rep try=$attempt" >&2
		start_target "$target" "$variant" || {
			"$HB" skip -out "$out" -variant "$variant" -target "$target" -transport "$transport" -subs "$n" \
				-offered "$(awk "BEGIN{print $n*$rate}")" -reason "the target did not start"
			return 0
		}
		sub=$SUB
		[ "$transport" = mqtt-tcp ] && sub=$PUB # devices connect to the MQTT/TCP listener
		rc=0
		$pinl "$HB" run -target "$target" -transport "$transport" -variant "$variant" -repeat "$rep" \
			-sub "$sub" -pub "$PUB" -pid "$TPID" -gctrace "$GCTRACE" -subs "$n" -rate "$rate" \
			-warmup "$BENCH_WARMUP" -measure "$BENCH_MEASURE" -out "$out" "${extra[@]}" "${TRIES[@]}" "$@" || rc=$?
		stop_target
		keep_stacks "$target" "$variant-$s-$n-$rate"
		case $rc in
		0) return 0 ;;
		3) echo "bench: other processes used the CPU during the run; trying again" >&2 ;;
		*) echo "bench: the run failed; its error is in $out" >&2; return 0 ;;
		esac
	done
}

# matrix VARIANT "SERIES..." "SUBS..." "LOADS..." [probe]: every cell, the series
# alternated (A B A B, the order flipped every repeat); a series that is
# saturated at a load skips the higher loads at that subscriber count.
matrix() {
	local variant=$1 sers=$2 subs=$3 loads=$4 probe=${5:-0}
	local n load rate rep s order target transport
	sers=$(only_wanted "$sers")
	[ -n "${sers// /}" ] || return 0
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

# idle_cells "SERIES..." N: memory per idle client, the series alternated.
idle_cells() {
	local sers n=$2 rep s order
	sers=$(only_wanted "$1")
	[ -n "${sers// /}" ] || return 0
	for rep in $(seq 1 "$BENCH_REPEATS"); do
		order=$sers
		[ $((rep % 2)) = 0 ] && order=$(echo "$sers" | tr ' ' '\n' | tac | tr '\n' ' ')
		for s in $order; do one_run "$s" pinned "$n" 0 "$rep" "$OUT" -idle -settle 2s; done
	done
}

# The most clients one process may hold here: a descriptor each, and some to spare.
FIT=$(($(ulimit -n) - 500))
# The most idle devices BENCH_IDLE_MAX connects: as many as fit, up to the 100,000 of the target.
IDLE_MAX=$((FIT < 100000 ? FIT : 100000))

if has_run idle; then
	idle_cells "hub-ws cent-ws nats-ws mosq-ws" "$BENCH_IDLE_WS"
	idle_cells "hub-sse" "$BENCH_IDLE_WS"
	idle_cells "hub-mqtt mosq-mqtt" "$BENCH_IDLE_DEVICES"
	[ "$BENCH_IDLE_MAX" = 1 ] && idle_cells "hub-mqtt mosq-mqtt" "$IDLE_MAX"
fi

# Many clients: SUBSxRATE cells, the four targets' WebSocket subscribers. Each side needs a
# descriptor per client: a count the open-file limit does not allow is recorded as not run,
# with the reason, and the most that fit are measured.
if has_run many; then
	for cell in $BENCH_MANY; do
		n=${cell%x*} rate=${cell#*x}
		if [ "$n" -gt "$FIT" ]; then
			for s in $(only_wanted "hub-ws cent-ws nats-ws mosq-ws"); do
				"$HB" skip -out "$OUT" -variant "$BENCH_MANY_VARIANT" -target "$(series_target "$s")" -transport "$(series_transport "$s")" \
					-subs "$n" -offered "$((n * rate))" -reason "ulimit -n is $(ulimit -n) here; measured with $FIT subscribers"
			done
			n=$FIT
		fi
		matrix "$BENCH_MANY_VARIANT" "hub-ws cent-ws nats-ws mosq-ws" "$n" "$((n * rate))"
	done
fi

# ingest_series_target SERIES: the target of an ingest series.
ingest_series_target() { case $1 in mosq) echo mosquitto ;; *) echo motehub ;; esac; }

# ingest_one SERIES RATE REPEAT: one hubbench ingest run, tried again like one_run.
ingest_one() {
	local s=$1 rate=$2 rep=$3 target data=0 pinl="" attempt rc
	local flags=(-transport ws)
	target=$(ingest_series_target "$s")
	case $s in
	hub-data) data=1 flags+=(-data -data-dir "$WORK/data") ;;
	hub-history) data=history flags+=(-data -history -data-dir "$WORK/data") ;;
	hub-latest) flags+=(-overflow latest) ;;
	mosq) flags=(-transport mqtt-ws -filter '#') ;;
	esac
	[ "$BENCH_INGEST_VARIANT" = pinned ] && pinl="taskset -c 1"
	for attempt in $(seq 1 "$BENCH_TRIES"); do
		quiet_first "$attempt"
		echo "bench: ingest $s rate=$rate/s repeat=$rep try=$attempt" >&2
		if ! start_target "$target" "$BENCH_INGEST_VARIANT" "$data"; then
			echo "bench: $target did not start: ingest $s at $rate/s not run" >&2
			return 0
		fi
		rc=0
		$pinl "$HB" ingest -target "$target" -variant "$BENCH_INGEST_VARIANT" -repeat "$rep" \
			-sub "$SUB" -pub "$PUB" -pid "$TPID" -devices "$BENCH_INGEST_DEVICES" -dashboards "$BENCH_INGEST_DASHBOARDS" \
			-rate "$rate" -warmup "$BENCH_WARMUP" -measure "$BENCH_MEASURE" -out "$OUT" "${flags[@]}" "${TRIES[@]}" || rc=$?
		stop_target
		[ "$data" != 0 ] && echo "bench: ingest $s: --data after the hub stopped: $(du -sb "$WORK/data" | cut -f1) bytes" >&2
		case $rc in
		0) return 0 ;;
		3) echo "bench: other processes used the CPU during the run; trying again" >&2 ;;
		*) echo "bench: the ingest run failed; its error is in $OUT" >&2; return 0 ;;
		esac
	done
}

# ingest_series_flags SERIES: sets SFLAGS to what `hubbench sustained` needs to find the series' cells.
ingest_series_flags() {
	local data=false history=false overflow=""
	case $1 in
	hub-data) data=true ;;
	hub-history) data=true history=true ;;
	hub-latest) overflow=latest ;;
	esac
	SFLAGS=(-target "$(ingest_series_target "$1")" -dashboards "$BENCH_INGEST_DASHBOARDS"
		-data="$data" -history="$history" -overflow "$overflow")
}

# The ingest sweep: at each rate, every series still going, alternated (A B A B, the order
# flipped every repeat); a series stops at the first rate not sustained by most repeats
# (hubbench sustained reads the results file).
if has_run ingest; then
	ingest_help=$("$HB" ingest -h 2>&1 || true) # -h answers with its flags, and exit status 1
	if ! grep -q -- '-devices' <<<"$ingest_help"; then
		echo "bench: this hubbench has no ingest subcommand: ingest not run" >&2
	else
		going=""
		for s in $BENCH_INGEST_SERIES; do
			has_target "$(ingest_series_target "$s")" || continue
			if [ "$s" = mosq ] && ! grep -q 'mqtt-ws' <<<"$ingest_help"; then
				echo "bench: hubbench ingest has no MQTT-over-WebSocket dashboards: Mosquitto's ingest not run" >&2
				continue
			fi
			going="$going $s"
		done
		for rate in $BENCH_INGEST_RATES; do
			[ -n "${going// /}" ] || break
			for rep in $(seq 1 "$BENCH_REPEATS"); do
				order=$going
				[ $((rep % 2)) = 0 ] && order=$(echo "$going" | tr ' ' '\n' | tac | tr '\n' ' ')
				for s in $order; do ingest_one "$s" "$rate" "$rep"; done
			done
			still=""
			for s in $going; do
				ingest_series_flags "$s"
				if "$HB" sustained -in "$OUT" -variant "$BENCH_INGEST_VARIANT" "${SFLAGS[@]}" \
					-devices "$BENCH_INGEST_DEVICES" -rate "$rate"; then
					still="$still $s"
				else
					echo "bench: ingest $s not sustained at $rate/s: higher rates not run" >&2
				fi
			done
			going=$still
		done
	fi
fi

if has_run matrix; then
	# The profile: perf on the hub during a 1,000-subscriber WS run at 100k deliveries/s.
	if [ "$BENCH_PROFILE" = 1 ] && has_target motehub; then
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
fi

if has_run cluster; then
	mkdir -p "$(dirname "$BENCH_CLUSTER_OUT")"
	if [ "${BENCH_APPEND:-0}" != 1 ] && [ -f "$BENCH_CLUSTER_OUT" ]; then mv "$BENCH_CLUSTER_OUT" "$BENCH_CLUSTER_OUT.prev"; fi
	"$HB" meta -out "$BENCH_CLUSTER_OUT" -mode "$MODE" -mosquitto "$MQ_VERSION" -command "BENCH_RUNS=cluster $COMMAND" \
		-notes "runs: cluster; subscribers $BENCH_CLUSTER_SUBS; rates $BENCH_CLUSTER_RATES msg/s; layouts (replicas) $BENCH_CLUSTER_LAYOUTS; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); repeats $BENCH_REPEATS, warm-up $BENCH_WARMUP, measured $BENCH_MEASURE; nats-server ${NATS_BIN##*-} x3 (routes, JetStream, MQTT gateway); hub --upstream mqtt://NODE --data '' --log-level warn, connection limits 100000; nothing pinned; ulimit -n $(ulimit -n)"
	cluster_runs
fi

# The results the report is made from: BENCH_REPORT_IN, else BENCH_OUT; after the cluster run
# alone, the results file the report names already (its first lines), so that only its
# cluster section changes.
REPORT_IN=${BENCH_REPORT_IN:-}
if [ -z "$REPORT_IN" ] && [ "$ONLY_CLUSTER" = 1 ] && [ -f "$BENCH_REPORT" ]; then
	REPORT_IN=$(sed -n '1,5s/^Generated by `hubbench report` from `\([^`]*\)`.*/\1/p' "$BENCH_REPORT" | head -n1)
fi
: "${REPORT_IN:=$OUT}"
report_flags=()
[ -f bench/notes.md ] && [ "$MODE" = full ] && report_flags=(-notes bench/notes.md)
if [ ! -f "$REPORT_IN" ] && [ -s "$BENCH_CLUSTER_OUT" ]; then
	REPORT_IN=$BENCH_CLUSTER_OUT # nothing else yet: a report of the cluster's section alone
elif [ -s "$BENCH_CLUSTER_OUT" ]; then
	report_flags+=(-cluster "$BENCH_CLUSTER_OUT")
fi
"$HB" report -in "$REPORT_IN" -out "$BENCH_REPORT" -command "$COMMAND" -profile-dir "$(dirname "$REPORT_IN")" "${report_flags[@]}"
echo "bench: results in $REPORT_IN${report_flags[*]:+ (${report_flags[*]})}, report in $BENCH_REPORT" >&2
