// Command hubbench is motehub's load generator and report writer. It feeds
// one publisher into a target (the hub, Mosquitto, Centrifugo or NATS
// server) and counts what reaches N browser-like subscribers: Clown.Talk
// over WebSocket or Server-Sent Events (the hub), MQTT 3.1.1 over WebSocket
// as MQTT.js speaks it (Mosquitto), Centrifugo's JSON protocol over
// WebSocket as centrifuge-js speaks it, or NATS's text protocol over
// WebSocket as nats.ws speaks it. The publisher is MQTT over TCP, NATS PUB
// over TCP, or Centrifugo's HTTP API (several requests in flight). With
// -idle a run only connects its clients and reads the target's memory;
// its clients may also be MQTT devices on TCP with one subscription each.
// See /work/shared/BENCHMARKS.md for the method and bench/run.sh for the
// runs.
//
// Subcommands:
//
//	hubbench run ...        one run (one target, one transport, N subscribers,
//	                        one rate), one JSON line appended to -out; a target of
//	                        several processes (hub replicas behind a broker cluster):
//	                        -sub A,B spreads the subscribers round-robin, -procs
//	                        hub1=PID,nats0=PID,... records each process's CPU and memory
//	hubbench ingest ...     D MQTT devices (-devices 2000) each publishing to its own topic at a
//	                        total -rate, K dashboards (-dashboards 10) on "#" (ws or sse, -overflow
//	                        latest to ask for the newest value per topic): delivered ratio, p50/p99,
//	                        the target's CPU µs per message, dashboards cut off; one JSON line
//	                        of kind "ingest" appended to -out (keep it in its own results file)
//	hubbench report ...     results (JSON lines) to docs/benchmarks.md (-cluster FILE: the
//	                        section on replicas behind a NATS cluster, from bench/cluster.sh)
//	hubbench meta ...       append the machine description to a results file
//	hubbench skip ...       record a cell of the matrix that was not run, and why
//	hubbench saturated ...  exit 0 when a cell of a results file is past saturation
//	hubbench sustained ...  exit 0 when most repeats of an ingest rate were sustained
//	hubbench wait ...       wait until TCP addresses accept connections, and http:// URLs
//	                        (a replica's /readyz) answer 200
//	hubbench quiet ...      wait until other processes leave the CPUs alone
//	hubbench freeport -n K  K free loopback TCP ports, one per line
//
// The clients are deliberately light: a minimal WebSocket client, a minimal
// MQTT codec, a line scanner that finds "s" and "t" without decoding JSON,
// so that one core of load generator can keep up with the target.
//
// Every connection goes to a loopback address (checked before dialing), and
// every loop is bounded in count and time. On Linux, connections to an IPv4
// address come from 64 loopback source addresses in turn (127.1.0.1–64), so
// that the load generator's kernel does not search for free ephemeral ports
// once tens of thousands of connections share one source address.
//
// # Concurrency contract
//
//   - A run owns every goroutine it starts: 64 connecting workers (waited for
//     before the readers start), one reader per subscriber, the publisher's
//     pacing loop and its reader (for Centrifugo: its HTTP workers, ended by
//     closing their bounded queue), and a pinger; the run's own goroutine samples
//     /proc. They end when their connections are closed or the run's deadline
//     passes, and the run waits for all of them (sync.WaitGroup) before it
//     returns. The -during command is a child process the run waits for.
//   - A subscriber's reader is the only goroutine that touches its sequence
//     bitmap; results are read after the reader has ended. Writes to one
//     connection (pongs, PINGREQ, close) are serialised by that connection's
//     write mutex.
//   - Latencies go to a small set of HDR histograms, each behind its own mutex
//     (see latencies); counters shared across goroutines are atomics.
package main
