package history

import (
	"encoding/binary"
	"math"
	"time"
)

// The history's layout in the store's file. Everything is under one
// top-level bucket:
//
//	hist/series   id (uint32) → kind, first seen (unix ms), topic NUL field
//	hist/meta     "gen" → the count of writes (uint64)
//	hist/runs     start (unix ms) → alive until (unix ms): the hub's runs
//	hist/sizes    period name → the period bucket's bytes, estimated or measured (budget.go)
//	hist/periods  period name → a bucket of one level over one period
//
// A period name is its end (unix ms, big-endian) then its level's id, so
// that names sort by their newest data, oldest first: the disk budget drops
// whole period buckets from the front (a period goes when its newest data
// is the oldest: raw hours before the 5-minute day and hourly month that
// hold the same times), and retention drops a period once its end is past
// its level's retention; never keys one by one (which bbolt makes
// quadratic). In a period bucket a key is the series id then the
// time as an offset from the period's start (uint32, in the level's unit),
// so that one series over a range is one cursor walk; values are a chunk
// of raw points (each a uint32 offset in ms from the key's time and a
// float64, at most chunkPoints, written at once: see rawDelay), min, max,
// sum, last (float64) and count (uint32) for a rollup, or the text of a
// change.
var (
	bucketRoot    = []byte("hist")
	bucketSeries  = []byte("series")
	bucketMeta    = []byte("meta")
	bucketRuns    = []byte("runs")
	bucketSizes   = []byte("sizes")
	bucketPeriods = []byte("periods")
	keyGen        = []byte("gen")
)

// level is one kind of data in the file, each in buckets of one period.
type level struct {
	id   byte // finer levels sort first: of periods that end together, they go first
	res  Resolution
	step time.Duration // a rollup's width (0: points)
	unit int64         // ms per unit of a key's time offset
	// monthly periods (else period ms wide, from the epoch)
	monthly bool
	period  int64
}

var (
	rawLevel   = &level{id: '1', res: Raw, unit: 1, period: time.Hour.Milliseconds()}
	fiveLevel  = &level{id: '2', res: FiveMinute, step: 5 * time.Minute, unit: 1000, period: 24 * time.Hour.Milliseconds()}
	hourLevel  = &level{id: '3', res: Hourly, step: time.Hour, unit: 1000, monthly: true}
	textLevel  = &level{id: '4', res: Raw, unit: 1, monthly: true}
	rollups    = [2]*level{fiveLevel, hourLevel}
	allLevels  = [...]*level{rawLevel, fiveLevel, hourLevel, textLevel}
	fillAppend = 0.95 // FillPercent of period buckets: keys arrive in order per series
)

func levelByID(id byte) *level {
	for _, lv := range allLevels {
		if lv.id == id {
			return lv
		}
	}
	return nil
}

// keep is how long the level's data is kept.
func (r *Recorder) keep(lv *level) time.Duration {
	switch lv {
	case rawLevel:
		return r.cfg.Raw
	case fiveLevel:
		return r.cfg.FiveMinute
	case hourLevel:
		return r.cfg.Hourly
	}
	return max(r.cfg.Raw, r.cfg.FiveMinute, r.cfg.Hourly) // text changes
}

func floorDiv(t, d int64) int64 {
	q := t / d
	if t%d != 0 && t < 0 {
		q--
	}
	return q * d
}

// bucketStart is the start of the rollup bucket holding t.
func (lv *level) bucketStart(t int64) int64 { return floorDiv(t, lv.step.Milliseconds()) }

// periodOf returns the period holding t: its start and end (unix ms).
func (lv *level) periodOf(t int64) (start, end int64) {
	if !lv.monthly {
		start = floorDiv(t, lv.period)
		return start, start + lv.period
	}
	u := time.UnixMilli(t).UTC()
	m := time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	return m.UnixMilli(), m.AddDate(0, 1, 0).UnixMilli()
}

// periodName is a period bucket's name (see the layout above).
type periodName [9]byte

func nameOf(lv *level, end int64) periodName {
	var n periodName
	binary.BigEndian.PutUint64(n[:8], uint64(end))
	n[8] = lv.id
	return n
}

// parseName returns the level and the period of a bucket's name (nil
// level: not one of ours).
func parseName(b []byte) (lv *level, start, end int64) {
	if len(b) != len(periodName{}) {
		return nil, 0, 0
	}
	lv = levelByID(b[8])
	if lv == nil {
		return nil, 0, 0
	}
	end = int64(binary.BigEndian.Uint64(b[:8]))
	start, _ = lv.periodOf(end - 1)
	return lv, start, end
}

const keyLen = 8

// appendKey appends the key of series id at t in the period from pstart.
func appendKey(dst []byte, lv *level, id uint32, pstart, t int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, id)
	return binary.BigEndian.AppendUint32(dst, uint32((t-pstart)/lv.unit))
}

// keyTime returns the series id and the time (unix ms) of a key.
func keyTime(k []byte, lv *level, pstart int64) (id uint32, t int64) {
	return binary.BigEndian.Uint32(k), pstart + int64(binary.BigEndian.Uint32(k[4:]))*lv.unit
}

const rollupLen = 36

func appendRollup(dst []byte, a agg) []byte {
	for _, f := range [...]float64{a.min, a.max, a.sum, a.last} {
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(min(a.count, math.MaxUint32)))
}

func decodeRollup(v []byte) (agg, bool) {
	if len(v) != rollupLen {
		return agg{}, false
	}
	f := func(i int) float64 { return math.Float64frombits(binary.BigEndian.Uint64(v[8*i:])) }
	return agg{min: f(0), max: f(1), sum: f(2), last: f(3), count: int64(binary.BigEndian.Uint32(v[32:]))}, true
}

// A chunk of raw points.
const (
	chunkPoints   = 256
	chunkPointLen = 12
)

// appendChunk appends the points (sorted, within a period) relative to t0.
func appendChunk(dst []byte, pts []rawPoint, t0 int64) []byte {
	for _, p := range pts {
		dst = binary.BigEndian.AppendUint32(dst, uint32(p.t-t0))
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(p.v))
	}
	return dst
}

// appendPoints appends the points of a chunk at t0 to dst.
func appendPoints(dst []rawPoint, v []byte, t0 int64) []rawPoint {
	for ; len(v) >= chunkPointLen; v = v[chunkPointLen:] {
		dst = append(dst, rawPoint{t0 + int64(binary.BigEndian.Uint32(v)), math.Float64frombits(binary.BigEndian.Uint64(v[4:]))})
	}
	return dst
}

// entryCost estimates the bytes an entry takes in a leaf page: its key and
// value, bbolt's 16-byte element header, and the room left by
// fillAppend and by branch pages (see TestBudgetHolds, which checks the
// estimate against the file's bucket statistics).
func entryCost(valueLen int) int64 { return int64(keyLen+valueLen+16) * 5 / 4 }

// bucketCost is what a new period bucket costs besides its entries: its
// header in the parent and the partly filled pages at its edges.
const bucketCost = 2 * 4096
