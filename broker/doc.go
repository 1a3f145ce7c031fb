// Package broker is the MQTT side of motehub. [Embedded] runs the mochi-mqtt
// broker inside the hub, serves MQTT over TCP, and satisfies bridge.Bus so the
// hub can publish to devices and hear from them. No mochi type leaves this
// package.
//
// # Concurrency contract
//
//   - Bus callbacks (see [Embedded.Subscribe]) run on the publishing client's
//     goroutine inside mochi, before any MQTT subscriber gets the message; the
//     callback must not block (bridge's never does).
//   - Every write to an MQTT client has a deadline (Config.WriteTimeout), so a
//     client that stops reading blocks only its own goroutines.
//   - [Embedded.Close] is safe to call more than once and from any goroutine;
//     it returns within Config.CloseTimeout even when clients are stuck (the
//     mochi Close hang: it writes a DISCONNECT to every client without a
//     deadline).
//
// All exported methods are safe for concurrent use.
package broker
