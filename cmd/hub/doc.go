// Command hub runs motehub: an MQTT broker for devices and, on one HTTP port,
// the Clown.Talk WebSocket, Server-Sent Events and a REST API for browsers.
// See README.md and `hub --help`; `hub passwd` manages the users file and
// `hub version` names the build.
//
// It is the wiring of the other packages and the only one that reads flags
// and the environment (options.go). run (main.go) starts, in order: the
// store (--data), the MQTT side (the embedded broker, or with --upstream a
// broker.Remote, upstream.go), the HTTP listener, the bridge.Hub, the
// simulated motes of --demo (demo.go), the web handler, and the SIGHUP
// reloader of the users file and the certificate. It lets devices
// in only once the hub is subscribed, and says "ready" last, once /readyz
// would answer 200; until then (an upstream broker that is down) it says
// what it waits for (ready.go). Tests run it whole, in process, on
// 127.0.0.1:0. main is hubMain (commands.go): the commands (passwd,
// store, version, help) or the hub, and the exit status (2 for a usage
// mistake, flagtext.go).
//
// # Concurrency contract
//
//   - run owns every goroutine it starts: the HTTP server's, its Shutdown's,
//     the SIGHUP reloader's and the motes of --demo. The wait for readiness
//     runs on run's own goroutine and ends with ctx or the HTTP server. When ctx ends (SIGINT or
//     SIGTERM; a second signal kills the process the default way) or the HTTP
//     server fails, run stops what it started in reverse order within
//     shutdownTimeout: the reloader and readiness first, then the listener,
//     the motes, the hub's sessions, the HTTP server, the broker (or the
//     upstream), the store last; it returns once they are done.
//   - The upstream's status callback runs on the Remote's goroutine and only
//     tells the hub to resync (its clients' queues), never waiting for them.
package main
