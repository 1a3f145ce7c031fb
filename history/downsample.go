package history

import (
	"slices"
	"time"
)

// collector downsamples a level's entries, read oldest first, to at most
// points buckets: it keeps the entries as they are until there are more
// than points, then puts them, and those after, in buckets of equal width
// from from. It holds at most points entries.
type collector struct {
	lv       *level
	from, to int64
	points   int
	buf      []entry
	width    int64 // 0 until downsampling
	out      []Point
	cur      entry
	curStart int64
	hasCur   bool
}

func newCollector(lv *level, from, to int64, points int) *collector {
	return &collector{lv: lv, from: from, to: to, points: points}
}

func (c *collector) add(e entry) {
	if c.width == 0 {
		c.buf = append(c.buf, e)
		if len(c.buf) <= c.points {
			return
		}
		c.width = c.bucketWidth()
		buf := c.buf
		c.buf = nil
		for _, b := range buf {
			c.bucket(b)
		}
		return
	}
	c.bucket(e)
}

// bucketWidth is the narrowest width that puts [from, to) in at most
// points buckets: a multiple of the level's step, or of a second.
func (c *collector) bucketWidth() int64 {
	span := c.to - c.from
	w := (span + int64(c.points) - 1) / int64(c.points)
	unit := c.lv.step.Milliseconds()
	if unit == 0 && w >= 1000 {
		unit = 1000
	}
	if unit > 0 {
		w = (w + unit - 1) / unit * unit
	}
	return max(w, 1)
}

func (c *collector) bucket(e entry) {
	start := c.from + floorDiv(e.t-c.from, c.width)
	if c.hasCur && start == c.curStart {
		c.cur.agg.merge(e.agg)
		return
	}
	c.flush()
	c.cur, c.curStart, c.hasCur = e, start, true
}

func (c *collector) flush() {
	if c.hasCur {
		c.cur.t = c.curStart
		c.out = append(c.out, pointOf(c.cur))
	}
}

// finish returns the points and the width of a bucket (the level's step,
// 0 for raw points, when the entries are answered as they are).
func (c *collector) finish() ([]Point, time.Duration) {
	if c.width == 0 {
		out := make([]Point, len(c.buf))
		for i, e := range c.buf {
			out[i] = pointOf(e)
		}
		return out, c.lv.step
	}
	c.flush()
	return c.out, time.Duration(c.width) * time.Millisecond
}

// Bounds of the silent-gap finder.
const (
	spacingSample = 4096  // spacings whose median is the usual interval
	maxSilent     = 10000 // candidate silent spans kept
	silentFactor  = 10    // silent: no point for this many usual intervals
)

// span is a time range, unix ms.
type span struct{ from, to int64 }

// gapFinder finds where a series was silent: it learns the usual interval
// (the median of the first spacingSample spacings) and keeps the spans
// that may be longer than silentFactor times it.
type gapFinder struct {
	step    int64 // a rollup's width: its data ends a step after its start
	prev    int64
	has     bool
	sample  []int64
	median  int64 // set once the sample is full
	spans   []span
	spacing []int64 // of each span
}

func newGapFinder(lv *level) *gapFinder { return &gapFinder{step: lv.step.Milliseconds()} }

func (g *gapFinder) see(t int64) {
	if g.has {
		d := t - g.prev
		switch {
		case g.median == 0:
			g.sample = append(g.sample, d)
			g.spans = append(g.spans, span{g.prev + g.step, t})
			g.spacing = append(g.spacing, d)
			if len(g.sample) == spacingSample {
				g.median = medianOf(g.sample)
				g.keepOver(g.threshold())
			}
		case d > g.threshold() && len(g.spans) < maxSilent:
			g.spans = append(g.spans, span{g.prev + g.step, t})
			g.spacing = append(g.spacing, d)
		}
	}
	g.prev, g.has = t, true
}

func (g *gapFinder) threshold() int64 { return silentFactor * max(g.median, 1000) }

// keepOver keeps the spans whose spacing is over limit.
func (g *gapFinder) keepOver(limit int64) {
	spans, spacing := g.spans[:0], g.spacing[:0]
	for i, s := range g.spans {
		if g.spacing[i] > limit {
			spans = append(spans, s)
			spacing = append(spacing, g.spacing[i])
		}
	}
	g.spans, g.spacing = spans, spacing
}

// silent returns the silent spans, the one after the last entry until end
// included, less the hub-down spans (pieces shorter than the threshold
// left out).
func (g *gapFinder) silent(end int64, down []span) []span {
	if len(g.sample) == 0 {
		return nil // fewer than two entries: no usual interval
	}
	if g.median == 0 {
		g.median = medianOf(g.sample)
		g.keepOver(g.threshold())
	}
	limit := g.threshold()
	if end-g.prev > limit {
		g.spans = append(g.spans, span{g.prev + g.step, end})
	}
	var out []span
	for _, s := range g.spans {
		for _, piece := range subtract(s, down) {
			if piece.to-piece.from > limit {
				out = append(out, piece)
			}
		}
	}
	return out
}

func medianOf(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// subtract returns s less the sorted spans cut.
func subtract(s span, cut []span) []span {
	var out []span
	for _, c := range cut {
		if c.to <= s.from || c.from >= s.to {
			continue
		}
		if c.from > s.from {
			out = append(out, span{s.from, c.from})
		}
		s.from = max(s.from, c.to)
		if s.from >= s.to {
			return out
		}
	}
	return append(out, s)
}

// hubDown returns the spans between the hub's runs within [from, to).
func hubDown(runs []run, from, to int64) []span {
	var out []span
	for i := 1; i < len(runs); i++ {
		s := span{max(runs[i-1].alive, from), min(runs[i].start, to)}
		if s.from < s.to {
			out = append(out, s)
		}
	}
	return out
}

func gapsOf(spans []span, reason string) []Gap {
	out := make([]Gap, len(spans))
	for i, s := range spans {
		out[i] = Gap{From: time.UnixMilli(s.from).UTC(), To: time.UnixMilli(s.to).UTC(), Reason: reason}
	}
	return out
}
