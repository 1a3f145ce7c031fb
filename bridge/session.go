package bridge

import (
	"errors"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/topics"
)

// How a session starts, and how it resumes without a gap or a duplicate:
//
// Under the fan-out lock, (re)starting a client registers its filters for
// live events from liveFrom = seq+1 on, empties its queue, and leaves in it a
// catchup for what comes before: the events after the client's position,
// which the writer reads from the log in chunks, or, when the log no longer
// has them, a resync notice and the last values. Deliveries take the same
// lock, so every event is either below liveFrom (in the catchup) or at or
// above it (in the queue), never both and never neither; the writer writes
// the catchup first.
//
// Every (re)start is one of the fan-out's methods below (a config/set, an
// SSE stream, the default filters, a resync); the writer's side follows.

// replayChunk is how many log entries a writer reads at a time.
const replayChunk = 256

// catchup is what a (re)started session writes before its live queue.
type catchup struct {
	frames   [][]byte     // written first, in order (config/ok; SSE's starting id)
	resync   ResyncNotice // with a Code: the client could not resume, for this reason; it gets the last values
	values   []*Value     // with resync: every topic's last value, filtered by the writer (outside every lock)
	state    []string     // with resync: the filters of the values, relative to base
	replay   bool         // replay the log's events with after < seq < liveFrom
	after    uint64       // the event the client has; with resync, the one the values bring it to
	liveFrom uint64
	base     string
	filters  []string // absolute, for the replay
	format   format
	who      auth.Identity
	check    bool // check each replayed message against who's rights
}

// resolveLocked decides where a client holding event id `since` continues
// with filters (relative to base): after the event it names, or, with a
// reason, from the last values.
func (f *fanout) resolveLocked(since, base string, filters []string) (after uint64, resync ResyncNotice) {
	epoch, seq, ok := parseEventID(since)
	abs := make([]string, len(filters))
	for i, fl := range filters {
		abs[i] = topics.Mount(base, fl)
	}
	switch {
	case isConflatedID(since): // latest.go
		return f.seq, resyncConflated
	case !ok:
		return f.seq, resyncInvalidID
	case epoch != f.epoch:
		return f.seq, resyncOtherEpoch
	case seq > f.seq: // for a positional hub, still ahead after awaitID
		return f.seq, resyncUnknownID
	case seq < f.resumeFloor:
		return f.seq, resyncBrokerDown
	case !f.events.covers(seq, time.Now()):
		return f.seq, resyncTooOld
	case !f.interest.covered(abs, &seq):
		return f.seq, notFollowedReason(filters)
	}
	return seq, ResyncNotice{}
}

// resumePoint is where a stream of filters (relative to base) that holds
// event id since goes on (see resolveLocked); with no since, from now.
func (f *fanout) resumePoint(since, base string, filters []string) (after uint64, resync ResyncNotice) {
	f.awaitID(since)
	f.mu.Lock()
	defer f.mu.Unlock()
	if since == "" {
		return f.seq, ResyncNotice{}
	}
	return f.resolveLocked(since, base, filters)
}

// beginLocked registers c for live events on filters and returns the
// catchup that brings it there from after (or, with resync, from the last
// values). The caller queues it with c.out.restart, under f.mu.
func (f *fanout) beginLocked(c *client, filters []string, after uint64, resync ResyncNotice) (*catchup, error) {
	if err := f.replaceFiltersLocked(c, filters); err != nil {
		return nil, err
	}
	c.started = true
	cu := &catchup{after: after, liveFrom: f.seq + 1, base: c.base, format: c.format, who: c.who, check: c.checkReads}
	if resync.Code != "" {
		cu.resync, cu.state = resync, filters
		cu.values, cu.after = f.resyncValuesLocked()
	}
	cu.replay = cu.after < f.seq
	for fl := range c.filters {
		cu.filters = append(cu.filters, topics.Mount(c.base, fl))
	}
	return cu, nil
}

// resyncReuse is how many events after it the last values of a resync may
// be reused for another: those events are replayed from the log.
const resyncReuse = 1024

// resyncValuesLocked returns the last values a resync starts from, shared
// (read only), and the event they are current at. The sessions a Resync
// restarts one after the other share one snapshot, one pointer per kept
// topic, instead of holding a copy each; a session restarted a few events
// later replays those events from the log after the values.
func (f *fanout) resyncValuesLocked() ([]*Value, uint64) {
	if f.resyncValues == nil || f.seq-f.resyncAt > resyncReuse || !f.events.covers(f.resyncAt, time.Now()) {
		// Current at f.seq: the state store is an observer, updated under f.mu.
		f.resyncValues, f.resyncAt = f.state.snapshot(), f.seq
	}
	return f.resyncValues, f.resyncAt
}

// startID is the id of the event after which the stream of cu continues.
func (cu *catchup) startID(epoch string) string { return eventID(epoch, cu.after) }

// startDefault starts a client that has not chosen its configuration, with
// the default filters, from where it connected; not one whose config/set
// waits for the id it names (awaitID).
func (f *fanout) startDefault(c *client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.started || f.closed || c.removed || c.awaiting.Load() {
		return
	}
	cu, err := f.beginLocked(c, f.defaultFilters, c.connectSeq, ResyncNotice{})
	if err != nil {
		f.log.Error("default filters refused", "err", err) // New validated them
		return
	}
	c.out.restart(cu)
}

// restartWithResync restarts c from the last values, when the log lost the
// events its catchup needed.
func (f *fanout) restartWithResync(c *client, reason ResyncNotice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || c.stopped() {
		return
	}
	filters := make([]string, 0, len(c.filters))
	for fl := range c.filters {
		filters = append(filters, fl)
	}
	cu, err := f.beginLocked(c, filters, 0, reason)
	if err != nil {
		return // the filters were valid a moment ago
	}
	c.out.restart(cu)
}

// startStream begins an SSE client: after the event it has, or from now
// with the current id as its first event, so that even a client that has
// received nothing yet can resume.
func (f *fanout) startStream(c *client, q StreamQuery) error {
	f.awaitID(q.Since)
	f.mu.Lock()
	defer f.mu.Unlock()
	after, resync := f.seq, ResyncNotice{}
	if q.Since != "" {
		after, resync = f.resolveLocked(q.Since, c.base, q.Filters)
	}
	cu, err := f.beginLocked(c, q.Filters, after, resync)
	if err != nil {
		return err
	}
	c.out.setOverflow(q.Overflow, c.format)
	if q.Since == "" {
		cu.frames = [][]byte{[]byte("id: " + cu.startID(f.epoch) + "\n\n")}
	}
	c.out.restart(cu)
	return nil
}

// configure applies sc to c (checked and authorized by Hub.configure) and
// answers with ok: see Hub.configure.
func (f *fanout) configure(c *client, sc sessionConfig, ok configOK) error {
	if sc.Since != nil {
		if f.positional {
			// Waiting may outlast the hello: a default start meanwhile
			// would write events the client has before its config/ok.
			c.awaiting.Store(true)
			defer c.awaiting.Store(false) // started by then, unless refused
		}
		f.awaitID(*sc.Since)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errorf(CodeUnavailable, "the hub is shutting down")
	}
	c.format = formatLines
	if sc.IDs {
		c.format = formatLinesIDs
	}
	if sc.Text {
		c.format |= formatText
	}
	c.out.setOverflow(sc.Overflow, c.format)
	c.text.Store(sc.Text)
	c.batch.Store(sc.Batch)
	c.ack.Store(sc.Ack)
	if c.started && sc.Since == nil {
		if err := f.replaceFiltersLocked(c, sc.Subscribe); err != nil {
			return err
		}
		ok.ID = eventID(f.epoch, f.seq)
		f.send(c, controlFrame(topicConfigOK, ok))
		return nil
	}
	after, resync := c.connectSeq, ResyncNotice{}
	if sc.Since != nil {
		after, resync = f.resolveLocked(*sc.Since, c.base, sc.Subscribe)
	}
	cu, err := f.beginLocked(c, sc.Subscribe, after, resync)
	if err != nil {
		return err
	}
	ok.ID = cu.startID(f.epoch)
	cu.frames = [][]byte{controlFrame(topicConfigOK, ok)}
	c.out.restart(cu)
	return nil
}

// drainer is a writer's reusable buffers.
type drainer struct {
	items []outItem
	lines [][]byte
	used  bool // drained since the last idle
}

// drain takes everything waiting in c's queue and writes it with write, the
// transport's way of writing frames: the catchup, if any, then the lines
// queued behind it, which are stale and dropped when the catchup had to
// restart the client. It counts what was written and how long it waited.
func (h *Hub) drain(c *client, d *drainer, write func([][]byte) error) error {
	cu, items := c.out.take(d.items)
	d.items = items
	clear(d.lines)
	d.lines = d.lines[:0]
	for _, it := range items {
		d.lines = append(d.lines, it.line)
	}
	if err := h.writeTaken(c, cu, items, d.lines, write); err != nil {
		return err
	}
	h.countWritten(c, items)
	d.used = true
	return nil
}

// countWritten counts the bytes of items written to c, and how long each
// message waited.
func (h *Hub) countWritten(c *client, items []outItem) {
	now := time.Now().UnixNano()
	var bytes uint64
	var lat latencies // counted here, added to the hub's in a few atomic adds: not two per line
	for _, it := range items {
		bytes += uint64(len(it.line))
		if it.at != 0 {
			lat.observe(time.Duration(now - it.at))
		}
	}
	h.stats.latency.add(&lat)
	h.stats.bytesOutBy[c.kind].Add(bytes)
}

// drainKeep is the most a queue keeps of its buffer when it lets it go.
const drainKeep = 64

// idle is called by a session's writer on a slow tick (the ping or the
// keep-alive): when nothing was drained since the last call, the drainer
// lets its buffers go and the queue its spare one, so that a burst leaves
// an idle client holding nothing of its peak. A client under load keeps
// what it uses: no allocation per drain.
func (d *drainer) idle(q *queue) {
	if d.used {
		d.used = false
		return
	}
	d.items, d.lines = nil, nil
	q.mu.Lock()
	if len(q.items) == 0 && cap(q.items) > drainKeep {
		q.items = nil
	}
	q.mu.Unlock()
}

func (h *Hub) writeTaken(c *client, cu *catchup, items []outItem, lines [][]byte, write func([][]byte) error) error {
	if cu != nil {
		restarted, err := h.writeCatchup(c, cu, write)
		if err != nil {
			return err
		}
		if restarted {
			lines = repliesOf(items, lines[:0])
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return write(lines)
}

// repliesOf appends to lines the replies among items: after a restart, the
// messages taken with the old catchup are stale, the replies still answer
// the client.
func repliesOf(items []outItem, lines [][]byte) [][]byte {
	for _, it := range items {
		if it.isReply() {
			lines = append(lines, it.line)
		}
	}
	return lines
}

// writeCatchup writes cu with write, the transport's way of writing frames.
// It reports restarted when the log lost events mid-replay: c was restarted
// with a resync, and what the writer took from the queue with cu is stale.
func (h *Hub) writeCatchup(c *client, cu *catchup, write func([][]byte) error) (restarted bool, err error) {
	frames := cu.frames
	if cu.resync.Code != "" {
		values := valuesOf(cu.values, cu.base, newFilterSet(cu.base, cu.state), h.readKeep(cu.who))
		frames = append(frames, resyncFrames(cu.format, cu.resync, values, cu.startID(h.epoch))...)
	}
	if len(frames) > 0 {
		if err := write(frames); err != nil {
			return false, err
		}
	}
	if !cu.replay {
		return false, nil
	}
	var entries []logEntry
	var lines [][]byte
	match := newFilterSet("", cu.filters) // absolute filters
	for cursor := cu.after; cursor+1 < cu.liveFrom; {
		if c.stopped() {
			return false, nil
		}
		entries, err = h.events.read(entries[:0], cursor, cu.liveFrom, replayChunk)
		if errors.Is(err, errGone) || len(entries) == 0 {
			h.fan.restartWithResync(c, ResyncNotice{Code: ResyncTooOld, Reason: "too old: the events after " + eventID(h.epoch, cursor) + " left the log during the replay"})
			return true, nil
		}
		lines = lines[:0]
		for i := range entries {
			e := &entries[i]
			cursor = e.seq
			if !match.match(e.topic) || cu.check && !h.authz.Allowed(cu.who, auth.Read, e.topic) {
				continue
			}
			if rel, ok := topics.Unmount(cu.base, e.topic); ok {
				lines = append(lines, encodeEvent(nil, cu.format, rel, e.payload, e.text, h.epoch, e.seq))
			}
		}
		if len(lines) > 0 {
			if err := write(lines); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}
