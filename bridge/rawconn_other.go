//go:build !unix

package bridge

import (
	"net"
	"syscall"
)

// rawConnOf: only Unix systems write without waiting; elsewhere every
// write goes through a session's writer.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// rawWrite is a non-blocking write's state (none here).
type rawWrite struct{}

func (*rawWrite) writeNow(syscall.RawConn, []byte) (int, error) { return 0, errBusy }

func waitReadable(syscall.RawConn) {}
