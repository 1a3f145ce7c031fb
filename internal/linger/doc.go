// Package linger closes a connection so that the peer reads what was written
// last. Closing a TCP socket that still has unread input sends a reset, and
// the peer's kernel then throws away what it had not yet handed to the
// application: a WebSocket close frame or an SSE "event: close" written just
// before is lost, and a browser reports 1006 instead of the reason. A
// lingering close writes its last words, half-closes (FIN after them), reads
// and discards what the peer still sends, for a bounded time and number of
// bytes, until the peer closes too, and only then closes. The browser
// sessions (package bridge) and the MQTT listeners (package broker: a
// DISCONNECT with its reason code, a WebSocket close frame) both close so.
//
// The functions are safe to call from any goroutine, as net.Conn's methods
// are; each call belongs to the goroutine that makes it.
package linger
