package bridge

import (
	"sync"
	"sync/atomic"
	"time"
)

// How a scheduled session's stream is written (WebSocket, hijacked SSE):
// no goroutine waits on an idle session's queue. A queue that stops being
// empty puts its client on its flush shard's ready list; the shard's
// goroutine gathers the client's frames into one buffer and tries one
// write that never waits. When the socket takes it all, the client holds
// nothing again. When it would wait (the socket is full), when there is a
// catchup to write (a replay, a resync), more than a shard's buffer, or a
// connection without non-blocking writes (TLS), a writer goroutine is
// started for that client alone (writer.go): it writes with blocking
// writes, drains the queue until it is empty, and ends.
//
// A client has one writer at a time: its writeState.owner says whether it
// is idle, or owned (on a shard's list, being flushed by the shard, or
// being written by its writer goroutine), or done (its session's close was
// written). Only the owner takes from the queue and writes. Whoever has
// something for the client (a push, a keep-alive, a close) calls wake,
// which makes an idle client owned and puts it on its shard's list; an
// owner that runs out of work lets go (release) and then looks once more,
// so that nothing woken meanwhile is left behind.

// The states of writeState.owner.
const (
	writeIdle  int32 = iota // nothing to write, no one on it
	writeOwned              // on a shard's list, flushed by it, or its writer's
	writeDone               // the session's close has been written: nothing more
)

// streamTransport is a scheduled session's way to its client, as its
// shard and its writer see it; the WebSocket (ws.go) and the hijacked SSE
// stream (sse.go) implement it. Only the client's owner calls it, but for
// stream, which the watchdog reads.
type streamTransport interface {
	// appendLines appends lines to dst, framed for the client (WebSocket
	// frames; SSE events as they are).
	appendLines(dst []byte, lines [][]byte) []byte
	// appendHeader appends to dst what goes before a line of size bytes
	// written on its own (a WebSocket frame's header; nothing for SSE).
	appendHeader(dst []byte, size int) []byte
	// keepAlive is the frame of the idle tick: a ping, an SSE comment.
	keepAlive() []byte
	// stream is the connection the stream goes to.
	stream() *streamConn
	// close ends the session for reason r, telling the client why when it
	// can (broken: a write failed, nothing more can be written). It may
	// wait on the network: only a writer goroutine calls it.
	close(r CloseReason, broken bool)
}

// writeState is a scheduled client's side of the flushers and the
// watchdog. Its zero value is a client that is not scheduled (an
// SSE stream on net/http's own goroutine, a test's).
type writeState struct {
	tx    streamTransport
	shard *flushShard
	owner atomic.Int32
	ping  atomic.Bool   // a keep-alive is due
	used  atomic.Bool   // written to since the watchdog last looked: its queue keeps its arrays
	heard atomic.Int64  // unix nanos when the client was last heard from (a frame, a pong); for the idle timeout
	done  chan struct{} // closed once the session's close is written (writeDone)

	// The watchdog's own (under its lock).
	slot     int   // index in the watchdog's members
	nextPing int64 // unix nanos
}

// scheduled reports whether c's stream is written by the flushers.
func (c *client) scheduled() bool { return c.w.shard != nil }

// wake makes sure someone will look at c: an idle client goes on its
// shard's list, an owned one is looked at again by its owner before it
// lets go. O(1), and it never blocks: the publish path calls it.
func (c *client) wake() {
	if c.w.shard != nil && c.w.owner.CompareAndSwap(writeIdle, writeOwned) {
		c.w.shard.add(c)
	}
}

// release lets go of c after its owner found nothing more to do, and
// reports whether the caller owns it again because something came
// meanwhile: then it must go on.
func (c *client) release() bool {
	c.w.owner.Store(writeIdle)
	return c.hasWork() && c.w.owner.CompareAndSwap(writeIdle, writeOwned)
}

// hasWork reports whether c's owner has something to do.
func (c *client) hasWork() bool {
	return c.stopped() || c.w.ping.Load() || c.out.waiting()
}

// finish marks c's close written: its reader may linger and detach it.
func (c *client) finish() {
	c.w.owner.Store(writeDone)
	close(c.w.done)
}

// flushers are the hub's flush shards.
type flushers struct {
	shards []*flushShard
	next   atomic.Uint32 // round robin of new sessions over the shards
	wg     sync.WaitGroup
	stop   chan struct{}
}

// flushBufferSize is a shard's buffer: the most one client's frames can
// take in one try. A client with more waiting goes to its writer.
const flushBufferSize = 64 << 10

// coalesceFrom is the width of a pass (clients flushed) from which a shard
// waits before its next one, and coalesceFull the width at which it waits
// the whole Config.CoalesceWindow: a wider pass waits longer, so that each
// client gets fewer, larger writes, and a narrow one (low load) not at all.
const (
	coalesceFrom = 64
	coalesceFull = 1024
)

// helpAfterMin is the least a shard's non-empty ready list waits before a
// delivery runs its pass (twice Config.CoalesceWindow when that is longer,
// so that a wide pass's pause is left alone): short enough that a client's
// queue holds far more than the messages of that long at any rate the hub
// sustains, long enough that the shard's own goroutine runs almost every
// pass below saturation.
const helpAfterMin = 5 * time.Millisecond

func newFlushers(h *Hub, n int) *flushers {
	f := &flushers{}
	for range n {
		sh := &flushShard{hub: h, wake: make(chan struct{}, 1), window: h.cfg.CoalesceWindow,
			helpAfter: int64(max(helpAfterMin, 2*h.cfg.CoalesceWindow))}
		f.shards = append(f.shards, sh)
	}
	f.start()
	return f
}

// start starts the shards' goroutines, until close.
func (f *flushers) start() {
	f.stop = make(chan struct{})
	for _, sh := range f.shards {
		f.wg.Go(func() { sh.run(f.stop) })
	}
}

// help lets the caller, a delivery, run the pass of any shard whose ready
// list has waited too long (see flushShard). O(shards).
func (f *flushers) help(now time.Time) {
	at := monoNanos(now)
	for _, sh := range f.shards {
		sh.help(at)
	}
}

// monoStart is what monoNanos counts from.
var monoStart = time.Now()

// monoNanos is t on the monotonic clock, in nanoseconds after monoStart
// (at least 1: 0 means "not set").
func monoNanos(t time.Time) int64 {
	return max(1, int64(t.Sub(monoStart)))
}

// assign gives c a shard.
func (f *flushers) assign(c *client) {
	c.w.shard = f.shards[int(f.next.Add(1))%len(f.shards)]
}

// close stops the shards' goroutines: after every session ended.
func (f *flushers) close() {
	close(f.stop)
	f.wg.Wait()
}

// flushShard is one flusher: a goroutine that writes the clients on its
// ready list, in the order they became ready.
//
// On one core, the shard's goroutine is one runnable goroutine among those
// of every device being read: woken behind them, it can wait a whole round
// of them (tens of milliseconds at 50,000 messages/s), long enough for a
// dashboard getting every message to fill its queue. So a list waiting
// longer than helpAfter is flushed by the next delivery's goroutine instead
// (help): a pass is run by whoever holds pass, the shard's goroutine or a
// helper, one at a time, and its writes never wait either way.
type flushShard struct {
	hub       *Hub
	window    time.Duration
	helpAfter int64 // nanoseconds a non-empty list waits before a delivery flushes it (see help)

	mu      sync.Mutex
	ready   []*client    // each client at most once (it is owned while on it): at most the sessions
	waiting atomic.Int64 // monoNanos when ready became non-empty; 0 while it is empty (set under mu)
	passEnd atomic.Int64 // monoNanos when the last pass ended
	listed  atomic.Int32 // len(ready) (set under mu)
	wake    chan struct{}

	// pass is held to run a pass; it guards what follows.
	pass   sync.Mutex
	batch  []*client
	buf    []byte
	lines  [][]byte
	raw    rawWrite
	passes uint64 // passes run (for tests)
	helped uint64 // of them, run by a delivery's goroutine (for tests)
}

// add puts c, which the caller just made owned, on the ready list.
func (sh *flushShard) add(c *client) {
	sh.mu.Lock()
	sh.ready = append(sh.ready, c)
	sh.listed.Store(int32(min(len(sh.ready), coalesceFrom)))
	first := len(sh.ready) == 1
	if first {
		sh.waiting.Store(monoNanos(time.Now()))
	}
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

func (sh *flushShard) run(stop <-chan struct{}) {
	var timer *time.Timer
	var lastStart time.Time // when the last pass began
	for {
		select {
		case <-sh.wake:
		case <-stop:
			return
		}
		waited := false // the shard waited after its last pass
		for {
			start := time.Now()
			sh.pass.Lock()
			n, most := sh.runPass()
			sh.pass.Unlock()
			busy := sh.busy(start.Sub(lastStart), waited, most)
			lastStart = start
			if n == 0 {
				break
			}
			wait := sh.waitAfter(n, most, busy, time.Since(start))
			waited = wait > 0
			if !waited {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-stop:
				timer.Stop()
				return
			}
		}
	}
}

// runPass flushes the clients on the ready list, and returns how many and
// the most messages one of them had waiting. The caller holds sh.pass.
func (sh *flushShard) runPass() (n, most int) {
	sh.mu.Lock()
	batch := sh.ready
	sh.ready = sh.batch[:0]
	sh.waiting.Store(0)
	sh.listed.Store(0)
	sh.mu.Unlock()
	n = len(batch)
	if n > 0 {
		sh.passes++
	}
	for _, c := range batch {
		most = max(most, sh.flush(c))
	}
	clear(batch)
	if cap(batch) > coalesceFull && n < coalesceFull/4 {
		batch = nil // a peak's list is not kept
	}
	sh.batch = batch
	if n > 0 {
		sh.passEnd.Store(monoNanos(time.Now()))
	}
	return n, most
}

// help runs a pass on the caller's goroutine when the ready list is
// narrow (fewer than coalesceFrom clients: a few clients that each get
// many messages, as dashboards on "#", which fill their queues first), has
// waited longer than helpAfter at now (monoNanos), no pass has ended for as
// long (a long pass of the shard's is not followed by a helper's, which
// would cut its pause short), and no pass is running. A wide list is left
// to the shard, whose pauses coalesce it. A delivery calls help, under
// none of the hub's locks; it never blocks: its writes are the shard's,
// which never wait. O(1) when there is nothing to do.
func (sh *flushShard) help(now int64) {
	since := sh.waiting.Load()
	if since == 0 || sh.listed.Load() >= coalesceFrom ||
		now-max(since, sh.passEnd.Load()) < sh.helpAfter || !sh.pass.TryLock() {
		return
	}
	if n, _ := sh.runPass(); n > 0 {
		sh.helped++
	}
	sh.pass.Unlock()
}

// waitAfter is how long the shard waits before its next pass, after a
// pass over n clients that found it busy or not (see busy), found at most
// most messages for a client, and lasted took: a wide pass waits its
// pause, a busy narrow one until busyGap after it began (the whole window
// when a client had coalesceMany messages or more), any other not at all.
func (sh *flushShard) waitAfter(n, most int, busy bool, took time.Duration) time.Duration {
	if n >= coalesceFrom {
		return sh.pause(n)
	}
	if !busy {
		return 0
	}
	gap := sh.busyGap()
	if most >= coalesceMany {
		gap = max(gap, sh.window)
	}
	return max(0, gap-took)
}

// coalesceMany is how many messages a client of a busy narrow pass has
// waiting for the shard to wait the whole Config.CoalesceWindow before
// its next pass, rather than busyGap: at such rates (a dashboard on "#"
// during an ingest: tens of thousands of messages a second) a write's own
// cost, not its bytes, is most of what the kernel spends on it (on
// loopback, 2.5 µs for 2.5 KB, 3.1 µs for 10 KB), so that four times fewer,
// larger writes cost about a third, for 1.5 ms more latency. The shard
// keeps waiting the window while a pass after it finds as many (a rate a
// quarter of the one that made it start), and goes back to busyGap below.
const coalesceMany = 16

// busy reports whether the shard is busy at a pass that began since after
// the one before and found at most most messages for a client: the pass
// before began less than busyGap earlier, or the shard waited after it
// (waited) and a client got several messages meanwhile (the wait may have
// been longer than asked: a timer under a millisecond may take one).
func (sh *flushShard) busy(since time.Duration, waited bool, most int) bool {
	return since < sh.busyGap() || waited && most > 1
}

// pause is how long the shard waits after a wide pass over n clients.
func (sh *flushShard) pause(n int) time.Duration {
	if sh.window <= 0 || n < coalesceFrom {
		return 0
	}
	return sh.window * time.Duration(min(n, coalesceFull)) / coalesceFull
}

// busyGap is the least time between the starts of two passes while the
// shard is busy: when a pass begins within this of the one before
// (messages come faster than that), the shard waits until this long after
// its start before the next one (longer at high rates: coalesceMany), and
// stays busy while each pass after a wait finds a client with several
// messages. A few clients that each get every message (dashboards on "#"
// during an ingest) then get a few messages per write, not one write per
// message, at the cost of about this much latency (a timer under a
// millisecond may take one when the process has nothing else to do); at a
// lower rate nothing waits. A quarter of the coalescing window; none when
// that is off.
func (sh *flushShard) busyGap() time.Duration {
	return max(0, sh.window/4)
}

// flush writes what c has waiting, which the shard owns, in one try; what
// it cannot write without waiting goes to c's writer. It returns how many
// messages it took (0 when c went to its writer at once).
func (sh *flushShard) flush(c *client) int {
	h, tx := sh.hub, c.w.tx
	if c.stopped() || tx.stream().raw == nil {
		h.startWriter(c, nil)
		return 0
	}
	items, ok := c.out.takeUpTo(flushBufferSize - flushBufferSize/8) // room for the frames' headers
	if !ok {
		h.startWriter(c, nil)
		return 0
	}
	taken := len(items)
	clear(sh.lines)
	sh.lines = sh.lines[:0]
	for _, it := range items {
		sh.lines = append(sh.lines, it.line)
	}
	buf := sh.buf[:0]
	if c.w.ping.Swap(false) {
		buf = append(buf, tx.keepAlive()...)
	}
	buf = tx.appendLines(buf, sh.lines)
	if cap(buf) <= 2*flushBufferSize {
		sh.buf = buf // a batch's headers may take more than the eighth left for them
	}
	n, err := tx.stream().tryWrite(buf, &sh.raw)
	if err == nil || err == errBusy {
		h.countWritten(c, items)
	}
	clear(sh.lines)
	c.out.recycle(items)
	c.w.used.Store(true)
	switch {
	case err == errBusy || err == nil && n < len(buf):
		h.startWriter(c, append([]byte(nil), buf[n:]...))
		return taken
	case err != nil:
		c.close(ReasonWriteFailed)
		h.startBrokenWriter(c)
		return taken
	}
	if c.release() {
		// Woken meanwhile: the shard owns c again. Its turn comes after
		// the others on the list.
		sh.add(c)
	}
	return taken
}
