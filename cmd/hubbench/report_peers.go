package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// The report's side-by-side view: motehub and its peers (Centrifugo, NATS
// server, Mosquitto) on the runs of issue 19 — idle memory per client, many
// subscribers at a few messages a second, the knee, device ingest — with
// motehub's ratio to each peer.

// reportTargets are the targets in the order the report shows them.
var reportTargets = []struct{ Target, Label string }{
	{"motehub", "motehub"},
	{"centrifugo", "Centrifugo"},
	{"nats", "NATS"},
	{"mosquitto", "Mosquitto"},
}

func targetLabel(target string) string {
	for _, t := range reportTargets {
		if t.Target == target {
			return t.Label
		}
	}
	return target
}

// browserTransport is how each target's browser clients connect: the
// WebSocket transport compared across targets.
var browserTransport = map[string]string{
	"motehub":    transportWS,
	"centrifugo": transportCentWS,
	"nats":       transportNATSWS,
	"mosquitto":  transportMQTTWS,
}

// idleCell is the idle runs of one target and transport at one count.
type idleCell struct {
	Target, Transport string
	Subs              int
	Runs              cell // Runs only; the key is unused
}

// groupIdle groups idle runs by target, transport and count, keeping each
// group's latest session.
func groupIdle(runs []result) []*idleCell {
	var out []*idleCell
	for _, r := range runs {
		i := slices.IndexFunc(out, func(c *idleCell) bool {
			return c.Target == r.Target && c.Transport == r.Transport && c.Subs == r.Subscribers
		})
		if i < 0 {
			out = append(out, &idleCell{Target: r.Target, Transport: r.Transport, Subs: r.Subscribers})
			i = len(out) - 1
		}
		out[i].Runs.Runs = append(out[i].Runs.Runs, r)
	}
	for _, c := range out {
		c.Runs.latestSession()
	}
	slices.SortStableFunc(out, func(a, b *idleCell) int {
		if a.Transport != b.Transport {
			return strings.Compare(idleTransportOrder(a.Transport), idleTransportOrder(b.Transport))
		}
		if a.Subs != b.Subs {
			return a.Subs - b.Subs
		}
		return targetOrder(a.Target) - targetOrder(b.Target)
	})
	return out
}

// idleTransportOrder sorts WebSocket first, then SSE, then MQTT/TCP.
func idleTransportOrder(t string) string {
	switch t {
	case transportSSE:
		return "2"
	case transportMQTTTCP:
		return "3"
	}
	return "1"
}

func targetOrder(target string) int {
	return slices.IndexFunc(reportTargets, func(t struct{ Target, Label string }) bool { return t.Target == target })
}

func findIdle(cells []*idleCell, target, transport string, n int) *idleCell {
	for _, c := range cells {
		if c.Target == target && c.Transport == transport && c.Subs == n {
			return c
		}
	}
	return nil
}

func memPerConn(r result) float64 { return r.MemPerConnBytes }

// connectRate is connections per second while connecting.
func connectRate(r result) float64 {
	if r.ConnectSeconds <= 0 {
		return 0
	}
	return float64(r.Connected) / r.ConnectSeconds
}

// idleKind names what an idle transport's clients are.
func idleKind(transport string) string {
	switch transport {
	case transportSSE:
		return "SSE stream"
	case transportMQTTTCP:
		return "MQTT device on TCP, one subscription"
	}
	return "WebSocket client"
}

// sideRow is one row of the side-by-side table: a text per target and the
// number motehub's ratio to each peer is taken of (0: none).
type sideRow struct {
	What  string
	Text  map[string]string
	Value map[string]float64
}

// writeSideBySide writes the headline table and the idle memory table.
func writeSideBySide(w io.Writer, idle []*idleCell, cells []*cell, ingest []*ingestCell) {
	var rows []sideRow
	// Idle memory, one row per kind of client and count.
	type group struct {
		transport string
		n         int
	}
	var groups []group
	for _, c := range idle {
		g := group{c.Transport, c.Subs}
		if c.Transport == transportMQTTWS || c.Transport == transportCentWS || c.Transport == transportNATSWS {
			g.transport = transportWS
		}
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		row := sideRow{What: fmt.Sprintf("memory per idle %s (%s)", idleKind(g.transport), count(g.n)), Text: map[string]string{}, Value: map[string]float64{}}
		for _, t := range reportTargets {
			tr := g.transport
			if tr == transportWS {
				tr = browserTransport[t.Target]
			}
			c := findIdle(idle, t.Target, tr, g.n)
			if c == nil {
				continue
			}
			m := c.Runs.of(memPerConn)
			row.Text[t.Target] = withRange(m, kb)
			if g.transport == transportMQTTTCP {
				row.Text[t.Target] += ", connects " + withRange(c.Runs.of(connectRate), func(v float64) string { return si(v) + "/s" })
			}
			if failed := c.Runs.of(func(r result) float64 { return float64(r.ConnectFailed) }); failed.Max > 0 {
				row.Text[t.Target] += fmt.Sprintf(" (%s failed to connect)", withRange(failed, func(v float64) string { return fmt.Sprintf("%.0f", v) }))
			}
			row.Value[t.Target] = m.Median
		}
		rows = append(rows, row)
	}
	// The knee per subscriber count (pinned), from the matrix.
	for _, n := range subCounts(cells, "pinned") {
		row := sideRow{What: fmt.Sprintf("knee, %s WS subscribers (≥ 99.9 %% delivered, p99 < 100 ms)", count(n)), Text: map[string]string{}, Value: map[string]float64{}}
		for _, t := range reportTargets {
			k := findKnee(seriesCells(cells, seriesKey{"pinned", t.Target, browserTransport[t.Target], n}))
			if k.Tested < 2 {
				continue // a single load is no sweep: shown below as a cell
			}
			row.Text[t.Target] = kneeText(k)
			row.Value[t.Target] = k.Offered
		}
		if len(row.Text) > 0 {
			rows = append(rows, row)
		}
	}
	// The many-clients cells (more subscribers than the matrix has), and
	// the 1,000 × 400 msg/s cell.
	var seen []cellKey
	for _, c := range cells {
		k := c.Key
		if k.Probe || browserTransport[k.Target] != k.Transport {
			continue
		}
		k.Target, k.Transport = "", ""
		if slices.Contains(seen, k) {
			continue // a row per cell, whichever targets ran it
		}
		seen = append(seen, k)
		rate := k.Offered / float64(k.Subs)
		if k.Subs <= matrixMaxSubs && !(k.Subs == 1000 && k.Offered == 400_000 && k.Variant == "pinned") {
			continue
		}
		row := sideRow{What: fmt.Sprintf("%s WS subscribers × %s msg/s (%s): delivered, p50 / p99 ms", count(k.Subs), si(rate), k.Variant),
			Text: map[string]string{}, Value: map[string]float64{}}
		for _, t := range reportTargets {
			pk := k
			pk.Target, pk.Transport = t.Target, browserTransport[t.Target]
			pc := findCell(cells, pk)
			switch {
			case pc == nil:
				continue
			case pc.Skipped:
				row.Text[t.Target] = "not run (see Cells not run)"
				continue
			}
			row.Text[t.Target] = fmt.Sprintf("%s, %s / %s", withRange(pc.of(ratioOf), pct),
				withRange(pc.of(func(r result) float64 { return float64(r.LatencyUs.P50) }), ms), withRange(pc.of(p99Of), ms))
			row.Value[t.Target] = pc.of(func(r result) float64 { return r.DeliveredPerSec }).Median
		}
		rows = append(rows, row)
	}
	// Ingest: the highest sustained rate per target, plain (no --data, no overflow option).
	byDevices := map[int]bool{}
	for _, c := range ingest {
		byDevices[c.Key.Devices] = true
	}
	for _, s := range ingestSeriesOf(ingest) {
		if s.Data || s.Overflow != "" || s.Target != "motehub" || !byDevices[s.Devices] {
			continue
		}
		delete(byDevices, s.Devices)
		row := sideRow{What: fmt.Sprintf("ingest, %s devices → %d dashboards: highest sustained (≥ 99.9 %%, p99 < 1 s)", count(s.Devices), s.Dashboard),
			Text: map[string]string{}, Value: map[string]float64{}}
		for _, ps := range ingestSeriesOf(ingest) {
			if ps.Data || ps.Overflow != "" || ps.Devices != s.Devices || ps.Variant != s.Variant {
				continue
			}
			best, _ := highestSustained(ingest, ps)
			if best == nil {
				row.Text[ps.Target] = "none of the rates tried"
				continue
			}
			row.Text[ps.Target] = si(best.Key.Rate) + " msg/s"
			row.Value[ps.Target] = best.Key.Rate
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "## Side by side: motehub and its peers\n\n")
	fmt.Fprintf(w, "Medians over repeats, min–max in brackets; every target started fresh for each run, the WebSocket clients of each as a browser library speaks to it (motehub Clown.Talk, Centrifugo's JSON protocol, NATS's text protocol, MQTT 3.1.1 for Mosquitto). Ratios are motehub's figure over the peer's: for memory lower is better, for the rest higher is.\n\n")
	fmt.Fprintf(w, "| run |")
	for _, t := range reportTargets {
		fmt.Fprintf(w, " %s |", t.Label)
	}
	for _, t := range reportTargets[1:] {
		fmt.Fprintf(w, " motehub / %s |", t.Label)
	}
	fmt.Fprintf(w, "\n|---|")
	for range len(reportTargets)*2 - 1 {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |", r.What)
		for _, t := range reportTargets {
			text, ok := r.Text[t.Target]
			if !ok {
				text = "—"
			}
			fmt.Fprintf(w, " %s |", text)
		}
		for _, t := range reportTargets[1:] {
			fmt.Fprintf(w, " %s |", ratioText(r.Value["motehub"], r.Value[t.Target]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	writeIdle(w, idle)
}

// writeIdle gives every idle run group in full.
func writeIdle(w io.Writer, idle []*idleCell) {
	if len(idle) == 0 {
		return
	}
	fmt.Fprintf(w, "### Memory per idle client\n\n")
	fmt.Fprintf(w, "Clients connect (64 at a time), subscribe, and stay idle; nothing is published. (RSS with N idle clients − RSS with none) / N; the Go targets' live heap after their last GC (GODEBUG=gctrace=1, MB; ? when none had run).\n\n")
	fmt.Fprintf(w, "| clients | target | per client | RSS none → N idle | Go heap none → N idle | connect time (s) | connects/s | connect p99 (ms) | failed | runs |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range idle {
		r := &c.Runs
		heap := "—"
		if hi := r.of(func(r result) float64 { return float64(r.HeapIdleMB) }); hi.Median >= 0 {
			mb := func(v float64) string {
				if v < 0 {
					return "?"
				}
				return fmt.Sprintf("%.0f", v)
			}
			heap = mb(r.of(func(r result) float64 { return float64(r.HeapNoneMB) }).Median) + " → " + mb(hi.Median)
		}
		f2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		fmt.Fprintf(w, "| %s %s | %s | %s | %.0f → %.0f MB | %s | %s | %s | %s | %s | %d%s |\n", count(c.Subs), idleKind(c.Transport), targetLabel(c.Target),
			withRange(r.of(memPerConn), kb),
			r.of(func(r result) float64 { return float64(r.RSSNoneKB) }).Median/1024,
			r.of(func(r result) float64 { return float64(r.RSSIdleKB) }).Median/1024,
			heap,
			withRange(r.of(func(r result) float64 { return r.ConnectSeconds }), f2),
			withRange(r.of(connectRate), si),
			withRange(r.of(func(r result) float64 { return r.ConnectP99Ms }), func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			withRange(r.of(func(r result) float64 { return float64(r.ConnectFailed) }), func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			len(r.Runs), errorNote(r))
	}
	fmt.Fprintln(w)
}

// count formats a number of clients with a thousands separator: 19,500.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
