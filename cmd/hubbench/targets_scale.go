package main

import (
	"fmt"
	"io"
	"slices"
)

// The targets of scale (issue 19): idle memory per SSE stream and per MQTT
// device, 100,000 devices on one hub connecting at 5,000/s, many
// WebSocket subscribers at a few messages a second, and device ingest.
const (
	targetIdleSSEBytes    = 10 * 1024
	targetIdleDeviceBytes = 8 * 1024
	targetDevices         = 100_000
	targetDeviceRSSBytes  = 64 * 1024 // of RSS per device, with targetDevices connected
	targetConnectRate     = 5_000     // devices connecting per second
	targetManyRatio       = 0.999     // delivered, many-clients cells
	targetIngestPlain     = 50_000    // msg/s sustained, without --data
	targetIngestData      = 40_000    // msg/s sustained, with --data (no history)
)

// manyTarget is a many-clients cell and the p99 it must stay under.
type manyTarget struct {
	subs    int
	rate    float64 // msg/s
	p99Max  float64 // µs
	p99Text string
}

var manyTargets = []manyTarget{
	{19_000, 5, 1_000_000, "1 s"},
	{10_000, 10, 500_000, "500 ms"},
}

// writeScaleTargets adds the scale targets' rows to the targets table.
func writeScaleTargets(w io.Writer, cells []*cell, idle []*idleCell, ingest []*ingestCell) {
	row := func(target, measured, verdict string) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", target, measured, verdict)
	}
	idleOf := func(transport string) []*idleCell {
		return slices.DeleteFunc(slices.Clone(idle), func(c *idleCell) bool {
			return c.Target != "motehub" || c.Transport != transport || c.Subs < 1000 // fewer: RSS noise
		})
	}
	memRow := func(target, transport string, limit float64) {
		cs := idleOf(transport)
		if len(cs) == 0 {
			row(target, "not measured (needs ≥ 1,000 idle clients)", "—")
			return
		}
		var mems []string
		ok := true
		for _, c := range cs {
			m := c.Runs.of(memPerConn).Median
			ok = ok && m <= limit
			mems = append(mems, fmt.Sprintf("%s idle: %s", count(c.Subs), kb(m)))
		}
		row(target, joinList(mems), verdict(ok))
	}
	memRow("≤ 10 KB per idle SSE stream", transportSSE, targetIdleSSEBytes)
	memRow("≤ 8 KB per idle MQTT device (one subscription)", transportMQTTTCP, targetIdleDeviceBytes)

	// 100,000 devices: judged at the most devices measured, said so when
	// that is fewer.
	const what = "100,000 idle devices on one hub within 64 KB of RSS each, connecting at ≥ 5,000/s"
	if devs := idleOf(transportMQTTTCP); len(devs) == 0 {
		row(what, "not measured", "—")
	} else {
		c := devs[len(devs)-1] // sorted by count
		m, rate := c.Runs.of(memPerConn), c.Runs.of(connectRate)
		ok := m.Median <= targetDeviceRSSBytes && rate.Median >= targetConnectRate
		measured := fmt.Sprintf("%s devices: %s each, connecting at %s", count(c.Subs), kb(m.Median),
			withRange(rate, func(v float64) string { return si(v) + "/s" }))
		v := verdict(ok)
		if c.Subs < targetDevices {
			measured += fmt.Sprintf("; %s not measured", count(targetDevices))
			v += " at " + count(c.Subs)
		}
		row(what, measured, v)
	}

	for _, mt := range manyTargets {
		what := fmt.Sprintf("%s WS subscribers × %s msg/s: ≥ 99.9 %% delivered, p99 < %s", count(mt.subs), si(mt.rate), mt.p99Text)
		c := findCell(cells, cellKey{seriesKey{"pinned", "motehub", transportWS, mt.subs}, float64(mt.subs) * mt.rate, false})
		if c == nil || c.Skipped {
			row(what, "not measured", "—")
			continue
		}
		ratio, p99 := c.of(ratioOf), c.of(p99Of)
		row(what, fmt.Sprintf("%s delivered, p99 %s ms", withRange(ratio, pct), withRange(p99, ms)),
			verdict(ratio.Median >= targetManyRatio && p99.Median < mt.p99Max))
	}

	series := ingestSeriesOf(ingest)
	for _, it := range []struct {
		data bool
		min  float64
	}{{false, targetIngestPlain}, {true, targetIngestData}} {
		what := fmt.Sprintf("ingest, 2,000 devices → 10 dashboards, sustained ≥ %s msg/s", si(it.min))
		if it.data {
			what += " with --data"
		}
		i := slices.IndexFunc(series, func(s ingestSeries) bool {
			return s.Target == "motehub" && s.Variant == "pinned" && s.Data == it.data && !s.History && s.Overflow == "" &&
				s.Transport == transportWS && s.Devices == 2000 && s.Dashboard == 10
		})
		if i < 0 {
			row(what, "not measured", "—")
			continue
		}
		best, next := highestSustained(ingest, series[i])
		switch {
		case best == nil:
			row(what, "none of the rates tried", verdict(false))
		case next == nil && best.Key.Rate < it.min:
			row(what, fmt.Sprintf("%s msg/s, the highest rate tried", si(best.Key.Rate)), "**unknown**")
		default:
			row(what, si(best.Key.Rate)+" msg/s", verdict(best.Key.Rate >= it.min))
		}
	}
}
