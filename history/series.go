package history

import (
	"math"
	"time"
)

// series is one recorded series and what of it waits for a write. Guarded
// by Recorder.mu.
type series struct {
	id     uint32 // its key in the file, from 1
	topic  string
	field  string
	text   bool // a change log, not numbers
	isNew  bool // not yet in the file's index
	dirty  bool // in Recorder.dirty
	first  int64
	last   int64 // unix ms of its first and newest value (0: none seen)
	lastTx string
	// rawAt is the time the last point was kept at, rawIn the message
	// time of the first of the burst it ends (see pointTime).
	rawIn, rawAt int64
	hasTx        bool // lastTx is the text last recorded (this run)

	// Pending: waiting for the next Write (raw points: for the Write
	// after rawSince+rawDelay, or once rawBatch wait; see takePending).
	raw      []rawPoint
	rawSince int64 // when raw became non-empty (the recorder's clock, unix ms)
	texts    []textPoint
	closed   []bucket
	// open are the 5-minute and hourly buckets still aggregating (count 0:
	// none). They are not pending: a bucket is written once closed.
	open [2]bucket

	// In the write in flight (set by Write, settled by Written).
	wRaw    []rawPoint
	wTexts  []textPoint
	wClosed []bucket
	spare   []rawPoint // wRaw's array, once written, for the next points
}

type rawPoint struct {
	t int64 // unix ms
	v float64
}

type textPoint struct {
	t    int64 // unix ms
	text string
}

// bucket is a rollup of one level over [start, start+step).
type bucket struct {
	lv    *level
	start int64 // unix ms
	agg   agg
}

// agg sums up the values of a bucket.
type agg struct {
	min, max, sum, last float64
	count               int64
}

func single(v float64) agg { return agg{min: v, max: v, sum: v, last: v, count: 1} }

func (a *agg) add(v float64) {
	if a.count == 0 {
		*a = single(v)
		return
	}
	a.min = math.Min(a.min, v)
	a.max = math.Max(a.max, v)
	a.sum += v
	a.last = v
	a.count++
}

// merge adds b, whose values came after a's (its last is the last).
func (a *agg) merge(b agg) {
	if a.count == 0 {
		*a = b
		return
	}
	if b.count == 0 {
		return
	}
	a.min = math.Min(a.min, b.min)
	a.max = math.Max(a.max, b.max)
	a.sum += b.sum
	a.last = b.last
	a.count += b.count
}

func (s *series) kind() string {
	if s.text {
		return "text"
	}
	return "number"
}

func (s *series) info() SeriesInfo {
	i := SeriesInfo{Topic: s.topic, Field: s.field, Kind: s.kind()}
	if s.first != 0 {
		i.First = time.UnixMilli(s.first).UTC()
	}
	if s.last != 0 {
		i.Last = time.UnixMilli(s.last).UTC()
	}
	return i
}

// pointTime is the time a point of the message time t is kept at. Points
// are keyed by millisecond: values that come in the millisecond of the one
// before (a burst: queued QoS 1 messages delivered at once when a device
// reconnects) are kept a millisecond apart each, in order, so that none
// overwrites another.
func (s *series) pointTime(t int64) int64 {
	if s.rawAt != 0 && t >= s.rawIn && t <= s.rawAt {
		t = s.rawAt + 1
	} else {
		s.rawIn = t
	}
	s.rawAt = t
	return t
}

func (s *series) seen(t int64) {
	if s.first == 0 || t < s.first {
		s.first = t
	}
	s.last = max(s.last, t)
}

// Raw points are written in batches per series, so that a write dirties
// few pages of the file (each series' points are a range of keys: writing
// every series every second would rewrite a page per series per second):
// a series' raw points wait for rawDelay, or until rawBatch wait. A crash
// loses at most rawDelay of raw points; queries see them meanwhile.
const (
	rawDelay = 30 * time.Second
	rawBatch = 256
)

func (r *Recorder) markDirty(s *series) {
	if !s.dirty {
		s.dirty = true
		r.dirty = append(r.dirty, s)
	}
}

// addNumber adds a value at t (unix ms): a raw point while within the raw
// retention, and to the open 5-minute and hourly buckets. A value for a
// later bucket closes the open one; one for an earlier bucket (late) is a
// closed bucket of its own, merged with the file's when written.
func (r *Recorder) addNumber(s *series, t int64, v float64, now int64) {
	t = s.pointTime(t)
	s.seen(t)
	if t >= now-r.cfg.Raw.Milliseconds() {
		if r.pending >= r.cfg.MaxPending {
			r.pdropped++
		} else {
			if len(s.raw) == 0 {
				s.rawSince = now
				r.rawDue = min(r.rawDue, now+rawDelay.Milliseconds())
			}
			s.raw = append(s.raw, rawPoint{t, v})
			r.pending++
			r.pendingRaw++
			r.markDirty(s)
		}
	}
	for i, lv := range rollups {
		if t < now-r.keep(lv).Milliseconds() {
			continue
		}
		start := lv.bucketStart(t)
		o := &s.open[i]
		switch {
		case o.agg.count == 0:
		case start == o.start:
			o.agg.add(v)
			continue
		case start > o.start:
			r.pushClosed(s, *o)
		default: // late
			r.pushClosed(s, bucket{lv: lv, start: start, agg: single(v)})
			continue
		}
		*o = bucket{lv: lv, start: start, agg: single(v)}
		if end := start + lv.step.Milliseconds(); r.nextEnd == 0 || end < r.nextEnd {
			r.nextEnd = end
		}
	}
}

// addText records text at t when it differs from the last recorded.
func (r *Recorder) addText(s *series, t int64, text []byte, now int64) {
	if s.hasTx && s.lastTx == string(text) {
		s.seen(t)
		return
	}
	t = s.pointTime(t)
	s.seen(t)
	if t < now-r.keep(textLevel).Milliseconds() {
		return
	}
	if r.pending >= r.cfg.MaxPending {
		r.pdropped++
		return
	}
	s.lastTx, s.hasTx = string(text), true
	s.texts = append(s.texts, textPoint{t, s.lastTx})
	r.pending++
	r.markDirty(s)
}

// pushClosed makes b pending, within twice MaxPending.
func (r *Recorder) pushClosed(s *series, b bucket) {
	if r.pending >= 2*r.cfg.MaxPending {
		r.pdropped++
		return
	}
	s.closed = append(s.closed, b)
	r.pending++
	r.markDirty(s)
}

// closeOpen closes s's open buckets that end by now (unix ms; all when now
// is negative), and returns the earliest end of those still open (0: none).
func (r *Recorder) closeOpen(s *series, now int64) (nextEnd int64) {
	for i := range s.open {
		o := &s.open[i]
		if o.agg.count == 0 {
			continue
		}
		end := o.start + o.lv.step.Milliseconds()
		if now < 0 || end <= now {
			r.pushClosed(s, *o)
			*o = bucket{}
			continue
		}
		if nextEnd == 0 || end < nextEnd {
			nextEnd = end
		}
	}
	return nextEnd
}
