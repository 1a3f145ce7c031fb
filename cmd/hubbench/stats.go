package main

import (
	"cmp"
	"slices"
)

// The report's arithmetic: medians over repeats, and the knee of a series.

// Knee criteria: the highest load with at least this delivery ratio and a
// p99 under this many microseconds.
const (
	kneeMinRatio = 0.999
	kneeMaxP99Us = 100_000
)

// spread is the median and the range of one measure over repeats.
type spread struct {
	Median, Min, Max float64
	N                int
}

// median of xs (the mean of the two middle values for an even count); 0
// for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	return spread{Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs), N: len(xs)}
}

// seriesKey names a line of the matrix: one target and transport, one
// placement, one subscriber count.
type seriesKey struct {
	Variant   string
	Target    string
	Transport string
	Subs      int
}

// cellKey is one point of the matrix.
type cellKey struct {
	seriesKey
	Offered float64
	Probe   bool
}

// cell is the repeats of one point. Every repeat counts, whatever else ran
// on the machine: discarding the runs that competed for the CPU would
// compare one series' quiet minutes with another's busy ones.
type cell struct {
	Key     cellKey
	Runs    []result
	Dirty   bool // the median run competed with other processes (see maxForeignCores)
	Skipped bool // not run: bench/run.sh found the series saturated at a lower load
}

// maxForeignCores is how much CPU other processes may use during a run for
// it to count as clean (bench/run.sh retries runs past it when asked to).
const maxForeignCores = 0.3

// latestSession keeps the runs of the latest session that measured the
// cell: a cell measured again (on a quieter machine, say) replaces its
// earlier measurement instead of mixing with it.
func (c *cell) latestSession() {
	latest := c.Runs[0].Session
	for _, r := range c.Runs {
		latest = max(latest, r.Session)
	}
	c.Runs = slices.DeleteFunc(c.Runs, func(r result) bool { return r.Session != latest })
}

func (c *cell) finish() {
	c.Dirty = c.of(func(r result) float64 { return r.ForeignCores }).Median > maxForeignCores
}

// measure is one number of a run.
type measure func(result) float64

// of is the spread of m over the cell's runs.
func (c *cell) of(m measure) spread {
	xs := make([]float64, 0, len(c.Runs))
	for _, r := range c.Runs {
		xs = append(xs, m(r))
	}
	return spreadOf(xs)
}

// ratioOf is the delivery ratio a run counts with: nothing for a failed
// run, and a publisher that could not send all it was due to (the target
// did not take its messages fast enough: Centrifugo's HTTP API, or a
// broker that stopped reading) counts what it did not send as lost.
func ratioOf(r result) float64 {
	if r.Error != "" {
		return 0
	}
	if r.PublisherBehind > 0 && r.Published > 0 {
		return r.DeliveryRatio * float64(r.Published) / float64(r.Published+r.PublisherBehind)
	}
	return r.DeliveryRatio
}

func p99Of(r result) float64 {
	if r.Error != "" || r.LatencyUs.Count == 0 {
		return float64(latencyMaxUs)
	}
	return float64(r.LatencyUs.P99)
}

// passes reports whether the cell is within the knee criteria, judged on
// the medians of its repeats.
func (c *cell) passes() bool {
	return len(c.Runs) > 0 && c.of(ratioOf).Median >= kneeMinRatio && c.of(p99Of).Median < kneeMaxP99Us
}

// knee is where a series stops keeping up.
type knee struct {
	Offered   float64 // the highest load that passes; 0 when none does
	Delivered float64 // median deliveries/s there
	Tested    int     // loads tested
	Highest   float64 // the highest load tested
	AtTop     bool    // the highest load tested passes: the knee is at least Offered
	Dirty     bool    // some cell of the series competed with other processes
	Full      float64 // the highest load delivered in full (median ≥ kneeMinRatio), whatever the latency
}

// findKnee takes the cells of one series (any order) and finds its knee:
// the highest offered load whose cell passes.
func findKnee(cells []*cell) knee {
	var k knee
	for _, c := range cells {
		if c.Key.Probe {
			continue
		}
		k.Tested++
		k.Highest = max(k.Highest, c.Key.Offered)
		if c.Skipped {
			continue
		}
		k.Dirty = k.Dirty || c.Dirty
		if len(c.Runs) > 0 && c.of(ratioOf).Median >= kneeMinRatio {
			k.Full = max(k.Full, c.Key.Offered)
		}
		if c.passes() && c.Key.Offered > k.Offered {
			k.Offered = c.Key.Offered
			k.Delivered = c.of(func(r result) float64 { return r.DeliveredPerSec }).Median
		}
	}
	k.AtTop = k.Tested > 0 && k.Offered == k.Highest
	return k
}

// addSkipped adds the cells bench/run.sh did not run to cells, so that a
// series' highest load counts them: a series that saturated has no "≥".
func addSkipped(cells []*cell, skips []skipped) []*cell {
	for _, s := range skips {
		k := cellKey{seriesKey{s.Variant, s.Target, s.Transport, s.Subs}, s.Offered, false}
		if findCell(cells, k) == nil {
			cells = append(cells, &cell{Key: k, Skipped: true})
		}
	}
	return cells
}

// groupCells groups runs by cell, in a stable order: variant, subscribers,
// probe first, offered load, then target and transport.
func groupCells(runs []result) []*cell {
	byKey := map[cellKey]*cell{}
	var cells []*cell
	for _, r := range runs {
		k := cellKey{seriesKey{r.Variant, r.Target, r.Transport, r.Subscribers}, r.Offered, r.Probe}
		c := byKey[k]
		if c == nil {
			c = &cell{Key: k}
			byKey[k] = c
			cells = append(cells, c)
		}
		c.Runs = append(c.Runs, r)
	}
	for _, c := range cells {
		c.latestSession()
		c.finish()
	}
	slices.SortStableFunc(cells, func(a, b *cell) int {
		return cmp.Or(
			cmp.Compare(variantOrder(a.Key.Variant), variantOrder(b.Key.Variant)),
			cmp.Compare(a.Key.Variant, b.Key.Variant),
			cmp.Compare(a.Key.Subs, b.Key.Subs),
			-cmpBool(a.Key.Probe, b.Key.Probe),
			cmp.Compare(a.Key.Offered, b.Key.Offered),
			cmp.Compare(seriesOrder(a.Key.Target, a.Key.Transport), seriesOrder(b.Key.Target, b.Key.Transport)),
		)
	})
	return cells
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// The order in which variants and series appear in the report.
var (
	variants = []string{"pinned", "unpinned", "gomaxprocs1"}
	series   = []struct{ Target, Transport, Label string }{
		{"motehub", transportWS, "motehub WS"},
		{"motehub", transportWSBatch, "motehub WS batch"},
		{"motehub", transportSSE, "motehub SSE"},
		{"mosquitto", transportMQTTWS, "Mosquitto WS"},
		{"centrifugo", transportCentWS, "Centrifugo WS"},
		{"nats", transportNATSWS, "NATS WS"},
	}
	// peerSeries are the series motehub WS is compared with.
	peerSeries = []struct{ Target, Transport string }{
		{"centrifugo", transportCentWS},
		{"nats", transportNATSWS},
		{"mosquitto", transportMQTTWS},
	}
)

func variantOrder(v string) int {
	if i := slices.Index(variants, v); i >= 0 {
		return i
	}
	return len(variants)
}

func seriesOrder(target, transport string) int {
	for i, s := range series {
		if s.Target == target && s.Transport == transport {
			return i
		}
	}
	return len(series)
}

func seriesLabel(target, transport string) string {
	if i := seriesOrder(target, transport); i < len(series) {
		return series[i].Label
	}
	return target + " " + transport
}
