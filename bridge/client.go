package bridge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
)

// CloseReason says why the hub ended a client session. Code is the WebSocket
// close code sent with it.
type CloseReason struct {
	Code int
	Text string
}

// The reasons a session ends.
var (
	ReasonSlow        = CloseReason{4008, "slow"}            // its queue overflowed
	ReasonGoingAway   = CloseReason{1001, "going away"}      // the hub is shutting down
	ReasonClientGone  = CloseReason{1000, "client closed"}   // the client closed or the connection broke
	ReasonIdle        = CloseReason{1001, "idle timeout"}    // no pong within Config.PongWait
	ReasonWriteFailed = CloseReason{1006, "write failed"}    // a write failed or timed out
	ReasonTooLarge    = CloseReason{1009, "frame too large"} // a frame over Config.MaxFrameBytes
	ReasonFlooding    = CloseReason{1008, "rate limit"}      // far past Config.MessageRate
	ReasonRevoked     = CloseReason{4003, "revoked"}         // its user is no longer allowed
	ReasonInvalidText = CloseReason{1007, "invalid UTF-8"}   // a text frame that is not UTF-8 (RFC 6455 §8.1)
	// ReasonRefused refuses an EventSource for a session limit, or while
	// the hub shuts down: come back later (see Config.SSERefusedRetry).
	ReasonRefused = CloseReason{1013, "try again later"}
)

// format is how a client's transport wants each message encoded.
type format uint8

const (
	formatLines    format = iota // WebSocket: ["topic",payload]\n
	formatLinesIDs               // WebSocket with ids: ["topic",payload,{"id":"..."}]\n
	formatSSE                    // id: ...\ndata: ["topic",payload]\n\n

	// formatText modifies the others: a plain-text payload (not JSON) is
	// {"$text": "..."} instead of a JSON string (config/set "text": true).
	formatText format = 1 << 7
)

// client is one browser session, whatever its transport. The hub fills its
// queue; the transport's writer drains it.
type client struct {
	id        string
	transport string // "ws" or "sse"
	kind      transport
	base      string // mount prefix; "" is the root
	remote    string // host:port
	addr      string // the remote host, for limits per address
	who       auth.Identity
	opened    time.Time

	out queue
	w   writeState // how its stream is written, when the flushers do it (flusher.go)

	// Guarded by the fan-out lock (fanout.mu).
	filters    map[string]struct{} // relative to base
	format     format
	lastSeq    uint64 // the last event offered: one delivery per event even when several filters match
	started    bool   // registered for live events
	removed    bool   // detached: never in the index again
	connectSeq uint64 // the last event before the client connected: a first start replays after it
	// checkReads: some filter is not fully covered by the client's rights, so
	// each message must be checked.
	checkReads bool

	batch atomic.Bool // join queued lines into one frame; read by the writer
	ack   atomic.Bool // the client wants its commands acknowledged; read by acks
	text  atomic.Bool // plain-text payloads as {"$text": ...}; read by state reads (the fan-out reads format)
	// awaiting: a config/set of a positional hub waits for the id it names
	// (fanout.awaitID); the hello (startDefault) leaves the client alone, as
	// it is configuring itself.
	awaiting atomic.Bool

	stopOnce sync.Once
	stop     chan struct{} // closed when the session must end
	reason   CloseReason   // why; written before stop is closed
	abort    func()        // closes the transport at once; for a shutdown that ran out of time
}

func newClient(id, kind, base, remote string, who auth.Identity, f format, cfg *Config) *client {
	t := transportWS
	if kind == "sse" {
		t = transportSSE
	}
	return &client{
		id:        id,
		transport: kind,
		kind:      t,
		base:      base,
		remote:    remote,
		addr:      httpx.Host(remote),
		who:       who,
		opened:    time.Now(),
		out:       newQueue(cfg.QueueMessages, cfg.QueueBytes),
		filters:   make(map[string]struct{}),
		format:    f,
		stop:      make(chan struct{}),
		abort:     func() {},
	}
}

// close asks the session to end for reason r. Only the first reason counts;
// close reports whether it was this one. It never blocks.
func (c *client) close(r CloseReason) bool {
	first := false
	c.stopOnce.Do(func() {
		c.reason = r
		close(c.stop)
		first = true
	})
	if first {
		c.wake() // its writer writes the close
	}
	return first
}

func (c *client) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// queue is a client's outgoing queue, bounded in messages and in bytes. The
// lines it holds are shared with other clients and never modified. Beside
// the lines it holds at most one catchup, which the writer handles before
// them: the two are swapped in and out together, so that nothing queued
// before a (re)start is written after its catchup.
type queue struct {
	mu       sync.Mutex
	items    []outItem
	spare    []outItem // an emptied array a writer gave back (recycle), for the next take
	bytes    int
	pending  *catchup
	held     int // replies carried in pending's frames (see restart): they count against maxItems
	maxItems int
	maxBytes int
	overflow bool // once set, the queue refuses everything
	// notify is called when something waits that the writer has not seen
	// (see wake); set once, before the session is attached. nil: no one
	// is told (a test's client).
	notify func()
	// keepLatest: the client asked for overflow "latest" (latest.go);
	// format is the one the fan-out frames its messages in now (each
	// message queued keeps its own: outItem.format); conflated holds the
	// newest message of each topic while the queue conflates (nil
	// otherwise).
	keepLatest bool
	format     format
	conflated  *latest
}

func newQueue(maxItems, maxBytes int) queue {
	return queue{maxItems: maxItems, maxBytes: maxBytes}
}

// outItem is a queued line and when the hub took its message (unix nanos;
// 0 for a reply), for the delivery latency.
type outItem struct {
	line   []byte
	at     int64
	topic  string // a message's (absolute) topic; "" for a reply or a notice
	format format // a message's, as line is framed: a conflating queue marks its id by it (latest.go)
}

// isReply reports whether the item answers the client (see pushReply) or
// is a notice (pushNotice): anything but a message, kept across a restart.
func (it outItem) isReply() bool { return it.at == 0 }

// push appends line unless that would exceed a limit; then it drops what is
// queued, refuses everything from now on, and reports false. A single line
// larger than the byte limit is taken when the queue is empty, so that the
// limit bounds the backlog and not the largest message.
func (q *queue) push(line []byte, at int64) bool {
	return q.pushBounded(outItem{line: line, at: at})
}

// pushEvent is push for the line of a message on topic (absolute): a
// client with overflow "latest" keeps the newest of each topic (latest.go).
func (q *queue) pushEvent(line []byte, at int64, topic string) bool {
	return q.pushBounded(outItem{line: line, at: at, topic: topic})
}

// pushNotice appends a frame the hub sends on its own, neither a message
// nor an answer (a device frame): bounded in messages and bytes like a
// message, so that a browser that stops reading them is dropped as slow,
// and kept across a restart like a reply.
func (q *queue) pushNotice(frame []byte) bool {
	return q.pushBounded(outItem{line: frame})
}

// pushBounded is push and pushNotice.
func (q *queue) pushBounded(it outItem) bool {
	line := it.line
	q.mu.Lock()
	if it.topic != "" {
		// The fan-out frames a message and sets the format under its lock,
		// so the format of the moment is the line's; it may change while
		// the line waits (a config/set switching ids), and only the line's
		// own says whether it carries an id to mark.
		it.format = q.format
	}
	full := q.overflow || len(q.items) >= q.maxItems || (len(q.items) > 0 && q.bytes+len(line) > q.maxBytes)
	if !q.overflow && (q.conflated != nil || q.keepLatest && full) {
		full = !q.pushLatestLocked(it) // latest.go: the newest message of each topic
		if !full {
			q.mu.Unlock()
			return true // the queue was not empty: its writer is woken
		}
	}
	if full {
		q.overflow = true
		q.items, q.bytes, q.pending, q.conflated = nil, 0, nil, nil
		q.mu.Unlock()
		return false
	}
	wasEmpty := len(q.items) == 0 && q.pending == nil
	q.items = append(q.items, it)
	q.bytes += len(line)
	q.mu.Unlock()
	// The writer takes everything at once, so it needs waking only when the
	// queue stops being empty: while items wait, a token is pending or the
	// writer is on its way to take them.
	if wasEmpty {
		q.wake()
	}
	return true
}

// pushReply appends a frame that answers the client (a reply or an error).
// Replies count against the limits but are taken past the byte limit, so a
// large answer (the last values) does not make a client slow by itself.
func (q *queue) pushReply(frame []byte) bool {
	q.mu.Lock()
	kept := 0 // the topics a conflating queue keeps count against the bound too
	if q.conflated != nil {
		kept = q.conflated.live
	}
	if q.overflow || len(q.items)+q.held+kept >= q.maxItems {
		q.overflow = true
		q.items, q.bytes, q.pending, q.conflated = nil, 0, nil, nil
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, outItem{line: frame})
	q.bytes += len(frame)
	q.mu.Unlock()
	q.wake()
	return true
}

// restart makes cu the next thing to write. The messages queued are
// dropped: cu brings the client to where it now starts. The replies are
// not: the frames of a catchup not yet taken (a config/ok) and the replies
// queued behind it go first into cu's frames, in the order they were
// queued, so that every request the client made is answered, in order.
func (q *queue) restart(cu *catchup) {
	q.mu.Lock()
	if !q.overflow {
		var replies [][]byte
		if q.pending != nil {
			replies = append(replies, q.pending.frames...)
		}
		for _, it := range q.items {
			if it.isReply() {
				replies = append(replies, it.line)
			}
		}
		if len(replies) > 0 {
			cu.frames = append(replies, cu.frames...)
		}
		q.held = len(replies) // a client that restarts without reading still meets the bound
		clear(q.items)
		q.items, q.bytes, q.pending, q.conflated = q.items[:0], 0, cu, nil
	}
	q.mu.Unlock()
	q.wake()
}

func (q *queue) wake() {
	if q.notify != nil {
		q.notify()
	}
}

// readySignal is a notify for a writer that waits on a channel (an SSE
// stream on net/http's goroutine): it holds a token while something is
// waiting.
func readySignal(ready chan struct{}) func() {
	return func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// waiting reports whether anything is queued (a catchup, lines or
// conflated messages), or the queue overflowed.
func (q *queue) waiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0 || q.pending != nil || q.conflated != nil || q.overflow
}

// takeUpTo moves out the lines queued, when there is no catchup, the queue
// is not conflating (take copies those lines, outside the lock) and they
// are at most limit bytes; else it takes nothing and reports false.
func (q *queue) takeUpTo(limit int) ([]outItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending != nil || q.conflated != nil || q.bytes > limit {
		return nil, false
	}
	items := q.items
	q.items, q.spare, q.bytes, q.held = q.spare, nil, 0, 0
	return items, true
}

// recycle gives back an array takeUpTo returned, once its lines are
// written: the next take hands it to the queue, so that a busy client's
// queue does not grow a new array each time. An idle one lets both go
// (trim).
func (q *queue) recycle(items []outItem) {
	clear(items)
	q.mu.Lock()
	if q.spare == nil && cap(items) <= q.maxItems {
		q.spare = items[:0]
	}
	q.mu.Unlock()
}

// trim lets go of the arrays of a queue that is empty: for a client idle
// since the watchdog last looked.
func (q *queue) trim() {
	q.mu.Lock()
	if len(q.items) == 0 {
		q.items = nil
	}
	q.spare = nil
	q.mu.Unlock()
}

// take moves out the pending catchup, if any, and everything queued behind
// it, giving spare (an emptied slice from an earlier take) to the queue for
// reuse.
func (q *queue) take(spare []outItem) (*catchup, []outItem) {
	clear(spare)
	q.mu.Lock()
	cu, items, conflated := q.pending, q.items, q.conflated
	q.pending, q.items, q.bytes, q.held, q.conflated = nil, spare[:0], 0, 0, nil
	q.mu.Unlock()
	if conflated != nil { // latest.go; its lines are copied (marked) outside the lock
		items = conflated.frames(make([]outItem, 0, conflated.live+1+len(items)), items)
	}
	return cu, items
}
