package bridge

import (
	"sync"
	"time"
)

// watchdog keeps the time of every scheduled session, on one goroutine of
// the hub's, instead of a ticker, a timer and a deadline per session: on a
// coarse tick it goes over the sessions and
//
//   - cuts a write that has waited past Config.WriteTimeout (the session
//     ends with ReasonWriteFailed);
//   - closes a WebSocket not heard from in Config.PongWait (ReasonIdle);
//   - makes a keep-alive due every keep-alive period (a WebSocket ping at
//     3/4 of PongWait, an SSE comment every Config.KeepAlive);
//
// and, at its own moment, starts with the default filters each WebSocket
// that has not configured itself Config.HelloTimeout after it opened.
//
// Its lock is a leaf, held to add or remove a session, or to copy a chunk
// of them (scanChunk); a session's checks are atomic loads, and what they
// lead to (a close, a wake) takes only that session's locks.
type watchdog struct {
	hub          *Hub
	tick         time.Duration
	writeTimeout int64 // nanoseconds

	mu      sync.Mutex
	members []*client     // the scheduled sessions: at most Config.MaxSessions
	hello   []helloDue    // in the order they are due; see the bound in addHello
	wake    chan struct{} // a first hello is due before the next tick
	stop    chan struct{}
	done    chan struct{}
}

// helloDue is when a WebSocket that has not configured itself starts with
// the defaults.
type helloDue struct {
	at int64 // unix nanos
	c  *client
}

// scanChunk is how many sessions the watchdog copies per hold of its lock.
const scanChunk = 256

// watchdogTick is the watchdog's period: a tenth of the shortest of the
// timeouts it keeps, within [5 ms, 1 s].
func watchdogTick(cfg *Config) time.Duration {
	return min(max(min(cfg.WriteTimeout, cfg.PongWait, cfg.KeepAlive)/10, 5*time.Millisecond), time.Second)
}

func newWatchdog(h *Hub) *watchdog {
	w := &watchdog{hub: h, tick: watchdogTick(&h.cfg), writeTimeout: int64(h.cfg.WriteTimeout),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// close stops the watchdog: after every session ended.
func (w *watchdog) close() {
	close(w.stop)
	<-w.done
}

// add registers c, whose transport is set, with its keep-alive period;
// hello > 0 starts it with the defaults after that long unless it
// configured itself.
func (w *watchdog) add(c *client, keepAlive, hello time.Duration) {
	now := time.Now().UnixNano()
	c.w.heard.Store(now)
	w.mu.Lock()
	c.w.slot = len(w.members)
	c.w.nextPing = now + int64(keepAlive)
	w.members = append(w.members, c)
	first := false
	if hello > 0 {
		w.addHelloLocked(helloDue{at: now + int64(hello), c: c})
		first = len(w.hello) == 1
	}
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// addHelloLocked appends h to the hellos. An entry stays until it is due,
// even when its session ended; once they are twice Config.MaxSessions, the
// entries of ended sessions are dropped, so that at most 2×MaxSessions
// entries wait (at most MaxSessions sessions are attached).
func (w *watchdog) addHelloLocked(h helloDue) {
	if len(w.hello) >= 2*w.hub.cfg.MaxSessions {
		kept := w.hello[:0]
		for _, e := range w.hello {
			if e.c.w.slot >= 0 {
				kept = append(kept, e)
			}
		}
		clear(w.hello[len(kept):])
		w.hello = kept
	}
	w.hello = append(w.hello, h)
}

// remove forgets c: its session ended.
func (w *watchdog) remove(c *client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := c.w.slot
	if i < 0 || i >= len(w.members) || w.members[i] != c {
		return
	}
	last := len(w.members) - 1
	w.members[i] = w.members[last]
	w.members[i].w.slot = i
	w.members[last] = nil
	w.members = w.members[:last]
	c.w.slot = -1
	if cap(w.members) > 1024 && len(w.members) < cap(w.members)/4 {
		w.members = append([]*client(nil), w.members...) // a peak's array is not kept
	}
}

func (w *watchdog) run() {
	defer close(w.done)
	timer := time.NewTimer(w.tick)
	defer timer.Stop()
	nextScan := time.Now().Add(w.tick)
	var chunk []*client
	for {
		select {
		case <-timer.C:
		case <-w.wake:
		case <-w.stop:
			return
		}
		now := time.Now()
		if !now.Before(nextScan) {
			chunk = w.scan(now.UnixNano(), chunk)
			nextScan = now.Add(w.tick)
		}
		next := w.greet(now.UnixNano())
		wait := time.Until(nextScan)
		if next != 0 {
			wait = min(wait, time.Duration(next-time.Now().UnixNano()))
		}
		timer.Reset(max(wait, time.Millisecond))
	}
}

// scan checks every session, a chunk at a time.
func (w *watchdog) scan(now int64, chunk []*client) []*client {
	for i := 0; ; i += scanChunk {
		w.mu.Lock()
		if i >= len(w.members) {
			w.mu.Unlock()
			break
		}
		chunk = append(chunk[:0], w.members[i:min(i+scanChunk, len(w.members))]...)
		// nextPing is the watchdog's own, under its lock.
		for _, c := range chunk {
			if now >= c.w.nextPing {
				c.w.nextPing = now + int64(w.keepAliveOf(c))
				c.w.ping.Store(true)
			}
		}
		w.mu.Unlock()
		for _, c := range chunk {
			w.check(c, now)
		}
	}
	clear(chunk)
	return chunk
}

// keepAliveOf is c's keep-alive period.
func (w *watchdog) keepAliveOf(c *client) time.Duration {
	if c.kind == transportSSE {
		return w.hub.cfg.KeepAlive
	}
	return pingPeriod(w.hub.cfg.PongWait)
}

// pingPeriod is how often a WebSocket is pinged: at 3/4 of pongWait, so that
// the answer has a quarter of it, more than the watchdog's tick (a tenth at
// most) by which a ping may go out late.
func pingPeriod(pongWait time.Duration) time.Duration { return pongWait * 3 / 4 }

// check applies the timeouts to c, and wakes it for a keep-alive due.
func (w *watchdog) check(c *client, now int64) {
	conn := c.w.tx.stream()
	if since := conn.writingSince(); since != 0 && now-since > w.writeTimeout {
		c.close(ReasonWriteFailed)
		conn.cut()
		return
	}
	if c.kind == transportWS && now-c.w.heard.Load() > int64(w.hub.cfg.PongWait) {
		c.close(ReasonIdle)
		return
	}
	if c.w.ping.Load() {
		c.wake()
	}
	if !c.w.used.Swap(false) {
		c.out.trim() // idle since the last look: its queue holds no array
	}
}

// greet starts the sessions whose hello is due, and returns when the next
// one is (0: none waits).
func (w *watchdog) greet(now int64) int64 {
	for {
		w.mu.Lock()
		if len(w.hello) == 0 {
			w.hello = nil
			w.mu.Unlock()
			return 0
		}
		e := w.hello[0]
		if e.at > now {
			w.mu.Unlock()
			return e.at
		}
		w.hello[0] = helloDue{}
		w.hello = w.hello[1:]
		attached := e.c.w.slot >= 0
		w.mu.Unlock()
		if attached {
			w.hub.fan.startDefault(e.c) // nothing if it configured itself
		}
	}
}
