package history

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/topics"
)

// Recorder keeps the history of numeric and text series in the store's
// bbolt file. It is a part of the store (Open, Pending, Write, Written are
// called by package broker's Store), and is told of every message by Add.
// See the package documentation for its concurrency contract.
type Recorder struct {
	cfg    Config
	allAll bool // Filters holds "#": every topic but $-topics is recorded

	// The queue between Add and the recorder's goroutine.
	qmu     sync.Mutex
	queue   []message // at most cfg.QueueLen
	qclosed bool
	wake    chan struct{} // capacity 1: Add's nudge
	queued  atomic.Int64  // added, not yet applied
	added   uint64        // messages queued since New, under qmu
	dropped atomic.Uint64

	stop     chan struct{}
	finished chan struct{}
	started  bool
	closing  sync.Once

	// mu guards everything below: the series and what waits for a write.
	mu         sync.Mutex
	db         *bbolt.DB // set by Open: reads use it
	topics     map[string]map[string]*series
	byID       []*series // index id-1; at most cfg.MaxSeries
	dirty      []*series // series with something pending, each once
	pending    int       // raw points, text changes, closed rollups pending or being written
	pendingRaw int       // the raw points of them pending
	rawDue     int64     // when the oldest pending raw points are due (unix ms; MaxInt64: none)
	flushAll   bool      // closed: the next Write takes everything
	refused    uint64
	future     uint64 // messages not recorded: their time ahead of the clock
	pdropped   uint64
	evicted    uint64
	bytes      int64 // bytes of the history on disk, as the budget counts them
	gen        uint64
	writing    *writeState   // the write in flight (between Write and Written), or nil
	runs       []run         // the earlier runs, oldest first (at most maxRuns)
	runStart   int64         // this run's start, unix ms
	alive      int64         // when a write last committed, unix ms
	nextEnd    int64         // the earliest end of an open bucket (unix ms), for closing them by the clock
	applied    uint64        // messages the goroutine took from the queue and applied (see caughtUp)
	progress   chan struct{} // closed, and replaced, each time applied grows
}

// message is one queued Add.
type message struct {
	topic   string
	payload []byte
	t       time.Time
	text    bool
}

// run is one run of the hub: from its start until it was last known alive.
type run struct{ start, alive int64 }

// New returns a Recorder; it starts recording when the store opens it.
func New(cfg Config) *Recorder {
	cfg.setDefaults()
	return &Recorder{
		cfg:      cfg,
		allAll:   slices.Contains(cfg.Filters, "#"),
		queue:    make([]message, 0, min(cfg.QueueLen, 1024)),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
		topics:   make(map[string]map[string]*series),
		rawDue:   math.MaxInt64,
		progress: make(chan struct{}),
	}
}

// Add records one message: its time is the message's (a test may feed a
// month in seconds). Called under the hub's fan-out lock: O(1), never
// blocks. payload is the JSON value (text payloads as a JSON string, with
// text set); it is shared: read only.
//
// Add appends to a bounded queue under a lock of its own, held for the
// append only; the recorder's goroutine parses and aggregates. A full
// queue drops the message (Stats.Dropped).
func (r *Recorder) Add(topic string, payload []byte, t time.Time, text bool) {
	r.qmu.Lock()
	if r.qclosed || len(r.queue) >= r.cfg.QueueLen {
		r.qmu.Unlock()
		r.dropped.Add(1)
		return
	}
	r.queue = append(r.queue, message{topic, payload, t, text})
	r.added++
	r.qmu.Unlock()
	r.queued.Add(1)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// start starts the recorder's goroutine (once, from Open).
func (r *Recorder) start() {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if r.started || r.qclosed {
		return
	}
	r.started = true
	go r.loop()
}

// loop applies what Add queued until Close.
func (r *Recorder) loop() {
	defer close(r.finished)
	var spare []message
	p := &parser{}
	for {
		select {
		case <-r.wake:
			spare = r.drain(spare, p)
		case <-r.stop:
			r.drain(spare, p)
			return
		}
	}
}

// maxAhead is how far past the recorder's clock a message's time may be:
// the hub stamps messages with the same clock, before the recorder applies
// them.
const maxAhead = time.Minute

// applyChunk is how many messages are applied per hold of mu, so that a
// Query or Write waits for at most that many.
const applyChunk = 256

// drain takes the queue, swapping in spare, and applies it. It returns the
// taken slice, emptied, to be the next spare.
func (r *Recorder) drain(spare []message, p *parser) []message {
	for {
		r.qmu.Lock()
		batch := r.queue
		r.queue = spare[:0]
		r.qmu.Unlock()
		if len(batch) == 0 {
			return batch
		}
		now := r.cfg.Now().UnixMilli()
		for i := 0; i < len(batch); i += applyChunk {
			chunk := batch[i:min(i+applyChunk, len(batch))]
			r.mu.Lock()
			for _, m := range chunk {
				r.apply(p, m, now)
			}
			r.applied += uint64(len(chunk))
			close(r.progress)
			r.progress = make(chan struct{})
			r.mu.Unlock()
		}
		r.queued.Add(-int64(len(batch)))
		clear(batch) // drop the payloads
		spare = batch[:0]
	}
}

// maxCatchUp bounds how long a reader waits for the messages added before
// it to be applied (see caughtUp): at most a queue's worth of parsing.
const maxCatchUp = time.Second

// caughtUp waits until every message Add queued before the call is
// applied, so that a reader sees what the hub delivered before it asked
// (a chart opened at a new series' first value finds that value). It
// gives up after maxCatchUp, when ctx ends, or when the goroutine is not
// running, and then reads what is applied.
func (r *Recorder) caughtUp(ctx context.Context) {
	r.qmu.Lock()
	target, running := r.added, r.started
	r.qmu.Unlock()
	if !running {
		return
	}
	timer := time.NewTimer(maxCatchUp)
	defer timer.Stop()
	for {
		r.mu.Lock()
		done, progress := r.applied >= target, r.progress
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-progress:
		case <-r.finished:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		}
	}
}

// matches says whether topic is recorded.
func (r *Recorder) matches(topic string) bool {
	if r.allAll && !strings.HasPrefix(topic, "$") {
		return true
	}
	for _, f := range r.cfg.Filters {
		if topics.Match(f, topic) {
			return true
		}
	}
	return false
}

// apply parses one message and adds its values to their series. r.mu held.
func (r *Recorder) apply(p *parser, m message, now int64) {
	if !r.matches(m.topic) {
		return
	}
	t := m.t.UnixMilli()
	switch {
	case t <= 0:
		return // before 1970: not a message's time
	case t > now+maxAhead.Milliseconds():
		// The clock jumped back since the message came (it was wrong,
		// then fixed): a time ahead would make a period the budget drops
		// last and retention never, and hold the open rollups ahead, so
		// that every later value were a late bucket of its own.
		r.future++
		return
	}
	for _, l := range p.parse(m.payload, m.text) {
		path := p.path(l)
		s := r.seriesFor(m.topic, path, l.text)
		if s == nil {
			continue
		}
		if l.text {
			r.addText(s, t, p.textOf(l), now)
		} else {
			r.addNumber(s, t, l.num, now)
		}
	}
}

// seriesFor finds or creates the series (topic, field); nil when it is new
// and MaxSeries are recorded, or when it has the other kind.
func (r *Recorder) seriesFor(topic string, field []byte, text bool) *series {
	fields := r.topics[topic]
	if s := fields[string(field)]; s != nil {
		if s.text != text {
			return nil
		}
		return s
	}
	if len(r.byID) >= r.cfg.MaxSeries {
		r.refused++
		return nil
	}
	if fields == nil {
		fields = make(map[string]*series)
		r.topics[topic] = fields
	}
	s := &series{id: uint32(len(r.byID) + 1), topic: topic, field: string(field), text: text, isNew: true}
	fields[s.field] = s
	r.byID = append(r.byID, s)
	r.markDirty(s)
	return s
}

// Pending says whether there is something to Write: points or rollups,
// open buckets the clock has closed, messages still queued, or the run's
// "alive until" mark older than aliveEvery.
func (r *Recorder) Pending() bool {
	if r.queued.Load() > 0 {
		return true
	}
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db == nil {
		return false
	}
	return r.pending-r.pendingRaw > 0 || (r.pendingRaw > 0 && (now >= r.rawDue || r.flushAll)) ||
		(r.nextEnd != 0 && now >= r.nextEnd) || now-r.alive >= aliveEvery.Milliseconds()
}

// aliveEvery is how often a Write is due with nothing else to write, to
// mark the run alive: a crash's hub-down gap starts at most this early.
const aliveEvery = 10 * time.Second

// Series lists the series recorded of the topics filter matches (all for
// ""), sorted by topic and field. It holds the recorder's lock for a walk
// of the series (at most MaxSeries).
func (r *Recorder) Series(filter string) []SeriesInfo {
	r.mu.Lock()
	var out []SeriesInfo
	for _, s := range r.byID {
		if filter == "" || topics.Match(filter, s.topic) {
			out = append(out, s.info())
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b SeriesInfo) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return strings.Compare(a.Field, b.Field)
	})
	return out
}

// Stats reports what the recorder keeps.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		Series:         len(r.byID),
		SeriesRefused:  r.refused,
		Dropped:        r.dropped.Load(),
		Bytes:          r.bytes,
		Evicted:        r.evicted,
		PendingDropped: r.pdropped,
		Future:         r.future,
		Queued:         int(r.queued.Load()),
		Pending:        r.pending,
	}
}

// Close stops the recorder's goroutine, after it applied what was queued,
// and closes the open rollups, so that the store writes them in its last
// sync: the next run merges them with what it adds to the same buckets.
// Add after Close does nothing.
func (r *Recorder) Close() error {
	r.closing.Do(func() {
		r.qmu.Lock()
		r.qclosed = true
		started := r.started
		r.qmu.Unlock()
		close(r.stop)
		if started {
			<-r.finished
		}
		r.mu.Lock()
		for _, s := range r.byID {
			r.closeOpen(s, -1)
		}
		r.flushAll = true
		r.mu.Unlock()
	})
	return nil
}
