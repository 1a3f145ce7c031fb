package bridge

import (
	"errors"
	"time"
)

// clientTransport is a session's way to its client, as the one writer loop
// (writeLoop) sees it; the WebSocket (ws.go) and SSE (sse.go) sessions
// implement it. centrifuge's Transport is the model. Only the session's
// writer goroutine calls its methods.
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
var errStopping = errors.New("bridge: the session is ending")

// writerTimers are what tells transports' writer loops apart.
type writerTimers struct {
	keepAlive time.Duration   // how often KeepAlive is called
	hello     time.Duration   // > 0: start the client with the defaults after this long unless it configured itself
	gone      <-chan struct{} // closed when the client is known to be gone (an SSE request's context)
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
		case <-c.out.ready:
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
