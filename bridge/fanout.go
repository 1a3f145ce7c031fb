package bridge

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/topics"
)

// fanout is the core of the hub: it numbers each message (the one place
// that assigns event ids, appending to the event log), tells the observers,
// finds the clients that want it through the topic index and pushes it,
// encoded once per (base, format), onto their queues; and it (re)starts
// clients exactly where the stream is (session.go).
//
// Its lock (mu) guards the index, the sequence number, the event being fanned
// out, the long polls' wake-up, the resume floor, and each client's fields
// marked "guarded by the fan-out lock". It is held for O(1) work, O(matching
// clients) for a delivery, or O(the filters of one client or request), except
// for Recheck and Resync, which go over every session, and a resync's copy of
// the last values (one pointer per kept topic, shared by the sessions
// restarted within resyncReuse events). Under it the fan-out
// takes the locks of the event log, the state store, the interest, the acks,
// a client queue and the sessions, each for bounded work; none of them is held
// while taking it.
type fanout struct {
	epoch          string
	authz          *auth.Authorizer
	events         *eventLog   // appended to only here, so ids are consecutive
	state          *stateStore // read for the values a resync starts from
	interest       *interest   // told of every change of the index
	acks           *acks       // settled after each fan-out
	observers      []Observer  // told of every event, in order
	stats          *counters
	log            *slog.Logger
	defaultFilters []string
	maxSubs        int
	positional     bool          // number events by Message.Position (Config.Positional)
	aheadWait      time.Duration // how long a client with an id ahead waits (Config.AheadWait)

	mu           sync.Mutex
	index        topics.Index[*client] // absolute filter → client
	seq          uint64                // the last event's number (positional: its position)
	closed       bool                  // the hub is closing: take no more events
	cur          event                 // the event being fanned out; reused
	offerFn      func(*client)         // f.offer, bound once so fan-out does not allocate
	newEvents    chan struct{}         // closed at the next delivery, for long polls; nil when none waits
	resumeFloor  uint64                // no client resumes from an event before it (see Hub.Resync)
	lastDelivery uint64                // the Bus's number of the last message taken (see Message.Delivery)
	// The last values that resyncs start from, current at event resyncAt,
	// shared by the sessions restarted meanwhile (see resyncValuesLocked).
	resyncValues []*Value
	resyncAt     uint64
}

// deliver is the path of one message, which the Bus callback encoded into
// r, top to bottom, under the fan-out lock: number it, tell the observers,
// fan it out, settle the command acks it confirms, wake the long polls. It
// never blocks (see the package documentation).
func (f *fanout) deliver(m *Message, r Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.takeLocked(m, r.Payload) {
		return
	}
	r.Seq = f.logLocked(&r, m.Position) // the one place that numbers events
	for _, o := range f.observers {
		o.Observe(r) // last values and history, the journal: each with its own state and lock
	}
	f.fanOutLocked(&r) // index match and queue push
	// After the fan-out: a client sees the device's state, then its command's ack.
	f.acks.observe(m.Topic, m.CorrelationData, r.Payload, m.Payload, r.Time)
	f.wakePollsLocked()
}

// An Observer is told of every message the hub delivers, in order, once the
// event log has numbered it and before clients get it (so that what it
// keeps is never behind what a client has seen). It is called under the
// fan-out lock: it must do O(1) work and not block (keep its own state under
// its own lock; queue, and do the slow work elsewhere). r.Payload is shared:
// read only.
type Observer interface {
	Observe(r Record)
}

// journalObserver records every event in a Journal.
type journalObserver struct{ j Journal }

func (o journalObserver) Observe(r Record) { o.j.Record(r) }

// takeLocked decides whether m is a new event: not when the hub is closed,
// nor when it is one the hub has (the same message through another of the
// hub's overlapping subscriptions, or a retained value sent again).
func (f *fanout) takeLocked(m *Message, payload []byte) bool {
	if f.closed {
		return false
	}
	if m.Delivery != 0 {
		if m.Delivery == f.lastDelivery {
			return false // the same message, through another of the hub's overlapping subscriptions
		}
		f.lastDelivery = m.Delivery
	}
	if f.positional {
		// Every replica takes every position once, the same way: no
		// comparison with the values this replica happens to have.
		if m.Position <= f.seq {
			f.stats.stalePositions.Add(1) // none, or at or before the last event: never numbered twice
			return false
		}
		return true
	}
	if m.Replay && len(m.Payload) > 0 {
		if v, ok := f.state.last(m.Topic); ok && bytes.Equal(v.Payload, payload) {
			return false // the value the hub has: sent again for a new subscription, or after a reconnect
		}
	}
	return true
}

// logLocked appends r to the event log with the next sequence number (for
// a positional hub, the message's position, above the last: see
// takeLocked), and returns it.
func (f *fanout) logLocked(r *Record, position uint64) uint64 {
	if f.positional {
		f.seq = position
	} else {
		f.seq++
	}
	f.events.append(logEntry{seq: f.seq, topic: r.Topic, payload: r.Payload, time: r.Time, retained: r.Retained, cleared: r.Cleared, text: r.Text})
	return f.seq
}

// fanOutLocked queues r for every client whose filters match it, the
// frame encoded once per (base, format) they need; a client whose queue is
// full is marked slow.
func (f *fanout) fanOutLocked(r *Record) {
	f.cur.reset(r.Seq, r.Topic, r.Payload, r.Text, r.Time)
	f.index.Match(r.Topic, f.offerFn)
	f.stats.received.Add(1)
	for t, n := range f.cur.delivered {
		if n > 0 {
			f.stats.deliveredBy[t].Add(n)
		}
	}
}

// wakePollsLocked answers the long polls waiting for an event.
func (f *fanout) wakePollsLocked() {
	if f.newEvents != nil {
		close(f.newEvents)
		f.newEvents = nil
	}
}

// offer queues the current event for c. Called under f.mu.
func (f *fanout) offer(c *client) {
	ev := &f.cur
	if c.lastSeq == ev.seq {
		return
	}
	c.lastSeq = ev.seq
	if c.checkReads && !f.authz.Allowed(c.who, auth.Read, ev.topic) {
		return
	}
	line := ev.line(c.base, c.format, f.epoch)
	if line == nil {
		return
	}
	if c.out.pushEvent(line, ev.at, ev.topic) {
		ev.delivered[c.kind]++
	} else {
		f.dropSlow(c)
	}
}

func (f *fanout) dropSlow(c *client) {
	if c.close(ReasonSlow) {
		f.stats.slow.Add(1)
	}
}

// send queues a frame for c alone (a reply or an error); a client too slow
// to take it is dropped like any slow client. It takes only c's queue's lock.
func (f *fanout) send(c *client, frame []byte) {
	if !c.out.pushReply(frame) {
		f.dropSlow(c)
	}
}

// notify queues a frame the hub sends c on its own (a device frame) within
// both of c's queue bounds; a client too slow to take it is dropped like
// any slow client. It takes only c's queue's lock.
func (f *fanout) notify(c *client, frame []byte) {
	if !c.out.pushNotice(frame) {
		f.dropSlow(c)
	}
}

// sendAt queues frame for c when no event was delivered after at: then it
// is where c's stream is. Else, when update is set, it queues what update
// makes, under the lock, for the current event seq (update brings the frame
// there: the few events delivered meanwhile). It reports whether it queued.
func (f *fanout) sendAt(c *client, at uint64, frame []byte, update func(seq uint64) ([]byte, error)) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seq != at {
		if update == nil {
			return false, nil
		}
		var err error
		if frame, err = update(f.seq); err != nil {
			return false, err
		}
	}
	f.send(c, frame)
	return true, nil
}

// position is the sequence number of the last event delivered.
func (f *fanout) position() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq
}

// isClosed reports whether the hub takes no more events.
func (f *fanout) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// close takes no more events and answers the long polls.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.wakePollsLocked() // long polls answer at once
}

// eventsAfter returns a channel that is closed once an event after seq has
// been delivered (at once if one has), or the hub closes.
func (f *fanout) eventsAfter(seq uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seq > seq || f.closed {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	if f.newEvents == nil {
		f.newEvents = make(chan struct{})
	}
	return f.newEvents
}

// awaitID waits, for a positional hub, until it has delivered the event
// that id names when id is of its epoch and ahead of it (the client comes
// from a replica further along the same log), at most aheadWait, or until
// the hub closes. It takes the fan-out lock for O(1) work per event.
func (f *fanout) awaitID(id string) {
	if !f.positional || id == "" {
		return
	}
	epoch, seq, ok := parseEventID(id)
	if !ok || epoch != f.epoch {
		return
	}
	var timer *time.Timer
	for {
		f.mu.Lock()
		at, closed := f.seq, f.closed
		f.mu.Unlock()
		if at >= seq || closed {
			return
		}
		if timer == nil {
			timer = time.NewTimer(f.aheadWait)
			defer timer.Stop()
			f.stats.aheadWaits.Add(1)
		}
		select {
		case <-f.eventsAfter(at):
		case <-timer.C:
			return
		}
	}
}

// indexAddLocked registers c for filter fl (relative to its base).
func (f *fanout) indexAddLocked(c *client, fl string) {
	abs := topics.Mount(c.base, fl)
	f.index.Add(abs, c)
	f.interest.want(abs, 1)
}

// indexRemoveLocked unregisters c from filter fl (relative to its base).
func (f *fanout) indexRemoveLocked(c *client, fl string) {
	abs := topics.Mount(c.base, fl)
	f.index.Remove(abs, c)
	f.interest.want(abs, -1)
}

// remove takes c out of the index, for good: nothing is delivered to it
// once remove returns, and its pending commands are dropped.
func (f *fanout) remove(c *client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fl := range c.filters {
		f.indexRemoveLocked(c, fl)
	}
	clear(c.filters)
	c.removed = true // and nothing puts it back
	f.acks.drop(c)
}

// replaceFiltersLocked makes filters c's whole subscription set.
func (f *fanout) replaceFiltersLocked(c *client, filters []string) error {
	if c.removed {
		return errorf(CodeUnavailable, "the session has ended")
	}
	if err := checkFilters(c.base, filters); err != nil {
		return err
	}
	checkReads, err := authorize(f.authz, f.stats, c.who, c.base, filters)
	if err != nil {
		return err
	}
	want := make(map[string]struct{}, len(filters))
	for _, fl := range filters {
		want[fl] = struct{}{}
	}
	if len(want) > f.maxSubs {
		return errorf(CodeLimit, "%d filters, at most %d per client", len(want), f.maxSubs)
	}
	for fl := range c.filters {
		if _, keep := want[fl]; !keep {
			f.indexRemoveLocked(c, fl)
			delete(c.filters, fl)
		}
	}
	for fl := range want {
		if _, have := c.filters[fl]; !have {
			f.indexAddLocked(c, fl)
			c.filters[fl] = struct{}{}
		}
	}
	c.checkReads = checkReads
	return nil
}

// subscribe adds filters (checked, and authorized with checkReads) to c's
// subscriptions.
func (f *fanout) subscribe(c *client, filters []string, checkReads bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.removed {
		return errorf(CodeUnavailable, "the session has ended")
	}
	c.checkReads = c.checkReads || checkReads
	added := 0
	for _, fl := range filters {
		if _, have := c.filters[fl]; !have {
			added++
		}
	}
	if len(c.filters)+added > f.maxSubs {
		return errorf(CodeLimit, "%d filters, at most %d per client", len(c.filters)+added, f.maxSubs)
	}
	for _, fl := range filters {
		if _, have := c.filters[fl]; !have {
			f.indexAddLocked(c, fl)
			c.filters[fl] = struct{}{}
		}
	}
	return nil
}

// unsubscribe removes filters from c's subscriptions; unknown ones are ignored.
func (f *fanout) unsubscribe(c *client, filters []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range filters {
		if _, have := c.filters[fl]; have {
			f.indexRemoveLocked(c, fl)
			delete(c.filters, fl)
		}
	}
}

// filtersOf returns c's filters (relative to its base).
func (f *fanout) filtersOf(c *client) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Keys(c.filters))
}

// recheck applies the Authorizer's new users to the sessions (see
// Hub.Recheck).
func (f *fanout) recheck(sess *sessions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range sess.list() {
		if !f.authz.Known(c.who) {
			c.close(ReasonRevoked)
			continue
		}
		c.checkReads = true
		if filters := slices.Collect(maps.Keys(c.filters)); len(filters) > 0 {
			if check, err := authorize(f.authz, f.stats, c.who, c.base, filters); err == nil {
				c.checkReads = check
			}
		}
	}
}

// resyncFrom makes the current event, or position from when it is
// further, the resume floor and every Bus subscription's start, and returns
// the started sessions, which must resync (see Hub.Resync, Hub.ResyncFrom).
// The floor never goes down.
func (f *fanout) resyncFrom(sess *sessions, from uint64) []*client {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumeFloor = max(f.resumeFloor, f.seq, from)
	f.interest.raiseActiveFrom(f.resumeFloor)
	var clients []*client
	for _, c := range sess.list() {
		if c.started {
			clients = append(clients, c)
		}
	}
	return clients
}

// event is one message being fanned out, with its frame encoded once for each
// (base, format) combination the matching clients need.
type event struct {
	seq       uint64
	topic     string
	payload   []byte // JSON
	text      bool   // payload is a plain-text payload's JSON string (Record.Text)
	at        int64  // when the hub took it, unix nanoseconds
	variants  []variant
	delivered [transports]uint64
}

type variant struct {
	base   string
	format format
	line   []byte // nil: the topic is not below base
}

func (e *event) reset(seq uint64, topic string, payload []byte, text bool, at time.Time) {
	clear(e.variants) // drop references to the last event's lines
	*e = event{seq: seq, topic: topic, payload: payload, text: text, at: at.UnixNano(), variants: e.variants[:0]}
}

func (e *event) line(base string, f format, epoch string) []byte {
	if !e.text {
		f &^= formatText // the same bytes: one variant
	}
	for _, v := range e.variants {
		if v.base == base && v.format == f {
			return v.line
		}
	}
	var line []byte
	if rel, ok := topics.Unmount(base, e.topic); ok {
		line = encodeEvent(make([]byte, 0, eventSize(f, rel, e.payload, e.text, epoch)), f, rel, e.payload, e.text, epoch, e.seq)
	}
	e.variants = append(e.variants, variant{base: base, format: f, line: line})
	return line
}
