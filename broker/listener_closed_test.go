package broker

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestClosedConnectionReadsNothingMore: once a client's connection is
// closed (mochi's Stop: a session taken over, a write that failed), mochi's
// reader reads nothing more from it, through Read or through the RawConn
// it waits on (PATCHES.md 35), even when it moves the read deadline on
// after the Close (its lazy refresh racing the Stop): a PUBLISH the client
// sends then is not taken.
func TestClosedConnectionReadsNothingMore(t *testing.T) {
	client, server := hubtest.TCPPair(t)
	dc := &deadlineConn{Conn: server}
	defer dc.abort()

	_ = dc.Close()
	_ = dc.SetDeadline(time.Now().Add(hubtest.Timeout)) // mochi's reader, just after
	publish := []byte{0x30, 0x03, 0x00, 0x01, 'a'}
	if _, err := client.Write(publish); err != nil {
		t.Fatal(err)
	}

	if n, err := dc.Read(make([]byte, 16)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %d bytes, %v; want net.ErrClosed", n, err)
	}
	raw, err := dc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	var n int
	err = raw.Read(func(fd uintptr) bool { // as mochi's packetReader reads
		var readErr error
		n, readErr = syscall.Read(int(fd), buf)
		return !errors.Is(readErr, syscall.EAGAIN)
	})
	if n > 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a read through the RawConn after Close: %q, %v; want nothing and net.ErrClosed", buf[:max(n, 0)], err)
	}
}
