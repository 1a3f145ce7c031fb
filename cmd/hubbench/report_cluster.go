package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The report's section on runs of several target processes (result.Layout
// set): hub replicas behind a broker cluster, each layout beside the others
// at the same subscribers and rate, with every process's CPU.

// clusterKey is one point: a layout, a subscriber count and a rate.
type clusterKey struct {
	Layout string
	Subs   int
	Rate   float64
}

// clusterCell is the repeats of one point (the latest session's).
type clusterCell struct {
	Key clusterKey
	cell
}

// groupCluster groups the runs that have a layout, by subscribers, rate
// and layout.
func groupCluster(runs []result) []*clusterCell {
	byKey := map[clusterKey]*clusterCell{}
	var cells []*clusterCell
	for _, r := range runs {
		if r.Layout == "" {
			continue
		}
		k := clusterKey{r.Layout, r.Subscribers, r.Rate}
		c := byKey[k]
		if c == nil {
			c = &clusterCell{Key: k}
			byKey[k] = c
			cells = append(cells, c)
		}
		c.Runs = append(c.Runs, r)
	}
	for _, c := range cells {
		c.latestSession()
		c.finish()
	}
	slices.SortStableFunc(cells, func(a, b *clusterCell) int {
		return cmp.Or(cmp.Compare(a.Key.Subs, b.Key.Subs), cmp.Compare(a.Key.Rate, b.Key.Rate), cmp.Compare(a.Key.Layout, b.Key.Layout))
	})
	return cells
}

// procLabels are the labels of the processes of the cells' runs: grouped
// (procGroup) in the order the groups were first given, sorted within a
// group (hub1 hub2 nats0 nats1 nats2, whichever layout came first).
func procLabels(cells []*clusterCell) []string {
	var out, groups []string
	for _, c := range cells {
		for _, r := range c.Runs {
			for _, p := range r.Procs {
				if !slices.Contains(out, p.Label) {
					out = append(out, p.Label)
				}
				if g := procGroup(p.Label); !slices.Contains(groups, g) {
					groups = append(groups, g)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(slices.Index(groups, procGroup(a)), slices.Index(groups, procGroup(b))),
			cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
	})
	return out
}

// procGroup is a label without its trailing digits: hub1 and hub2 are
// "hub", nats0..2 "nats".
func procGroup(label string) string {
	g := strings.TrimRight(label, "0123456789")
	if g == "" {
		return label
	}
	return g
}

// procGroups are the groups of labels, in order, with more than one member
// (a group of one is its process's own column already).
func procGroups(labels []string) []string {
	var out []string
	for _, l := range labels {
		g := procGroup(l)
		n := 0
		for _, m := range labels {
			if procGroup(m) == g {
				n++
			}
		}
		if n > 1 && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// procCPU is the CPU seconds of a run's processes whose label is in keep.
func procCPU(r result, keep func(label string) bool) (secs float64, found bool) {
	for _, p := range r.Procs {
		if keep(p.Label) {
			secs += p.CPUSeconds
			found = true
		}
	}
	return secs, found
}

// procShareText is "share of a core (µs per delivery)" for the processes
// keep selects: medians over the cell's runs, the share's range too.
func procShareText(c *clusterCell, keep func(label string) bool) string {
	var cores, us []float64
	for _, r := range c.Runs {
		secs, ok := procCPU(r, keep)
		if !ok || r.MeasureS <= 0 {
			continue
		}
		cores = append(cores, secs/r.MeasureS)
		if r.Delivered > 0 {
			us = append(us, secs*1e6/float64(r.Delivered))
		}
	}
	if len(cores) == 0 {
		return "—"
	}
	text := withRange(spreadOf(cores), func(v float64) string { return fmt.Sprintf("%.0f %%", v*100) })
	if len(us) > 0 {
		text += fmt.Sprintf(" · %.2f µs", median(us))
	}
	return text
}

func writeCluster(w io.Writer, cells []*clusterCell, resultsPath string) {
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(w, "## Replicas behind a NATS cluster\n\n")
	fmt.Fprintf(w, "Hub replicas built from this tree in front of a three-node NATS cluster (nats-server from bench/peers.sh: cluster routes, JetStream, the MQTT gateway, all on loopback; a fresh cluster for each run), against the same with one replica. ")
	fmt.Fprintf(w, "Replica 1 has `--upstream` on node 0, replica 2 on node 1 (one URL each, so that the layout is the same in every run: given all three, a replica starts on a node drawn at random), the publisher (MQTT 3.1.1, QoS 0, 100-byte payloads on `bench/t`) is on node 2; the WebSocket subscribers (Clown.Talk on `bench/#`) are spread round-robin over the replicas. ")
	fmt.Fprintf(w, "Nothing is pinned: every process shares the machine's cores with the load generator. Every process's CPU is counted in the target's (the cores and CPU per delivery below), so \"others' cores\" is only what other programs on the machine took. ")
	fmt.Fprintf(w, "Results: `%s`; run them with `BENCH_RUNS=cluster make bench` (bench/cluster.sh; `BENCH_QUICK=1` for a short one).\n\n", resultsPath)
	fmt.Fprintf(w, "| layout | subscribers | msg/s | delivered | delivered/s | p50 | p99 | all processes' cores | CPU µs per delivery | loadgen cores | others' cores | dropped conns | runs |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	two := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	for _, c := range cells {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%s |\n", c.Key.Layout, c.Key.Subs, si(c.Key.Rate),
			withRange(c.of(ratioOf), pct),
			withRange(c.of(func(r result) float64 { return r.DeliveredPerSec }), si),
			withRange(c.of(func(r result) float64 { return float64(r.LatencyUs.P50) }), ms),
			withRange(c.of(p99Of), ms),
			withRange(c.of(func(r result) float64 { return r.TargetCPUCores }), two),
			withRange(c.of(func(r result) float64 { return r.CPUPerMDeliveries }), two),
			withRange(c.of(func(r result) float64 { return r.LoadgenCPUCores }), two),
			withRange(c.of(func(r result) float64 { return r.ForeignCores }), two),
			withRange(c.of(func(r result) float64 { return float64(r.Dropped) }), func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			runsText(&c.cell), errorNote(&c.cell))
	}
	labels := procLabels(cells)
	if len(labels) == 0 {
		fmt.Fprintln(w)
		return
	}
	groups := procGroups(labels)
	fmt.Fprintf(w, "\nEach process's CPU over the measured window: its share of one core (utime+stime per second, median and min–max) · its CPU µs per delivered message (median). ")
	fmt.Fprintf(w, "A process a layout does not have is —.\n\n| layout | msg/s |")
	for _, l := range labels {
		fmt.Fprintf(w, " %s |", l)
	}
	for _, g := range groups {
		fmt.Fprintf(w, " %s, total |", g)
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---|", len(labels)+len(groups)))
	for _, c := range cells {
		fmt.Fprintf(w, "| %s | %s |", c.Key.Layout, si(c.Key.Rate))
		for _, l := range labels {
			fmt.Fprintf(w, " %s |", procShareText(c, func(m string) bool { return m == l }))
		}
		for _, g := range groups {
			fmt.Fprintf(w, " %s |", procShareText(c, func(m string) bool { return procGroup(m) == g }))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}
