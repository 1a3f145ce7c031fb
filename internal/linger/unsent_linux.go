package linger

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h), which package syscall
// does not name.
const tcpNotSentLowat = 0x19

// BoundUnsent caps the bytes conn's kernel holds that it has not yet sent
// (TCP_NOTSENT_LOWAT): writes wait instead of queueing more. What the peer
// has not taken stays small, so a last frame written to a slow reader
// reaches it after that much, not after megabytes of autotuned send buffer.
// It reports whether it could (a TCP connection, under TLS or wrappers too).
func BoundUnsent(conn net.Conn, bytes int) bool {
	tcp, ok := tcpConn(conn)
	if !ok {
		return false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, bytes)
	})
	return err == nil && serr == nil
}

// tcpConn finds the TCP connection under conn.
func tcpConn(conn net.Conn) (*net.TCPConn, bool) {
	for conn != nil {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c, true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		case interface{ Unwrap() net.Conn }:
			conn = c.Unwrap()
		default:
			return nil, false
		}
	}
	return nil, false
}
