package bridge

import (
	"errors"
	"net"
	"sync"
	"time"
)

// A session's stream is written one of two ways:
//
//   - scheduled (WebSocket, hijacked SSE): by the flushers (flusher.go) and,
//     when a write would wait, by a writer goroutine started for that client
//     alone (runWriter), which ends once the queue is empty; the watchdog
//     (watchdog.go) drives their keep-alives and timeouts;
//   - on its own goroutine (an SSE stream net/http could not hand over, as
//     HTTP/2's): writeLoop, with its own ticker and deadlines.

// writerBufferSize is how much a writer gathers before a write.
const writerBufferSize = 32 << 10

var writerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writerBufferSize); return &b }}

// startWriter hands c, which the caller owns, to a writer goroutine of its
// own, which writes rest first (what a non-blocking write left). The hub's
// sessions WaitGroup holds the session, and the session's reader waits for
// its close, so the goroutine never outlives the hub.
func (h *Hub) startWriter(c *client, rest []byte) {
	go h.runWriter(c, rest, false)
}

// startBrokenWriter hands c, whose connection failed, to a writer goroutine
// that only closes it.
func (h *Hub) startBrokenWriter(c *client) {
	go h.runWriter(c, nil, true)
}

// runWriter owns c until its queue is empty (then it lets go and ends) or
// its session ends (then it writes the close and ends). Its writes wait as
// long as the socket does: the watchdog cuts one that waits too long.
func (h *Hub) runWriter(c *client, rest []byte, broken bool) {
	tx := c.w.tx
	conn := tx.stream()
	var err error
	if len(rest) > 0 && !broken {
		err = conn.writeAll(rest)
	}
	bufp := writerBuffers.Get().(*[]byte)
	defer writerBuffers.Put(bufp)
	g := gatherer{conn: conn, c: c, tx: tx, buf: (*bufp)[:0]}
	var d drainer
	for err == nil && !broken && !c.stopped() {
		if c.w.ping.Swap(false) {
			g.buf = append(g.buf, tx.keepAlive()...)
		}
		err = h.drain(c, &d, g.write) // d's arrays go back and forth with the queue's; the watchdog trims an idle queue's
		c.w.used.Store(true)
		if ferr := g.flush(); err == nil {
			err = ferr
		}
		if err == nil && !c.release() {
			*bufp = g.buf[:0]
			return // nothing more: idle again
		}
	}
	*bufp = g.buf[:0]
	switch {
	case errors.Is(err, errStopping):
	case err != nil:
		c.close(ReasonWriteFailed) // unless the session was already ending for another reason
		broken = true
	}
	tx.close(c.reason, broken)
	c.finish()
}

// stopCheckEvery is how many lines a writer writes between two looks at
// whether the session is ending: often enough that a slow client's close
// waits behind little, rarely enough to cost nothing per line.
const stopCheckEvery = 32

// gatherer is a writer's buffer: the frames of a drain go out in as few
// writes as they fit.
type gatherer struct {
	conn *streamConn
	c    *client
	tx   streamTransport
	buf  []byte
}

// write frames lines into the buffer, writing it whenever the next lines
// do not fit; a line larger than the buffer goes out from where it is. It
// stops with errStopping, every few lines, once the session is ending, so
// that the close is not queued behind lines nobody waits for.
func (g *gatherer) write(lines [][]byte) error {
	for len(lines) > 0 {
		if g.c.stopped() {
			return errStopping
		}
		if size := len(lines[0]); size+maxTextHeader > writerBufferSize {
			if err := g.flush(); err != nil {
				return err
			}
			var header [maxTextHeader]byte // the frame's header (none for SSE), then the line from where it is
			if err := g.conn.writeBuffers(net.Buffers{g.tx.appendHeader(header[:0], size), lines[0]}); err != nil {
				return err
			}
			lines = lines[1:]
			continue
		}
		// As many lines as fit in what is left of the buffer, at most
		// stopCheckEvery: they go in together (a batch joins them).
		room := writerBufferSize - len(g.buf)
		n, size := 0, 0
		for n < len(lines) && n < stopCheckEvery && size+len(lines[n])+maxTextHeader <= room {
			size += len(lines[n]) + maxTextHeader
			n++
		}
		if n == 0 {
			if err := g.flush(); err != nil {
				return err
			}
			continue
		}
		g.buf = g.tx.appendLines(g.buf, lines[:n])
		lines = lines[n:]
	}
	return nil
}

// flush writes what the buffer holds.
func (g *gatherer) flush() error {
	if len(g.buf) == 0 {
		return nil
	}
	err := g.conn.writeAll(g.buf)
	g.buf = g.buf[:0]
	return err
}

// clientTransport is a session's way to its client, as a writer loop on the
// session's own goroutine (writeLoop) sees it; an SSE stream that net/http
// could not hand over implements it. Only that goroutine calls its methods.
type clientTransport interface {
	// WriteMany writes frames in order, each a whole Clown.Talk line (or
	// the lines of a batch) or SSE event. A transport may gather them until
	// Flush; it stops early with errStopping once the session is ending, so
	// that its close is not queued behind lines nobody waits for.
	WriteMany(frames [][]byte) error
	// Flush ends a drain: what WriteMany gathered goes out now.
	Flush() error
	// KeepAlive is the idle tick: a WebSocket ping, an SSE comment.
	KeepAlive() error
	// Close ends the session for reason r, telling the client why when it
	// can (broken: a write failed, a frame may have been cut short, nothing
	// more can be written).
	Close(r CloseReason, broken bool)
}

// errStopping ends a drain early: the session is ending, and what is left
// of the queue would only delay the close.
var errStopping = errors.New("the session is ending")

// writerTimers are what tells transports' writer loops apart.
type writerTimers struct {
	keepAlive time.Duration   // how often KeepAlive is called
	hello     time.Duration   // > 0: start the client with the defaults after this long unless it configured itself
	gone      <-chan struct{} // closed when the client is known to be gone (an SSE request's context)
	ready     <-chan struct{} // holds a token while something is queued (the queue's notify is readySignal(ready))
}

// writeLoop is every session's writer: it drains c's queue to t, one drain
// at a time (all that is waiting, flushed once), until the session ends,
// and then closes t. Its caller owns it and waits for it.
func (h *Hub) writeLoop(c *client, t clientTransport, timers writerTimers) {
	keepAlive := time.NewTicker(timers.keepAlive)
	defer keepAlive.Stop()
	var hello <-chan time.Time
	if timers.hello > 0 {
		timer := time.NewTimer(timers.hello)
		defer timer.Stop()
		hello = timer.C
	}
	write := t.WriteMany // bound once: a drain allocates nothing for it
	var drained drainer
	for {
		var err error
		select {
		case <-timers.ready:
			err = h.drain(c, &drained, write)
			if ferr := t.Flush(); err == nil || errors.Is(err, errStopping) && ferr != nil {
				err = ferr
			}
		case <-hello:
			h.fan.startDefault(c)
		case <-keepAlive.C:
			drained.idle(&c.out)
			err = t.KeepAlive()
		case <-c.stop:
			t.Close(c.reason, false)
			return
		case <-timers.gone:
			c.close(ReasonClientGone)
			t.Close(c.reason, false)
			return
		}
		if errors.Is(err, errStopping) {
			t.Close(c.reason, false)
			return
		}
		if err != nil {
			c.close(ReasonWriteFailed) // unless the session was already ending for another reason
			t.Close(c.reason, true)
			return
		}
	}
}
