//go:build !unix

package bridge

import (
	"net"
	"syscall"
)

// rawConnOf: only Unix systems write without waiting; elsewhere every
// write goes through a session's writer.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func writeNow(syscall.RawConn, []byte) (int, error) { return 0, errBusy }

func waitReadable(syscall.RawConn) {}
