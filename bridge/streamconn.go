package bridge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// streamConn is a hijacked connection the hub writes a session's stream to
// (a WebSocket under gorilla, or a hijacked SSE response). Every write to
// it goes through one mutex, so that writes never interleave: the
// flushers' non-blocking writes (tryWrite), the session's writer's blocking
// ones (writeAll), and, for a WebSocket, the control frames gorilla writes
// from the reader (Write).
//
// No write sets a deadline: a blocking write records when it began
// (writingSince), and the hub's watchdog cuts one that takes longer than
// Config.WriteTimeout (cut). Safe for concurrent use.
type streamConn struct {
	net.Conn
	raw syscall.RawConn // nil: no non-blocking writes here (TLS, a pipe)

	mu    sync.Mutex
	since atomic.Int64 // unix nanos when the blocking write under way began; 0: none
}

func newStreamConn(nc net.Conn) *streamConn {
	return &streamConn{Conn: nc, raw: rawConnOf(nc)}
}

// errBusy says tryWrite could not try: the connection cannot write without
// waiting, or another write is under way.
var errBusy = errors.New("the connection is busy")

// tryWrite writes what it can of b at once, without waiting (one system
// call): n < len(b) when the socket is full. errBusy means it wrote nothing
// and did not try; any other error, that the connection is broken.
// w is the caller's, reused from one write to the next.
func (c *streamConn) tryWrite(b []byte, w *rawWrite) (int, error) {
	if c.raw == nil || !c.mu.TryLock() {
		return 0, errBusy
	}
	defer c.mu.Unlock()
	return w.writeNow(c.raw, b)
}

// writeAll writes b, waiting as long as it takes: the watchdog bounds it.
func (c *streamConn) writeAll(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(b)
}

func (c *streamConn) writeLocked(b []byte) error {
	c.since.Store(time.Now().UnixNano())
	_, err := c.Conn.Write(b)
	c.since.Store(0)
	return err
}

// writeBuffers writes bufs, in order, in one writev where it can: a frame
// too large to gather, written from where it is.
func (c *streamConn) writeBuffers(bufs net.Buffers) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.since.Store(time.Now().UnixNano())
	_, err := bufs.WriteTo(c.Conn)
	c.since.Store(0)
	return err
}

// Write is gorilla's, for the control frames it writes (pongs, close
// frames): one blocking write, bounded by the watchdog.
func (c *streamConn) Write(p []byte) (int, error) {
	if err := c.writeAll(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline is gorilla's, before each control frame: the watchdog
// bounds writes instead, and no deadline is set per write.
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// writingSince is when the blocking write under way began; zero: none.
func (c *streamConn) writingSince() int64 { return c.since.Load() }

// cut makes the write under way fail at once, and every write after it.
func (c *streamConn) cut() { _ = c.Conn.SetWriteDeadline(time.Unix(1, 0)) }

// NetConn is the connection under c (for package linger).
func (c *streamConn) NetConn() net.Conn { return c.Conn }

// waitReadable returns once the connection has something to read (or
// has ended, or its read deadline passed), reading nothing: a reader that
// waits here, at a shallow stack, before it reads, keeps an idle
// session's goroutine small. Without a descriptor (TLS) it returns at once.
func (c *streamConn) waitReadable() {
	if c.raw != nil {
		waitReadable(c.raw)
	}
}

// wsReadBuffer is the size of a WebSocket session's read buffer, which
// gorilla reads frames through: the smallest it takes as its own (more
// than 256 bytes), rounded up to an allocation size class.
const wsReadBuffer = 288

// hijackingWriter hands gorilla's upgrader a streamConn when it hijacks the
// connection, and a read buffer of the session's (br), smaller than
// net/http's, whose Buffered the reader can ask (see wsSession.readLoop).
type hijackingWriter struct {
	http.ResponseWriter
	conn *streamConn   // set by Hijack
	br   *bufio.Reader // set by Hijack: gorilla's read buffer
}

func (w *hijackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = newStreamConn(nc)
	if brw.Reader.Buffered() > 0 {
		return w.conn, brw, nil // the client spoke before the handshake: gorilla refuses it
	}
	// gorilla reads through br (Upgrader.ReadBufferSize is 0, and br is
	// larger than 256 bytes): net/http's 4 KiB reader goes back to its pool.
	w.br = bufio.NewReaderSize(w.conn, wsReadBuffer)
	return w.conn, bufio.NewReadWriter(w.br, brw.Writer), nil
}
