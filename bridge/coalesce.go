package bridge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// coalescingConn is a WebSocket's network connection, under gorilla. While
// the session's writer drains its queue (between hold and release), the
// text frames it writes with writeText, and any frame gorilla writes
// meanwhile, gather in one buffer that goes out in one system call: a
// client sent many messages at once costs one write, not one per frame (on
// loopback, a write is most of a delivery's cost), no allocation and no
// deadline per frame. Writes outside a drain (pings, and the pongs and close
// frames gorilla sends from the reader) go straight through.
//
// Data frames bypass gorilla, which is left the handshake, the reading, and
// the control frames; both write whole frames under mu, so frames never
// interleave. Safe for concurrent use.
type coalescingConn struct {
	net.Conn
	timeout time.Duration // for each write of the buffer

	mu      sync.Mutex
	holding bool
	buf     *[]byte // while holding, from coalescePool
}

// coalesceFlushAt is how much a drain gathers before it writes: large
// enough for one write to carry many frames, small enough to bound the
// buffer (it goes back to the pool after each drain, so that an idle
// session holds none).
const coalesceFlushAt = 32 << 10

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceFlushAt); return &b }}

// hold starts gathering writes.
func (c *coalescingConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.buf = coalescePool.Get().(*[]byte)
	c.mu.Unlock()
}

// release writes what was gathered and stops gathering.
func (c *coalescingConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.flushLocked()
	c.holding = false
	coalescePool.Put(c.buf) // empty, and never grown past coalesceFlushAt: larger frames go around it
	c.buf = nil
	return err
}

// errNotHolding is a writer's mistake: writeText outside hold and release.
var errNotHolding = errors.New("bridge: websocket frame written outside a drain")

// writeText writes parts, concatenated, as one text frame: the header of an
// unmasked, final frame (RFC 6455 §5.2; a server never masks) and the
// payload, straight into the buffer. Only between hold and release.
func (c *coalescingConn) writeText(parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return errNotHolding
	}
	if len(*c.buf)+maxTextHeader+n > coalesceFlushAt {
		if err := c.flushLocked(); err != nil {
			return err
		}
	}
	if maxTextHeader+n > coalesceFlushAt { // larger than the buffer: as it is, in one writev
		var header [maxTextHeader]byte
		frame := append(net.Buffers{appendTextHeader(header[:0], n)}, parts...)
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		_, err := frame.WriteTo(c.Conn)
		return err
	}
	*c.buf = appendTextHeader(*c.buf, n)
	for _, p := range parts {
		*c.buf = append(*c.buf, p...)
	}
	return nil
}

const maxTextHeader = 10

func appendTextHeader(b []byte, n int) []byte {
	const finText = 0x81 // FIN, opcode 1 (text)
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
	}
}

func (c *coalescingConn) flushLocked() error {
	if len(*c.buf) == 0 {
		return nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.Conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	return err
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > coalesceFlushAt {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= coalesceFlushAt { // a large frame goes as it is, not through the buffer
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
			return c.Conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// SetWriteDeadline is gorilla's, before each frame: while holding, the
// buffer's writes have their own.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// coalescingWriter hands gorilla's upgrader a coalescingConn when it
// hijacks the connection.
type coalescingWriter struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *coalescingConn // set by Hijack
}

func (w *coalescingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &coalescingConn{Conn: nc, timeout: w.timeout}
	return w.conn, brw, nil
}
