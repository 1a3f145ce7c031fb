// Package broker is the MQTT side of motehub, behind bridge.Bus. Two
// implementations share one contract (contract_test.go holds both to it):
//
//   - [Embedded] runs the mochi-mqtt broker inside the hub: MQTT over TCP,
//     TLS and WebSocket, the MQTT side of auth and the limits, and the store
//     (bbolt) that keeps retained messages and sessions across restarts.
//   - [Remote] is a client (paho) of an existing broker or cluster, for
//     several hub replicas in front of Mosquitto, EMQX or HiveMQ.
//
// No mochi or paho type leaves this package.
//
// # Concurrency contract
//
//   - Bus callbacks must not block (bridge's never do), nor call Subscribe or
//     a cancel function. Embedded runs them on the publishing client's
//     goroutine inside mochi, before any MQTT subscriber gets the message;
//     Remote runs them on paho's router goroutine, in the broker's order.
//   - Every write to an MQTT client of Embedded has a deadline
//     (Config.WriteTimeout), so a client that stops reading blocks only its
//     own goroutines.
//   - Close, on either, is safe to call more than once and from any
//     goroutine, and returns within its configured bound even when clients
//     or the upstream are stuck.
//
// Around mochi 2.7.9 Embedded works around: the Close hang (a DISCONNECT
// written to every client without a deadline), the clients-lock deadlock of
// its listener shutdown (mochi-mqtt/server#488), unlocked retained scans
// (#200), and client and broker packet identifiers kept in one map (#545).
//
// All exported methods are safe for concurrent use.
package broker
