// Package broker is the MQTT side of motehub, behind bridge.Bus. Two
// implementations share one contract (contract_test.go holds both to it):
//
//   - [Embedded] runs the mochi-mqtt broker inside the hub: MQTT over TCP,
//     TLS and WebSocket, the MQTT side of auth and the limits, and the store
//     (bbolt) that keeps retained messages and sessions across restarts.
//   - [Remote] is a client (paho.mqtt.golang for MQTT 3.1.1, paho.golang
//     for MQTT 5) of an existing broker or cluster, one node at a time with
//     failover, for several hub replicas in front of Mosquitto, EMQX,
//     HiveMQ or NATS.
//
// No mochi or paho type leaves this package: the admin view's accessors
// (admin.go: the connected clients, a disconnect, the retained messages)
// answer in bridge's types.
//
// The [Store] writes from its own goroutine every SyncInterval, holds on
// disk the same bounded set of topics as the hub (the least recently
// updated goes first), keeps what a failed write held and tries again, and
// turns a damaged file into [ErrStoreDamaged] instead of bbolt's panic.
//
// The broker's policy (hook.go) decides every CONNECT at once, each refusal
// with its reason code: limits, credentials, a Will the user may not publish,
// a client id whose session belongs to another user, the session cap. A
// resumed session is checked against the rights in force, and what the user
// may no longer read is dropped from it. mochi's log lines reach the hub's
// logger with packets summarised (no credentials, no payloads).
//
// mochi is the patched copy in third_party/mochi-mqtt-server (PATCHES.md
// lists each fix and its test: message order, retained messages, Wills and
// the ACL, 3.1.1 return codes, ...). What Embedded still works around in
// mochi 2.7.9: the Close hang (a DISCONNECT written to every client without
// a deadline), the clients-lock deadlock of its listener shutdown
// (mochi-mqtt/server#488), a CONNECT that never comes (Config.ConnectTimeout),
// and closing a connection so that the client reads its last packet (a
// lingering close, listener.go).
//
// # Concurrency contract
//
//   - Bus callbacks must not block (bridge's never do), nor call Subscribe,
//     a cancel function or Publish. Embedded runs them on the publishing client's
//     goroutine inside mochi, before any MQTT subscriber gets the message;
//     Remote runs them on its client's one router goroutine (paho's, or
//     paho.golang's), in the broker's order.
//     Embedded calls one subscription's callback from several goroutines at
//     once (one per publishing client). While Embedded.Subscribe replays the
//     retained messages (on its caller's goroutine), live messages go on
//     beside the replay, which skips the topics delivered live: an older
//     retained value never arrives after a newer one. Only a live message
//     whose topic the replay is handing over at that moment waits, for that
//     one call.
//   - Every write to an MQTT client of Embedded has a deadline
//     (Config.WriteTimeout), so a client that stops reading blocks only its
//     own goroutines; a write that fails closes the connection. The retained
//     messages for a new subscription wait for room in the subscriber's
//     queue, on a goroutine its reader waits for (below).
//   - Each connection belongs to its listener's goroutine (for MQTT over
//     WebSocket, one the handler starts once the connection is hijacked: the
//     HTTP server's returns), which closes it after mochi is done with it,
//     draining its input for at most a second. mochi reads the client's
//     packets on that goroutine; an idle client has no other. Its CONNECT,
//     SUBSCRIBE, UNSUBSCRIBE and AUTH are read and handled (hooks included)
//     on a short-lived goroutine that the reader waits for, so that the
//     reader's stack stays small (PATCHES.md 33): a client's packets are
//     still handled one at a time, in order. A TCP client's reader waits
//     for its next packet without a read buffer (PATCHES.md 35). Messages for
//     a client are queued (at most MaxPendingWrites) and written by a
//     writer goroutine of its own that runs only while the queue holds
//     something: whoever queues the first starts it, and it ends once it
//     has written the last. No publisher writes to a subscriber's
//     connection.
//   - Close, on either, is safe to call more than once and from any
//     goroutine, and returns within its configured bound even when clients
//     or the upstream are stuck.
//
// All exported methods are safe for concurrent use.
package broker
