package linger

import (
	"io"
	"net"
	"time"
)

// Timeout is how long a closing connection waits, by default, for its peer
// to close too: long enough for a client to read a close frame behind what
// its socket still holds, short enough that a peer that never answers does
// not hold the connection.
const Timeout = 2 * time.Second

// MaxBytes bounds what a lingering close reads and discards: a client that
// keeps sending fast is not read for the whole Timeout.
const MaxBytes = 16 << 20

// CloseWrite half-closes conn: what was written is still delivered, followed
// by a FIN. It reports whether it could: *net.TCPConn can; a *tls.Conn sends
// its close_notify and then half-closes the TCP connection under it; a
// wrapper is followed through its NetConn or Unwrap method.
func CloseWrite(conn net.Conn) bool {
	did := false
	for conn != nil {
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			did = true
		}
		switch u := conn.(type) {
		case interface{ NetConn() net.Conn }: // *tls.Conn: its CloseWrite leaves TCP open
			conn = u.NetConn()
		case interface{ Unwrap() net.Conn }:
			conn = u.Unwrap()
		default:
			return did
		}
	}
	return did
}

// Drain reads and discards what conn receives until the peer closes (EOF),
// until deadline, or until max bytes were read, whichever comes first.
func Drain(conn net.Conn, deadline time.Time, max int64) {
	_ = conn.SetReadDeadline(deadline)
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, max))
}

// Close half-closes conn, drains it until the peer closes or timeout passes
// (at most MaxBytes), and closes it.
func Close(conn net.Conn, timeout time.Duration) error {
	CloseWrite(conn)
	Drain(conn, time.Now().Add(timeout), MaxBytes)
	return conn.Close()
}
