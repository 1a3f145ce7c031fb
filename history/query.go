package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// entry is one point, rollup or text change of a series at one level, as
// read: t is the point's time or the bucket's start (unix ms).
type entry struct {
	t    int64
	agg  agg
	text string
}

// Query answers one series over a range, at the resolution chosen from the
// range: the coarsest level whose step fits (To−From)/Points and whose
// retention covers From; raw when even 5 minutes is too coarse; when no
// level fits, the finest whose retention covers From, else hourly. What
// the level holds in range (with what is still in memory) is answered as
// it is when it has at most Points entries, else in Points buckets of
// equal width from From (a multiple of the level's step): min and max of
// the bucket (spikes survive), mean weighted by count, last, count. A text
// series answers its changes in range, at most MaxPoints (Truncated).
// Gaps: "hub-down" between the hub's runs, "silent" where the series has
// no point for more than 10 times its usual interval (the median spacing
// of its entries at the level read, at least 1 s) outside hub-down gaps.
//
// It reads at most maxScan entries (then Truncated, the answer ending at
// the last one read), queryChunk per read transaction, and holds the
// recorder's lock only to copy what of this series is in memory. A
// damaged file gives an error wrapping ErrDamaged.
func (r *Recorder) Query(ctx context.Context, q Query) (*Result, error) {
	r.caughtUp(ctx)
	q, s, lv, err := r.prepare(q)
	if err != nil {
		return nil, err
	}
	res := &Result{Topic: q.Topic, Field: q.Field, Kind: "number", Resolution: lv.res, From: q.From, To: q.To}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	gf := newGapFinder(lv)
	var snap *snapshot
	if lv == textLevel {
		res.Kind = "text"
		snap, err = r.read(ctx, s, lv, from, to, func(e entry) error {
			if len(res.Points) >= MaxPoints {
				res.Truncated = true
				return errStop
			}
			res.Points = append(res.Points, pointOf(e))
			return nil
		})
		// changes have no usual interval: no silent gaps
	} else {
		col := newCollector(lv, from, to, q.Points)
		snap, err = r.readNumbers(ctx, s, lv, from, to, func(e entry) {
			gf.see(e.t)
			col.add(e)
		})
		res.Points, res.Step = col.finish()
		if err == errScanned {
			// Cut after maxScan entries: the answer ends at the last one
			// read, not in a silent gap.
			res.Truncated, err = true, nil
			to = gf.prev + 1
		}
	}
	if err != nil && err != errStop {
		return nil, err
	}
	down := hubDown(snap.runs, from, to)
	res.Gaps = append(res.Gaps, gapsOf(down, "hub-down")...)
	res.Gaps = append(res.Gaps, gapsOf(gf.silent(min(to, snap.now), down), "silent")...)
	slices.SortFunc(res.Gaps, func(a, b Gap) int { return a.From.Compare(b.From) })
	return res, nil
}

// Bounds of one Query's read of a numeric series: a long range of raw
// points (resolution=raw forced over a year, a series of 100 messages a
// second) is cut after maxScan entries (Truncated; about 0.1 s), read
// queryChunk entries per read transaction, so that a write waits for at
// most one chunk (bbolt's remap waits for every read transaction to end).
// Variables for the tests.
var (
	maxScan    = 1 << 21
	queryChunk = 1 << 16
)

// errScanned ends a Query's read after maxScan entries.
var errScanned = errors.New("read the most entries a query reads")

// readNumbers calls see for the series' entries of lv in [from, to),
// oldest first, queryChunk per read transaction, at most maxScan
// (errScanned past them). It returns the last snapshot read.
func (r *Recorder) readNumbers(ctx context.Context, s *series, lv *level, from, to int64, see func(entry)) (*snapshot, error) {
	scanned := 0
	for {
		n, last := 0, int64(0)
		snap, err := r.read(ctx, s, lv, from, to, func(e entry) error {
			if scanned == maxScan {
				return errScanned
			}
			see(e)
			scanned++
			n++
			last = e.t
			if n == queryChunk {
				return errStop
			}
			return nil
		})
		switch {
		case err == errStop:
			from = last + 1 // entries have distinct times, in order
		case err != nil:
			return snap, err
		default:
			return snap, nil
		}
	}
}

// Export calls fn for every stored point of the series in [From, To),
// oldest first, without downsampling, at q.Resolution or, when it is
// empty, the resolution Query would choose; it returns the resolution read.
// It stops at fn's first error. Gaps are not points: a caller that wants
// them asks Query.
//
// It reads exportChunk points per read transaction and calls fn outside
// it, so that a slow fn (a client on a slow link) never holds a read
// transaction open: bbolt's remap, when a write grows the file, waits for
// every read transaction to end, and would stall the store's sync.
func (r *Recorder) Export(ctx context.Context, q Query, fn func(Point) error) (Resolution, error) {
	r.caughtUp(ctx)
	q, s, lv, err := r.prepare(q)
	if err != nil {
		return "", err
	}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	chunk := make([]entry, 0, exportChunk) // at most exportChunk
	for {
		chunk = chunk[:0]
		_, err := r.read(ctx, s, lv, from, to, func(e entry) error {
			chunk = append(chunk, e)
			if len(chunk) == exportChunk {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			return lv.res, err
		}
		for _, e := range chunk {
			if err := fn(pointOf(e)); err != nil {
				return lv.res, err
			}
		}
		if len(chunk) < exportChunk {
			return lv.res, nil
		}
		from = chunk[len(chunk)-1].t + 1 // entries have distinct times, in order
	}
}

// exportChunk is how many points Export reads per read transaction.
const exportChunk = 4096

var errStop = fmt.Errorf("stop reading")

// snapshot is what of one series is in memory, copied under the lock.
type snapshot struct {
	mem       []entry // pending and open, sorted, one per time
	inflight  []entry // in the write in flight, sorted, one per time
	committed uint64  // the generation of the last write settled
	gen       uint64  // the write in flight's generation (0: none)
	runs      []run   // the runs of the hub, this one's alive until now
	now       int64
}

// prepare checks q, fills in its defaults, and finds the series and the
// level to read.
func (r *Recorder) prepare(q Query) (Query, *series, *level, error) {
	switch {
	case q.Topic == "":
		return q, nil, nil, fmt.Errorf("%w: no topic", ErrBadQuery)
	case !q.From.Before(q.To):
		return q, nil, nil, fmt.Errorf("%w: from %s is not before to %s", ErrBadQuery, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	case q.Points < 0:
		return q, nil, nil, fmt.Errorf("%w: points %d", ErrBadQuery, q.Points)
	}
	if q.Points == 0 {
		q.Points = DefaultPoints
	}
	q.Points = min(q.Points, MaxPoints)
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db == nil {
		return q, nil, nil, fmt.Errorf("the history is not open")
	}
	s := r.topics[q.Topic][q.Field]
	if s == nil {
		return q, nil, nil, fmt.Errorf("%w: %s %s", ErrNoSeries, q.Topic, q.Field)
	}
	lv := textLevel
	if !s.text {
		var err error
		if lv, err = r.chooseLevel(q, now); err != nil {
			return q, nil, nil, err
		}
	}
	return q, s, lv, nil
}

// snapshotOf copies what of s at lv in [from, to) is in memory.
func (r *Recorder) snapshotOf(s *series, lv *level, from, to int64) *snapshot {
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := &snapshot{committed: r.gen, now: now, runs: append(slices.Clone(r.runs), run{r.runStart, now})}
	snap.mem = s.entries(lv, from, to, false)
	if r.writing != nil {
		snap.gen = r.writing.gen
		snap.inflight = s.entries(lv, from, to, true)
	}
	return snap
}

// chooseLevel is the level Query reads (see Query).
func (r *Recorder) chooseLevel(q Query, now int64) (*level, error) {
	covers := func(lv *level) bool { return q.From.UnixMilli() >= now-r.keep(lv).Milliseconds() }
	switch q.Resolution {
	case Raw:
		return rawLevel, nil
	case FiveMinute:
		return fiveLevel, nil
	case Hourly:
		return hourLevel, nil
	case "":
	default:
		return nil, fmt.Errorf("%w: resolution %q (raw, 5m or 1h)", ErrBadQuery, q.Resolution)
	}
	want := q.To.Sub(q.From) / time.Duration(q.Points)
	for _, lv := range []*level{hourLevel, fiveLevel} {
		if lv.step <= want && covers(lv) {
			return lv, nil
		}
	}
	for _, lv := range []*level{rawLevel, fiveLevel} {
		if covers(lv) {
			return lv, nil
		}
	}
	return hourLevel, nil
}

// entries copies s's entries of lv in [from, to) that are pending and open
// (or, inflight, those of the write in flight), sorted, one per time.
func (s *series) entries(lv *level, from, to int64, inflight bool) []entry {
	var out []entry
	in := func(t int64) bool { return t >= from && t < to }
	raw, texts, closed := s.raw, s.texts, s.closed
	if inflight {
		raw, texts, closed = s.wRaw, s.wTexts, s.wClosed
	}
	switch lv {
	case rawLevel:
		for _, p := range raw {
			if in(p.t) {
				out = append(out, entry{t: p.t, agg: single(p.v)})
			}
		}
	case textLevel:
		for _, p := range texts {
			if in(p.t) {
				out = append(out, entry{t: p.t, text: p.text})
			}
		}
	default:
		for _, c := range closed {
			if c.lv == lv && in(c.start) {
				out = append(out, entry{t: c.start, agg: c.agg})
			}
		}
		for _, o := range s.open {
			if !inflight && o.agg.count > 0 && o.lv == lv && in(o.start) {
				out = append(out, entry{t: o.start, agg: o.agg})
			}
		}
	}
	return combineSorted(lv, out)
}

// combineSorted sorts entries by time (stably: the later added last) and
// combines those of one time: rollups merge, a later point or change wins.
func combineSorted(lv *level, es []entry) []entry {
	slices.SortStableFunc(es, func(a, b entry) int { return cmpInt(a.t, b.t) })
	out := es[:0]
	for _, e := range es {
		if n := len(out); n > 0 && out[n-1].t == e.t {
			out[n-1] = combine(lv, out[n-1], e)
			continue
		}
		out = append(out, e)
	}
	return out
}

// combine is a, then b, of the same time.
func combine(lv *level, a, b entry) entry {
	if lv.step == 0 {
		return b
	}
	a.agg.merge(b.agg)
	return a
}

// read calls emit for the series' entries of lv in [from, to), oldest
// first: the file's, merged with what is in memory, in one read
// transaction; it returns the snapshot of memory it merged.
//
// The snapshot is taken before the transaction; a write that committed
// in between (the file's generation is neither the snapshot's last one
// settled nor the one in flight) moved some of it to the file, which
// would count it twice: it is taken again (at most maxReadTries times; a
// write commits once per sync).
func (r *Recorder) read(ctx context.Context, s *series, lv *level, from, to int64, emit func(entry) error) (snap *snapshot, err error) {
	inFn := false
	defer func() {
		if p := recover(); p != nil {
			if inFn {
				panic(p)
			}
			err = damaged(r.db, p)
		}
	}()
	call := func(e entry) error {
		inFn = true
		defer func() { inFn = false }()
		return emit(e)
	}
	for try := 1; ; try++ {
		snap = r.snapshotOf(s, lv, from, to)
		err = r.db.View(func(tx *bbolt.Tx) error {
			root := tx.Bucket(bucketRoot)
			if root == nil {
				return fmt.Errorf("the history's buckets are missing in %s", r.db.Path())
			}
			var disk uint64
			if v := root.Bucket(bucketMeta).Get(keyGen); len(v) == 8 {
				disk = binary.BigEndian.Uint64(v)
			}
			mem := snap.mem
			switch {
			case snap.gen != 0 && disk == snap.gen: // the write in flight is in the file
			case disk != snap.committed && try < maxReadTries:
				return errStale
			case snap.gen != 0: // not committed yet: the file lacks it
				mem = combineSorted(lv, append(slices.Clone(snap.inflight), mem...))
			}
			return merge(ctx, root.Bucket(bucketPeriods), lv, s.id, from, to, mem, call)
		})
		if err != errStale {
			return snap, err
		}
	}
}

// maxReadTries bounds the snapshots read takes.
const maxReadTries = 5

var errStale = fmt.Errorf("a write committed since the snapshot")

// merge emits the file's entries merged with mem's, oldest first.
func merge(ctx context.Context, periods *bbolt.Bucket, lv *level, id uint32, from, to int64, mem []entry, emit func(entry) error) error {
	next := func(e entry) error {
		for len(mem) > 0 && mem[0].t < e.t {
			if err := emit(mem[0]); err != nil {
				return err
			}
			mem = mem[1:]
		}
		if len(mem) > 0 && mem[0].t == e.t {
			e = combine(lv, e, mem[0])
			mem = mem[1:]
		}
		return emit(e)
	}
	if err := readFile(ctx, periods, lv, id, from, to, next); err != nil {
		return err
	}
	for _, e := range mem {
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}

// longestPeriod bounds a period's length (a month), to know where to stop
// walking periods sorted by their end.
const longestPeriod = 31 * 24 * int64(time.Hour/time.Millisecond)

// readFile calls emit for the series' entries of lv in the file in
// [from, to), oldest first.
func readFile(ctx context.Context, periods *bbolt.Bucket, lv *level, id uint32, from, to int64, emit func(entry) error) error {
	prefix := binary.BigEndian.AppendUint32(nil, id)
	c := periods.Cursor()
	var pts []rawPoint // a period's raw points, reused
	seek := binary.BigEndian.AppendUint64(nil, uint64(from+1))
	for name, _ := c.Seek(seek); name != nil; name, _ = c.Next() {
		plv, pstart, pend := parseName(name)
		if pend-longestPeriod >= to {
			break
		}
		if plv != lv || pstart >= to || pend <= from {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b := periods.Bucket(name)
		if b == nil {
			continue
		}
		if lv == rawLevel {
			var err error
			if pts, err = readChunks(b, id, pstart, from, to, pts[:0], emit); err != nil {
				return err
			}
			continue
		}
		pc := b.Cursor()
		for k, v := pc.Seek(appendKey(nil, lv, id, pstart, max(from, pstart))); k != nil && bytes.HasPrefix(k, prefix); k, v = pc.Next() {
			if len(k) != keyLen {
				continue
			}
			_, t := keyTime(k, lv, pstart)
			if t < from {
				continue
			}
			if t >= to {
				break
			}
			e := entry{t: t}
			ok := true
			switch {
			case lv == textLevel:
				e.text = string(v)
			default:
				e.agg, ok = decodeRollup(v)
			}
			if !ok {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// readChunks emits the series' raw points of one period bucket in
// [from, to): its chunks, sorted (a late point's chunk may overlap
// another), one point per ms (the later written wins). It reads them into
// pts, and returns it for the next period.
func readChunks(b *bbolt.Bucket, id uint32, pstart, from, to int64, pts []rawPoint, emit func(entry) error) ([]rawPoint, error) {
	prefix := binary.BigEndian.AppendUint32(nil, id)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != keyLen {
			continue
		}
		_, t0 := keyTime(k, rawLevel, pstart)
		if t0 >= to {
			break
		}
		pts = appendPoints(pts, v, t0)
	}
	if !slices.IsSortedFunc(pts, func(a, b rawPoint) int { return cmpInt(a.t, b.t) }) {
		slices.SortStableFunc(pts, func(a, b rawPoint) int { return cmpInt(a.t, b.t) })
	}
	for i, p := range pts {
		if p.t < from || p.t >= to || (i+1 < len(pts) && pts[i+1].t == p.t) {
			continue
		}
		if err := emit(entry{t: p.t, agg: single(p.v)}); err != nil {
			return pts, err
		}
	}
	return pts, nil
}

// pointOf is the Point of an entry.
func pointOf(e entry) Point {
	p := Point{Time: time.UnixMilli(e.t).UTC(), Text: e.text}
	if e.agg.count > 0 {
		p.Min, p.Max, p.Last, p.Count = e.agg.min, e.agg.max, e.agg.last, e.agg.count
		p.Mean = e.agg.sum / float64(e.agg.count)
	}
	return p
}
