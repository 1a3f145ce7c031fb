//go:build unix

package bridge

import (
	"net"
	"syscall"
)

// rawConnOf is nc's file descriptor, for writes that never wait: a TCP or
// Unix socket; nil for anything else (TLS).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	if _, tcp := nc.(*net.TCPConn); !tcp {
		if _, unix := nc.(*net.UnixConn); !unix {
			return nil
		}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// rawWrite is a non-blocking write's state, reused from one write to the
// next: its callback, bound once, allocates nothing per write.
type rawWrite struct {
	b    []byte
	n    int
	err  error
	call func(fd uintptr) bool
}

// writeNow makes one write(2) of b on raw's descriptor, which the runtime
// keeps non-blocking: the callback reports done after one attempt, so the
// goroutine never parks. A full socket writes part of b, or none.
func (w *rawWrite) writeNow(raw syscall.RawConn, b []byte) (int, error) {
	if w.call == nil {
		w.call = w.write
	}
	w.b = b
	err := raw.Write(w.call)
	n, werr := w.n, w.err
	w.b, w.n, w.err = nil, 0, nil
	switch {
	case err != nil:
		return 0, err // closed, or cut by the watchdog
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

func (w *rawWrite) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.b)
	return true
}

// waitReadable returns once raw's descriptor has something to read, has
// reached its end or failed, or its read deadline passed; it reads
// nothing (a peek of one byte that does not wait). The caller waits here,
// at a shallow stack, instead of deep in a reader.
func waitReadable(raw syscall.RawConn) {
	var peek [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}
