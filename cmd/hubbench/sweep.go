package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

// The ingest sweep: bench/run.sh runs hubbench ingest at rising rates per
// series and asks `hubbench sustained` after each rate whether to go on;
// the report gives each series' highest sustained rate.

// ingestSeries names one line of the sweep: a target and how it ran.
type ingestSeries struct {
	Variant   string
	Target    string
	Data      bool   // the hub persisted (--data)
	History   bool   // the hub recorded history in --data
	Overflow  string // the dashboards' overflow option
	Transport string // the dashboards' transport
	Devices   int
	Dashboard int
}

// ingestKey is one rate of a series.
type ingestKey struct {
	ingestSeries
	Rate float64
}

// ingestCell is the repeats of one rate of one series, from the latest
// session that measured it.
type ingestCell struct {
	Key  ingestKey
	Runs []ingestResult
}

func ingestKeyOf(r ingestResult) ingestKey {
	return ingestKey{ingestSeries{r.Variant, r.Target, r.Data, r.History, r.Overflow, r.Transport, r.Devices, r.Dashboard}, r.Rate}
}

// groupIngest groups ingest runs by cell, keeping each cell's latest
// session, ordered by series then rate.
func groupIngest(recs []ingestRecord) []*ingestCell {
	latest := map[ingestKey]int{}
	for _, r := range recs {
		k := ingestKeyOf(r.ingestResult)
		latest[k] = max(latest[k], r.Session)
	}
	byKey := map[ingestKey]*ingestCell{}
	var cells []*ingestCell
	for _, r := range recs {
		k := ingestKeyOf(r.ingestResult)
		if r.Session != latest[k] {
			continue
		}
		c := byKey[k]
		if c == nil {
			c = &ingestCell{Key: k}
			byKey[k] = c
			cells = append(cells, c)
		}
		c.Runs = append(c.Runs, r.ingestResult)
	}
	slices.SortStableFunc(cells, func(a, b *ingestCell) int {
		x, y := a.Key, b.Key
		return cmp.Or(
			cmp.Compare(ingestSeriesOrder(x.ingestSeries), ingestSeriesOrder(y.ingestSeries)),
			cmp.Compare(x.Target, y.Target), cmpBool(x.Data, y.Data), cmpBool(x.History, y.History), cmp.Compare(x.Overflow, y.Overflow),
			cmp.Compare(x.Variant, y.Variant), cmp.Compare(x.Devices, y.Devices), cmp.Compare(x.Rate, y.Rate))
	})
	return cells
}

// ingestSeriesOrder puts motehub first (plain, --data without and with
// history, latest), then the peers.
func ingestSeriesOrder(s ingestSeries) int {
	switch {
	case s.Target == "motehub" && !s.Data && s.Overflow == "":
		return 0
	case s.Target == "motehub" && s.Data:
		return 1
	case s.Target == "motehub":
		return 2
	}
	return 3
}

// ingestLabel names a series in the report.
func ingestLabel(s ingestSeries) string {
	l := targetLabel(s.Target)
	switch {
	case s.History:
		l += " --data, history"
	case s.Data:
		l += " --data, no history"
	}
	if s.Overflow != "" {
		l += ", overflow " + s.Overflow
	}
	if s.Transport == transportSSE {
		l += " (SSE)"
	}
	return l
}

// sustained reports whether most repeats of the cell were sustained (≥ 99.9 %
// delivered, p99 < 1 s, no dashboard cut off, the publishers on time: the
// ingest run's own verdict). One of two is not most.
func (c *ingestCell) sustained() bool {
	n := 0
	for _, r := range c.Runs {
		if r.Sustained && r.Error == "" {
			n++
		}
	}
	return 2*n > len(c.Runs)
}

// of is the spread of m over the cell's runs.
func (c *ingestCell) of(m func(ingestResult) float64) spread {
	xs := make([]float64, 0, len(c.Runs))
	for _, r := range c.Runs {
		xs = append(xs, m(r))
	}
	return spreadOf(xs)
}

// highestSustained is the highest rate of a series' cells that was
// sustained (nil when none was), and the cell of the next rate tested above
// it (nil when there is none).
func highestSustained(cells []*ingestCell, s ingestSeries) (best, next *ingestCell) {
	for _, c := range cells {
		if c.Key.ingestSeries == s && c.sustained() && (best == nil || c.Key.Rate > best.Key.Rate) {
			best = c
		}
	}
	for _, c := range cells {
		if c.Key.ingestSeries != s || (best != nil && c.Key.Rate <= best.Key.Rate) {
			continue
		}
		if next == nil || c.Key.Rate < next.Key.Rate {
			next = c
		}
	}
	return best, next
}

// ingestSeriesOf lists the series of cells in their order.
func ingestSeriesOf(cells []*ingestCell) []ingestSeries {
	var out []ingestSeries
	for _, c := range cells {
		if !slices.Contains(out, c.Key.ingestSeries) {
			out = append(out, c.Key.ingestSeries)
		}
	}
	return out
}

// errNotSustained is cmdSustained's "no": run.sh reads the exit status.
var errNotSustained = errors.New("not sustained")

// cmdSustained exits 0 when most repeats of one rate of an ingest series
// were sustained, 1 otherwise (or when the cell has no runs).
func cmdSustained(args []string) error {
	fs := flag.NewFlagSet("sustained", flag.ContinueOnError)
	in := fs.String("in", "", "results file")
	var k ingestKey
	fs.StringVar(&k.Variant, "variant", "pinned", "")
	fs.StringVar(&k.Target, "target", "motehub", "")
	fs.BoolVar(&k.Data, "data", false, "the hub ran with --data")
	fs.BoolVar(&k.History, "history", false, "the hub recorded history in --data")
	fs.StringVar(&k.Overflow, "overflow", "", "the dashboards' overflow option")
	fs.StringVar(&k.Transport, "transport", "", "the dashboards' transport (any when empty)")
	fs.IntVar(&k.Devices, "devices", 2000, "")
	fs.IntVar(&k.Dashboard, "dashboards", -1, "dashboards (any when negative)")
	fs.Float64Var(&k.Rate, "rate", 0, "messages/s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	rs, err := readResults(f)
	if err != nil {
		return err
	}
	for _, c := range groupIngest(rs.Ingests) {
		ck := c.Key
		if k.Transport == "" {
			ck.Transport = ""
		}
		if k.Dashboard < 0 {
			ck.Dashboard = k.Dashboard
		}
		if ck == k {
			if c.sustained() {
				return nil
			}
			return errNotSustained
		}
	}
	return fmt.Errorf("%w: no run of that cell", errNotSustained)
}

// writeIngest is the report's ingest section: each series' highest
// sustained rate, then every cell.
func writeIngest(w io.Writer, cells []*ingestCell) {
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(w, "## Device ingest (hubbench ingest)\n\n")
	fmt.Fprintf(w, "D MQTT devices, each publishing to its own topic (QoS 0, 100-byte payloads), at a total rate; K dashboards subscribed to `#` count what reaches them. Sustained: ≥ 99.9 %% delivered, p99 < 1 s, no dashboard cut off, the devices on time, in most repeats. The sweep stops a series at the first rate it does not sustain. CPU µs per message is the target's CPU over the window divided by the messages published in it.\n\n")
	fmt.Fprintf(w, "| series | devices → dashboards | placement | highest sustained | there: delivered, p50 / p99 (ms), CPU µs/msg | next rate tried |\n|---|---|---|---|---|---|\n")
	for _, s := range ingestSeriesOf(cells) {
		best, next := highestSustained(cells, s)
		there, nextText := "—", "—"
		bestText := "none of the rates tried"
		if best != nil {
			bestText = si(best.Key.Rate) + " msg/s"
			there = ingestCellText(best)
		}
		if next != nil {
			nextText = si(next.Key.Rate) + ": " + ingestCellText(next)
		}
		fmt.Fprintf(w, "| %s | %d → %d | %s | %s | %s | %s |\n", ingestLabel(s), s.Devices, s.Dashboard, s.Variant, bestText, there, nextText)
	}
	fmt.Fprintf(w, "\n| series | rate (msg/s) | published/s | delivered | p50 | p99 | CPU µs/msg | target cores | cut off | others' cores | sustained | runs |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		f2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		n := 0
		for _, r := range c.Runs {
			if r.Sustained {
				n++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %d%s |\n", ingestLabel(c.Key.ingestSeries), si(c.Key.Rate),
			withRange(c.of(func(r ingestResult) float64 { return r.PublishedPerSec }), si),
			withRange(c.of(func(r ingestResult) float64 { return r.DeliveryRatio }), pct),
			withRange(c.of(func(r ingestResult) float64 { return float64(r.LatencyUs.P50) }), ms),
			withRange(c.of(ingestP99), ms),
			withRange(c.of(func(r ingestResult) float64 { return r.CPUUsPerMessage }), f2),
			withRange(c.of(func(r ingestResult) float64 { return r.TargetCPUCores }), f2),
			withRange(c.of(func(r ingestResult) float64 { return float64(r.CutOff) }), func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			withRange(c.of(func(r ingestResult) float64 { return r.ForeignCores }), f2),
			n, len(c.Runs), len(c.Runs), ingestErrorNote(c))
	}
	fmt.Fprintln(w)
}

func ingestP99(r ingestResult) float64 {
	if r.Error != "" || r.LatencyUs.Count == 0 {
		return float64(latencyMaxUs)
	}
	return float64(r.LatencyUs.P99)
}

// ingestCellText is a cell in brief: delivered, p50 / p99, CPU per message.
func ingestCellText(c *ingestCell) string {
	cut := c.of(func(r ingestResult) float64 { return float64(r.CutOff) })
	text := fmt.Sprintf("%s, %s / %s, %s",
		withRange(c.of(func(r ingestResult) float64 { return r.DeliveryRatio }), pct),
		withRange(c.of(func(r ingestResult) float64 { return float64(r.LatencyUs.P50) }), ms),
		withRange(c.of(ingestP99), ms),
		withRange(c.of(func(r ingestResult) float64 { return r.CPUUsPerMessage }), func(v float64) string { return fmt.Sprintf("%.1f", v) }))
	if cut.Max > 0 {
		text += fmt.Sprintf(", cut off %s", withRange(cut, func(v float64) string { return fmt.Sprintf("%.0f", v) }))
	}
	return text
}

func ingestErrorNote(c *ingestCell) string {
	for _, r := range c.Runs {
		if r.Error != "" {
			return fmt.Sprintf(" (error: %.80s)", r.Error)
		}
	}
	return ""
}
