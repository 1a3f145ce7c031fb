# bench/cluster.sh: the run "cluster" of bench/run.sh (BENCH_RUNS=cluster), sourced by it
# inside its network namespace; not a program of its own.
#
# Hub replicas in front of a three-node NATS cluster, against one replica in front of the same:
#   - three nats-server nodes (bench/peers.sh's binary) with cluster routes, JetStream and the
#     MQTT gateway, on free loopback ports, a fresh store each run (config written here);
#   - replica 1 with --upstream on node 0, replica 2 on node 1 (one URL each: given all three, a
#     replica starts on a node drawn at random, and the layout measured would change from run to
#     run), --http on loopback, --data "";
#   - hubbench's publisher (MQTT 3.1.1, QoS 0) on node 2, its WebSocket subscribers on bench/#
#     spread round-robin over the replicas; hubbench records the CPU and memory of every hub
#     and every node (-procs hub1=PID,...,nats2=PID).
# Every layout is measured at every rate, the layouts alternated (A B, then B A), BENCH_REPEATS
# times; a fresh cluster and fresh hubs for each run, stopped by their PIDs afterwards.
#
# Environment (run.sh's BENCH_REPEATS, BENCH_WARMUP, BENCH_MEASURE, BENCH_TRIES and
# BENCH_MAX_FOREIGN apply):
#   BENCH_CLUSTER_SUBS      WebSocket subscribers                     1000
#   BENCH_CLUSTER_RATES     messages/s published, each a set of runs  "100 400"  (quick: "100")
#   BENCH_CLUSTER_LAYOUTS   replica counts to compare                 "2 1"
#   BENCH_CLUSTER_OUT       results file   (bench/results/cluster.jsonl; quick: bench/results/quick/cluster.jsonl)
#
# Uses from run.sh: HB, WORK, NATS_BIN, quiet_first, TRIES, BENCH_* above.

CPIDS=()   # every process of the cluster run, started here, in start order

# cluster_stop_pid PID: TERM, up to 10 s, then KILL; only that PID.
cluster_stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# cluster_stop: the hubs first, then the nodes (the reverse of the start order).
cluster_stop() {
	local i
	for ((i = ${#CPIDS[@]} - 1; i >= 0; i--)); do cluster_stop_pid "${CPIDS[$i]}"; done
	CPIDS=()
}

# cluster_start REPLICAS: three nodes, then REPLICAS hubs; sets CPIDS, CPROCS (hubbench
# -procs), CSUB (the replicas' HTTP addresses, comma-separated), CPUB (node 2's MQTT address),
# CGCTRACE (replica 1's gctrace). Returns 1 when something did not start.
cluster_start() {
	local replicas=$1 dir=$WORK/cluster ports i j routes
	rm -rf "$dir"
	mkdir -p "$dir"
	# Per node: client, MQTT, route and monitoring ports; then one HTTP port per replica.
	mapfile -t ports < <("$HB" freeport -n $((12 + replicas)))
	local client=() mqtt=() route=() mon=()
	for i in 0 1 2; do
		client[i]=${ports[$((i * 4))]} mqtt[i]=${ports[$((i * 4 + 1))]}
		route[i]=${ports[$((i * 4 + 2))]} mon[i]=${ports[$((i * 4 + 3))]}
	done
	local nodeprocs="" hubprocs=""
	CSUB="" CPUB=127.0.0.1:${mqtt[2]}
	for i in 0 1 2; do
		routes=""
		for j in 0 1 2; do
			[ "$j" = "$i" ] && continue
			routes="$routes${routes:+, }nats-route://127.0.0.1:${route[j]}"
		done
		mkdir -p "$dir/js$i"
		cat >"$dir/nats$i.conf" <<-EOF
			server_name: nats$i
			listen: 127.0.0.1:${client[i]}
			http: 127.0.0.1:${mon[i]}
			jetstream { store_dir: "$dir/js$i" }
			mqtt { listen: 127.0.0.1:${mqtt[i]} }
			cluster {
			  name: bench
			  listen: 127.0.0.1:${route[i]}
			  routes: [$routes]
			}
		EOF
		"$NATS_BIN" -c "$dir/nats$i.conf" >"$dir/nats$i.log" 2>&1 &
		CPIDS+=($!)
		nodeprocs="$nodeprocs,nats$i=$!"
	done
	# /healthz answers 200 once the node's JetStream is current (its meta leader known).
	for i in 0 1 2; do
		if ! "$HB" wait -timeout 60s "127.0.0.1:${mqtt[i]}" "http://127.0.0.1:${mon[i]}/healthz"; then
			echo "bench: cluster: node $i did not start:" >&2
			tail -n 10 "$dir/nats$i.log" >&2
			return 1
		fi
	done
	CGCTRACE=$dir/hub1.gctrace
	local http upstream
	for ((i = 1; i <= replicas; i++)); do
		http=127.0.0.1:${ports[$((11 + i))]}
		# replica 1 on node 0, replica 2 on node 1, a third (if asked for) on node 0 again.
		j=$(((i - 1) % 2))
		upstream=mqtt://127.0.0.1:${mqtt[j]}
		env GODEBUG=gctrace=1 "$WORK/hub" --upstream "$upstream" --http "$http" --data "" --log-level warn \
			--max-connections 100000 --max-connections-per-address 100000 --mqtt-max-sessions 100000 \
			>"$dir/hub$i.log" 2>"$dir/hub$i.gctrace" &
		CPIDS+=($!)
		hubprocs="$hubprocs,hub$i=$!"
		CSUB="$CSUB${CSUB:+,}$http"
	done
	CPROCS="${hubprocs#,}$nodeprocs" # the hubs first, then the nodes
	for ((i = 1; i <= replicas; i++)); do
		http=$(echo "$CSUB" | cut -d, -f"$i")
		if ! "$HB" wait -timeout 60s "http://$http/readyz"; then
			echo "bench: cluster: replica $i did not get ready:" >&2
			tail -n 10 "$dir/hub$i.log" >&2
			return 1
		fi
	done
}

# cluster_layout REPLICAS: the run's layout label.
cluster_layout() {
	if [ "$1" = 1 ]; then echo "1 replica"; else echo "$1 replicas"; fi
}

# cluster_one REPLICAS RATE REPEAT: one run, tried again like run.sh's one_run.
cluster_one() {
	local replicas=$1 rate=$2 rep=$3 layout attempt rc
	layout=$(cluster_layout "$replicas")
	for attempt in $(seq 1 "$BENCH_TRIES"); do
		quiet_first "$attempt"
		echo "bench: cluster $layout subs=$BENCH_CLUSTER_SUBS rate=$rate/s repeat=$rep try=$attempt" >&2
		if ! cluster_start "$replicas"; then
			cluster_stop
			"$HB" skip -out "$BENCH_CLUSTER_OUT" -variant unpinned -target motehub -transport ws -subs "$BENCH_CLUSTER_SUBS" \
				-offered "$(awk "BEGIN{print $BENCH_CLUSTER_SUBS*$rate}")" -reason "$layout: the cluster or a replica did not start"
			return 0
		fi
		rc=0
		"$HB" run -target motehub -transport ws -variant unpinned -layout "$layout" -repeat "$rep" \
			-sub "$CSUB" -pub "$CPUB" -procs "$CPROCS" -gctrace "$CGCTRACE" -subs "$BENCH_CLUSTER_SUBS" -rate "$rate" \
			-warmup "$BENCH_WARMUP" -measure "$BENCH_MEASURE" -out "$BENCH_CLUSTER_OUT" "${TRIES[@]}" || rc=$?
		cluster_stop
		case $rc in
		0) return 0 ;;
		3) echo "bench: other processes used the CPU during the run; trying again" >&2 ;;
		*) echo "bench: the cluster run failed; its error is in $BENCH_CLUSTER_OUT" >&2; return 0 ;;
		esac
	done
}

# cluster_runs: every rate, every layout, BENCH_REPEATS times, the layouts alternated.
cluster_runs() {
	if [ -z "${NATS_BIN:-}" ]; then
		echo "bench: nats-server was not built: the cluster run is left out" >&2
		return 0
	fi
	local rate rep order n
	for rate in $BENCH_CLUSTER_RATES; do
		for rep in $(seq 1 "$BENCH_REPEATS"); do
			order=$BENCH_CLUSTER_LAYOUTS
			[ $((rep % 2)) = 0 ] && order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
			for n in $order; do cluster_one "$n" "$rate" "$rep"; done
		done
	done
}
