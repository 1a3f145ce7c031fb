package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// maxRuns bounds the runs of the hub kept (for hub-down gaps): the oldest
// go first, and so do those older than the longest retention.
const maxRuns = 1000

// runBytes is what one run costs in the file, counted in the budget.
const runBytes = int64(8+8+16) * 5 / 4

// Open creates the recorder's buckets and loads its index, in the
// transaction that opens the store, marks the start of a run of the hub,
// and starts the recorder's goroutine. It keeps tx.DB() for reads. A
// damaged file gives an error wrapping ErrDamaged.
func (r *Recorder) Open(tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(tx.DB(), p)
		}
	}()
	root, err := tx.CreateBucketIfNotExists(bucketRoot)
	if err != nil {
		return fmt.Errorf("create the history's bucket: %w", err)
	}
	subs := map[string]*bbolt.Bucket{}
	for _, name := range [][]byte{bucketSeries, bucketMeta, bucketRuns, bucketSizes, bucketPeriods} {
		b, err := root.CreateBucketIfNotExists(name)
		if err != nil {
			return fmt.Errorf("create the history's bucket %s: %w", name, err)
		}
		subs[string(name)] = b
	}
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db != nil {
		return errors.New("the history is already open")
	}
	if err := r.loadSeries(subs[string(bucketSeries)]); err != nil {
		return err
	}
	r.loadLastTexts(subs[string(bucketPeriods)])
	if v := subs[string(bucketMeta)].Get(keyGen); len(v) == 8 {
		r.gen = binary.BigEndian.Uint64(v)
	}
	if err := r.loadRuns(subs[string(bucketRuns)], now); err != nil {
		return err
	}
	r.bytes = rootCost + r.indexBytes() + int64(len(r.runs)+1)*runBytes
	err = subs[string(bucketSizes)].ForEach(func(k, v []byte) error {
		lv, _, _ := parseName(k)
		if ps, ok := decodeSize(v); ok && lv != nil {
			r.bytes += ps.cost()
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.db, r.runStart, r.alive = tx.DB(), now, now
	r.start()
	return nil
}

// Bucket is the top-level bucket of the store's file the history keeps
// everything in (layout.go).
func Bucket() []byte { return slices.Clone(bucketRoot) }

// Bucket is the top-level bucket the recorder keeps everything in: as a
// part of the store, a file damaged only there opens without the history.
func (r *Recorder) Bucket() []byte { return Bucket() }

// loadSeries reads the series index. r.mu held.
func (r *Recorder) loadSeries(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if len(k) != 4 || len(v) < 9 {
			return fmt.Errorf("a damaged series %x in the history", k)
		}
		id := binary.BigEndian.Uint32(k)
		if int(id) != len(r.byID)+1 {
			return fmt.Errorf("the history's series %d follows %d", id, len(r.byID))
		}
		topic, field, _ := cutNUL(v[9:])
		s := &series{id: id, topic: topic, field: field, text: v[0] == 't', first: int64(binary.BigEndian.Uint64(v[1:9]))}
		if r.topics[topic] == nil {
			r.topics[topic] = make(map[string]*series)
		}
		r.topics[topic][field] = s
		r.byID = append(r.byID, s)
		return nil
	})
}

// lastTextPeriods is how many of the newest text periods (months) Open
// looks in for a text series' last change.
const lastTextPeriods = 2

// loadLastTexts reads the last change of each text series, so that the
// value a series had before a restart, sent again after it (a device
// repeating its state on reconnect), is no change. It looks in the newest
// lastTextPeriods text periods, with a seek per text series; a series
// whose last change is older records its first value after a restart
// again. r.mu held.
func (r *Recorder) loadLastTexts(periods *bbolt.Bucket) {
	var names [][]byte
	c := periods.Cursor()
	for k, _ := c.Last(); k != nil && len(names) < lastTextPeriods; k, _ = c.Prev() {
		if lv, _, _ := parseName(k); lv == textLevel {
			names = append(names, k)
		}
	}
	for _, s := range r.byID {
		if !s.text {
			continue
		}
		prefix := binary.BigEndian.AppendUint32(nil, s.id)
		for _, name := range names {
			b := periods.Bucket(name)
			if b == nil {
				continue
			}
			// The last key before the next series' first: this one's last.
			pc := b.Cursor()
			var k, v []byte
			if next, _ := pc.Seek(binary.BigEndian.AppendUint32(nil, s.id+1)); next == nil {
				k, v = pc.Last()
			} else {
				k, v = pc.Prev()
			}
			if k != nil && bytes.HasPrefix(k, prefix) {
				s.lastTx, s.hasTx = string(v), true
				break
			}
		}
	}
}

func cutNUL(b []byte) (before, after string, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return string(b), "", false
}

func seriesRecord(s *series) []byte {
	kind := byte('n')
	if s.text {
		kind = 't'
	}
	v := append([]byte{kind}, make([]byte, 8)...)
	binary.BigEndian.PutUint64(v[1:], uint64(s.first))
	v = append(v, s.topic...)
	v = append(v, 0)
	return append(v, s.field...)
}

// indexBytes estimates the series index's bytes. r.mu held.
func (r *Recorder) indexBytes() int64 {
	var n int64
	for _, s := range r.byID {
		n += seriesCost(s)
	}
	return n
}

// seriesCost is what a series takes in the index: its entry, and the room
// left in the pages (they split at fillAppend, and are written a few
// series at a time).
func seriesCost(s *series) int64 { return int64(4+9+len(s.topic)+1+len(s.field)+16) * 3 / 2 }

// rootCost is the pages of the history's own buckets (hist, hist/periods,
// hist/series) besides what the estimates count.
const rootCost = 3 * 4096

// loadRuns reads the earlier runs, drops those past the bounds, and
// records this one's start. r.mu held.
func (r *Recorder) loadRuns(b *bbolt.Bucket, now int64) error {
	oldest := now - r.keep(textLevel).Milliseconds()
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 8 {
			drop = append(drop, k)
			return nil
		}
		rn := run{int64(binary.BigEndian.Uint64(k)), int64(binary.BigEndian.Uint64(v))}
		if rn.alive < oldest {
			drop = append(drop, k)
			return nil
		}
		r.runs = append(r.runs, rn)
		return nil
	})
	if err != nil {
		return err
	}
	for len(r.runs) >= maxRuns {
		drop = append(drop, binary.BigEndian.AppendUint64(nil, uint64(r.runs[0].start)))
		r.runs = r.runs[1:]
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	k := binary.BigEndian.AppendUint64(nil, uint64(now))
	return b.Put(k, k)
}

// writeState is what one Write holds, until Written settles it.
type writeState struct {
	now     int64
	gen     uint64
	series  []*series // their w* fields are the write's
	newOnes []*series // not yet in the index
	fixed   int64     // index and runs bytes, once written
	bytes   int64     // the history's bytes, once written
	evicted uint64
}

// Write writes what changed since the last Write that committed, in the
// store's sync transaction, and drops what retention and MaxBytes drop:
// pending raw points and text changes, the rollups closed (merged with one
// the file has for the same bucket: a restart within the hour, a late
// point), the new series, and the run's "alive until now". It holds the
// recorder's lock only to take what is pending (O(series with news)), and
// writes outside it. Written must follow, saying whether tx committed.
func (r *Recorder) Write(tx *bbolt.Tx) error {
	w, err := r.takePending()
	if err != nil {
		return err
	}
	return r.write(tx, w)
}

// takePending moves what is pending to a new write in flight.
func (r *Recorder) takePending() (*writeState, error) {
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db == nil {
		return nil, errors.New("the history is not open")
	}
	if r.writing != nil {
		r.settle(false) // a Write without Written: it failed
	}
	if r.nextEnd != 0 && now >= r.nextEnd {
		r.nextEnd = 0
		for _, s := range r.byID {
			if end := r.closeOpen(s, now); end != 0 && (r.nextEnd == 0 || end < r.nextEnd) {
				r.nextEnd = end
			}
		}
	}
	w := &writeState{now: now, gen: r.gen + 1, fixed: rootCost + r.indexBytes() + int64(len(r.runs)+1)*runBytes}
	dirty := r.dirty
	r.dirty, r.rawDue = nil, math.MaxInt64
	for _, s := range dirty {
		s.dirty = false
		takeRaw := len(s.raw) > 0 && (r.flushAll || len(s.raw) >= rawBatch || now >= s.rawSince+rawDelay.Milliseconds())
		if len(s.texts) == 0 && len(s.closed) == 0 && !s.isNew && !takeRaw {
			r.markDirty(s) // raw points, not yet due
			r.rawDue = min(r.rawDue, s.rawSince+rawDelay.Milliseconds())
			continue
		}
		if takeRaw {
			s.wRaw, s.raw, s.spare = s.raw, s.spare[:0], nil
			r.pendingRaw -= len(s.wRaw)
		} else if len(s.raw) > 0 {
			r.markDirty(s)
			r.rawDue = min(r.rawDue, s.rawSince+rawDelay.Milliseconds())
		}
		s.wTexts, s.texts = s.texts, nil
		s.wClosed, s.closed = s.closed, nil
		w.series = append(w.series, s)
		if s.isNew {
			w.newOnes = append(w.newOnes, s)
		}
	}
	slices.SortFunc(w.series, func(a, b *series) int { return int(a.id) - int(b.id) })
	r.writing = w
	return w, nil
}

// period is a period bucket being written.
type period struct {
	b       *bbolt.Bucket
	start   int64 // unix ms
	delta   int64 // estimated bytes added
	created bool  // by this write
}

// written is the estimated bytes this write added to the period (nil:
// none).
func (p *period) written() int64 {
	if p == nil {
		return 0
	}
	return p.delta
}

// periodWriter opens the period buckets a write touches, once each.
type periodWriter struct {
	periods *bbolt.Bucket
	open    map[periodName]*period
	arena   []byte // keys and values: bbolt keeps them until the commit
}

func (pw *periodWriter) get(lv *level, t int64) (*period, error) {
	start, end := lv.periodOf(t)
	name := nameOf(lv, end)
	if p := pw.open[name]; p != nil {
		return p, nil
	}
	p := &period{start: start}
	if p.b = pw.periods.Bucket(name[:]); p.b == nil {
		var err error
		if p.b, err = pw.periods.CreateBucket(name[:]); err != nil {
			return nil, fmt.Errorf("create a history bucket: %w", err)
		}
		p.delta, p.created = bucketCost, true
	}
	p.b.FillPercent = fillAppend
	pw.open[name] = p
	return p, nil
}

// bytes returns n bytes of the arena.
func (pw *periodWriter) bytes(n int) []byte {
	if cap(pw.arena)-len(pw.arena) < n {
		pw.arena = make([]byte, 0, max(64<<10, n))
	}
	b := pw.arena[len(pw.arena) : len(pw.arena)+n : len(pw.arena)+n]
	pw.arena = pw.arena[:len(pw.arena)+n]
	return b[:0]
}

func (r *Recorder) write(tx *bbolt.Tx, w *writeState) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return errors.New("the history's buckets are missing: Open was not called on this file")
	}
	pw := &periodWriter{periods: root.Bucket(bucketPeriods), open: make(map[periodName]*period)}
	for _, s := range w.series {
		if err := r.writeSeries(pw, s, w.now); err != nil {
			return err
		}
	}
	idx := root.Bucket(bucketSeries)
	idx.FillPercent = fillAppend // ids only grow
	for _, s := range w.newOnes {
		if err := idx.Put(binary.BigEndian.AppendUint32(nil, s.id), seriesRecord(s)); err != nil {
			return err
		}
		w.fixed += seriesCost(s)
	}
	if err := root.Bucket(bucketRuns).Put(binary.BigEndian.AppendUint64(nil, uint64(r.runStart)), binary.BigEndian.AppendUint64(nil, uint64(w.now))); err != nil {
		return err
	}
	if err := root.Bucket(bucketMeta).Put(keyGen, binary.BigEndian.AppendUint64(nil, w.gen)); err != nil {
		return err
	}
	sizes := root.Bucket(bucketSizes)
	for name, p := range pw.open {
		if p.delta == 0 {
			continue
		}
		ps, _ := decodeSize(sizes.Get(name[:]))
		ps.estimated += p.delta
		if err := sizes.Put(name[:], ps.encode()); err != nil {
			return err
		}
	}
	return r.trim(root, w, pw.open)
}

// writeSeries writes what s's write holds.
func (r *Recorder) writeSeries(pw *periodWriter, s *series, now int64) error {
	if !slices.IsSortedFunc(s.wRaw, func(a, b rawPoint) int { return cmpInt(a.t, b.t) }) {
		slices.SortStableFunc(s.wRaw, func(a, b rawPoint) int { return cmpInt(a.t, b.t) })
	}
	oldest := now - r.cfg.Raw.Milliseconds()
	raw := s.wRaw
	for len(raw) > 0 && raw[0].t < oldest {
		raw = raw[1:]
	}
	for len(raw) > 0 {
		p, err := pw.get(rawLevel, raw[0].t)
		if err != nil {
			return err
		}
		n := 1 // the chunk: the points of one period, at most chunkPoints
		for n < len(raw) && n < chunkPoints && raw[n].t < p.start+rawLevel.period {
			n++
		}
		k := appendKey(pw.bytes(keyLen), rawLevel, s.id, p.start, raw[0].t)
		old := p.b.Get(k) // a chunk starting at the same ms: this one goes after it
		v := append(pw.bytes(len(old)+n*chunkPointLen), old...)
		v = appendChunk(v, raw[:n], raw[0].t)
		if err := p.b.Put(k, v); err != nil {
			return err
		}
		p.delta += entryCost(n * chunkPointLen)
		if old == nil {
			p.delta += entryCost(0)
		}
		raw = raw[n:]
	}
	oldest = now - r.keep(textLevel).Milliseconds()
	for _, tp := range s.wTexts {
		if tp.t < oldest {
			continue
		}
		p, err := pw.get(textLevel, tp.t)
		if err != nil {
			return err
		}
		k := appendKey(pw.bytes(keyLen), textLevel, s.id, p.start, tp.t)
		v := append(pw.bytes(len(tp.text)), tp.text...)
		if err := p.b.Put(k, v); err != nil {
			return err
		}
		p.delta += entryCost(len(v))
	}
	for _, c := range s.wClosed {
		if c.start+c.lv.step.Milliseconds() <= now-r.keep(c.lv).Milliseconds() {
			continue
		}
		p, err := pw.get(c.lv, c.start)
		if err != nil {
			return err
		}
		k := appendKey(pw.bytes(keyLen), c.lv, s.id, p.start, c.start)
		a := c.agg
		if old := p.b.Get(k); old != nil {
			if was, ok := decodeRollup(old); ok {
				was.merge(a)
				a = was
			}
		} else {
			p.delta += entryCost(rollupLen)
		}
		if err := p.b.Put(k, appendRollup(pw.bytes(rollupLen), a)); err != nil {
			return err
		}
	}
	return nil
}

// trim drops the period buckets past their level's retention, then the
// oldest ones while the history's bytes exceed MaxBytes, and sets w.bytes.
// It measures the periods no longer written, and those written whose
// estimate passed measureBytes (see budget.go).
func (r *Recorder) trim(root *bbolt.Bucket, w *writeState, touched map[periodName]*period) error {
	sizes, periods := root.Bucket(bucketSizes), root.Bucket(bucketPeriods)
	type sized struct {
		name  []byte
		lv    *level
		end   int64
		size  periodSize
		bytes int64 // what it counts in the budget
	}
	var all []sized // at most the periods of the levels' retention
	err := sizes.ForEach(func(k, v []byte) error {
		lv, _, end := parseName(k)
		ps, ok := decodeSize(v)
		if !ok {
			lv = nil
		}
		all = append(all, sized{name: slices.Clone(k), lv: lv, end: end, size: ps})
		return nil
	})
	if err != nil {
		return err
	}
	var kept []sized
	var drop [][]byte
	var total int64
	for _, p := range all {
		if p.lv == nil || p.end <= w.now-r.keep(p.lv).Milliseconds() {
			drop = append(drop, p.name)
			continue
		}
		t := touched[periodName(p.name)]
		due := t == nil || (!t.created && p.size.estimated-t.delta >= r.measureBytes())
		if p.size.estimated > 0 && due {
			if b := periods.Bucket(p.name); b != nil {
				p.size = measure(b, t.written())
				if err := sizes.Put(p.name, p.size.encode()); err != nil {
					return err
				}
			}
		}
		p.bytes = p.size.cost()
		kept = append(kept, p)
		total += p.bytes
	}
	retention := len(drop)
	var budget int64
	for len(kept) > 0 && w.fixed+total > r.cfg.MaxBytes-r.headroom() {
		drop = append(drop, kept[0].name)
		total -= kept[0].bytes
		budget += kept[0].bytes
		kept = kept[1:]
	}
	for _, k := range drop {
		if err := periods.DeleteBucket(k); err != nil && !errors.Is(err, bberrors.ErrBucketNotFound) {
			return fmt.Errorf("drop a history bucket: %w", err)
		}
		if err := sizes.Delete(k); err != nil {
			return err
		}
	}
	if n := len(drop) - retention; n > 0 {
		r.cfg.Logger.Info("history over its disk budget: the oldest periods dropped", "periods", n, "bytes", budget, "max_bytes", r.cfg.MaxBytes)
	}
	w.evicted = uint64(len(drop))
	w.bytes = w.fixed + total
	return nil
}

// Written says whether the transaction of the last Write committed: if
// not, what it held is pending again, before what came since, and is
// written next time (nothing lost, nothing twice).
func (r *Recorder) Written(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settle(ok)
}

// settle ends the write in flight. r.mu held.
func (r *Recorder) settle(ok bool) {
	w := r.writing
	if w == nil {
		return
	}
	r.writing = nil
	if !ok {
		for _, s := range w.series {
			if len(s.wRaw) > 0 { // due again at once
				s.rawSince = w.now - rawDelay.Milliseconds()
				r.pendingRaw += len(s.wRaw)
				r.rawDue = min(r.rawDue, w.now)
			}
			s.raw = append(s.wRaw, s.raw...)
			s.texts = append(s.wTexts, s.texts...)
			s.closed = append(s.wClosed, s.closed...)
			s.wRaw, s.wTexts, s.wClosed = nil, nil, nil
			r.markDirty(s)
		}
		return
	}
	for _, s := range w.series {
		r.pending -= len(s.wRaw) + len(s.wTexts) + len(s.wClosed)
		s.spare = s.wRaw[:0]
		s.wRaw, s.wTexts, s.wClosed = nil, nil, nil
	}
	for _, s := range w.newOnes {
		s.isNew = false
	}
	r.gen, r.bytes, r.alive = w.gen, w.bytes, w.now
	r.evicted += w.evicted
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// damaged is the error for a panic of bbolt's reading db.
func damaged(db *bbolt.DB, p any) error {
	return fmt.Errorf("%w: %s cannot be read (%v); stop the hub and move the file aside, or check it with hub store check", ErrDamaged, db.Path(), p)
}
