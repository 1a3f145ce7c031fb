package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1}, 10},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("median modified its input: %v", c.in)
			}
		}
	}
	if s := spreadOf([]float64{3, 9, 1}); s != (spread{Median: 3, Min: 1, Max: 9, N: 3}) {
		t.Errorf("spreadOf = %+v", s)
	}
}

// run makes a result for one repeat of a cell.
func run(transport string, subs int, offered, ratio float64, p99us int64) result {
	target := "motehub"
	switch transport {
	case transportMQTTWS:
		target = "mosquitto"
	case transportCentWS:
		target = "centrifugo"
	case transportNATSWS:
		target = "nats"
	}
	return result{Kind: "run", Variant: "pinned", Target: target, Transport: transport, Subscribers: subs,
		Offered: offered, Rate: offered / float64(subs), DeliveryRatio: ratio, DeliveredPerSec: offered * ratio,
		LatencyUs: latencySummary{Count: 100, P50: p99us / 4, P99: p99us}}
}

func TestKnee(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		runs  []result
		want  float64
		atTop bool
	}{
		{"keeps up everywhere", []result{
			run("ws", 100, 10e3, 1, 1000), run("ws", 100, 50e3, 1, 2000), run("ws", 100, 100e3, 0.9995, 3000),
		}, 100e3, true},
		{"loses messages past 50k", []result{
			run("ws", 100, 10e3, 1, 1000), run("ws", 100, 50e3, 1, 2000), run("ws", 100, 100e3, 0.99, 3000),
		}, 50e3, false},
		{"p99 too high at 50k", []result{
			run("ws", 100, 10e3, 1, 1000), run("ws", 100, 50e3, 1, 100_000),
		}, 10e3, false},
		{"median over repeats: one bad repeat of three passes", []result{
			run("ws", 100, 10e3, 1, 1000), run("ws", 100, 10e3, 0.5, 1000), run("ws", 100, 10e3, 1, 1000),
		}, 10e3, true},
		{"median over repeats: two bad repeats of three fail", []result{
			run("ws", 100, 10e3, 0.5, 1000), run("ws", 100, 10e3, 0.5, 1000), run("ws", 100, 10e3, 1, 1000),
		}, 0, false},
		{"a failed run counts as nothing delivered", []result{
			func() result { r := run("ws", 100, 10e3, 1, 1000); r.Error = "boom"; return r }(),
		}, 0, false},
		{"the probe is not a load", []result{
			func() result { r := run("ws", 100, 1e3, 1, 1000); r.Probe = true; return r }(), run("ws", 100, 10e3, 0.1, 1000),
		}, 0, false},
	}
	for _, c := range cases {
		k := findKnee(groupCells(c.runs))
		if k.Offered != c.want || k.AtTop != c.atTop {
			t.Errorf("%s: knee %+v, want %v (at top %v)", c.name, k, c.want, c.atTop)
		}
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	var rs results
	rs.Metas = []meta{{Kind: "meta", Date: "2026-01-01T00:00:00Z", Nproc: 2, CPU: "test CPU", Go: "go1.26", Mosquitto: "2.0.11", Mode: "full"}}
	for _, load := range []float64{100e3, 200e3, 400e3} {
		for range 3 {
			rs.Runs = append(rs.Runs, run("ws", 1000, load, 1, 4000), run("mqtt-ws", 1000, load, map[bool]float64{true: 1, false: 0.5}[load < 400e3], 9000))
		}
	}
	rs.Skips = []skipped{{Kind: "skip", Variant: "pinned", Target: "mosquitto", Transport: "mqtt-ws", Subs: 5000, Offered: 400e3, Reason: "saturated"}}
	var b bytes.Buffer
	writeReport(&b, reportInput{Results: rs, ResultsPath: "bench/results/x.jsonl", Command: "make bench"})
	out := b.String()
	for _, want := range []string{
		"| pinned | 1000 | ≥ 400k (≥ 400k) | not run | not run | 200k (200k) | not run | not run | — | — | 2.00× |",
		"Judged on the knee: motehub ≥ 400k, Mosquitto 200k, 2.00× | **met** |",
		"| nproc | 2 |",
		"knee of fan-out to 1,000 WS subscribers",
		"| p99 ≤ 5 ms at 100k deliveries/s (WS) | 1000 subs: 4.00 ms | **met** |",
		"### pinned, 1000 subscribers, 400k deliveries/s offered (400 msg/s)",
		"| Mosquitto WS | 200k | 50.00 % |",
		"| pinned | 5000 | Mosquitto WS | 400k | saturated |",
		"make bench",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

func TestDirtyCells(t *testing.T) {
	t.Parallel()
	busy := func(r result, foreign float64) result { r.ForeignCores = foreign; return r }
	cells := groupCells([]result{
		busy(run("ws", 100, 10e3, 1, 1000), 0), busy(run("ws", 100, 10e3, 1, 1000), 1.2), busy(run("ws", 100, 10e3, 1, 1000), 0.1),
		busy(run("ws", 100, 50e3, 1, 1000), 0.9), busy(run("ws", 100, 50e3, 1, 1000), 1.0), busy(run("ws", 100, 50e3, 0.5, 1000), 0),
	})
	if len(cells) != 2 || cells[0].Dirty || !cells[1].Dirty {
		t.Fatalf("dirty: %v %v, want the second cell only (its median run competed)", cells[0].Dirty, cells[1].Dirty)
	}
	k := findKnee(cells)
	if !k.Dirty || k.Offered != 50e3 || k.Full != 50e3 {
		t.Errorf("knee %+v, want 50k, full 50k, dirty", k)
	}
	if got := kneeText(k); got != "≥ 50k §" {
		t.Errorf("kneeText = %q", got)
	}
}

func TestParsePerfReport(t *testing.T) {
	t.Parallel()
	in := `# Samples: 4K of event 'cpu-clock'
# Event count (approx.): 1
#
# Overhead  Symbol
    12.85%  [k] _raw_spin_unlock_irqrestore                 -      -
     2.73%  [.] github.com/gorilla/websocket.(*Conn).write  -      -

    99.24%     0.00%  [.] runtime.goexit.abi0               -      -
`
	got, title := parsePerfReport(strings.NewReader(in), 10)
	want := []profileEntry{
		{12.85, "(kernel) _raw_spin_unlock_irqrestore"},
		{2.73, "github.com/gorilla/websocket.(*Conn).write"},
		{99.24, "runtime.goexit.abi0"},
	}
	if len(got) != len(want) || title != "Samples: 4K of event 'cpu-clock'" {
		t.Fatalf("parsePerfReport = %+v, %q", got, title)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A series that run.sh stopped (skipped the loads above its saturation) has
// no "≥": its highest load is the highest skipped one.
func TestKneeWithSkips(t *testing.T) {
	t.Parallel()
	cells := groupCells([]result{run("ws", 100, 10e3, 1, 1000), run("ws", 100, 50e3, 0.5, 1000)})
	cells = addSkipped(cells, []skipped{{Variant: "pinned", Target: "motehub", Transport: "ws", Subs: 100, Offered: 100e3}})
	k := findKnee(cells)
	if k.Offered != 10e3 || k.AtTop || k.Highest != 100e3 || k.Tested != 3 {
		t.Errorf("knee %+v, want 10k, not at the top", k)
	}
	cells = addSkipped(groupCells([]result{run("ws", 100, 10e3, 1, 1000)}),
		[]skipped{{Variant: "pinned", Target: "motehub", Transport: "ws", Subs: 100, Offered: 50e3}})
	if k := findKnee(cells); k.Full != 10e3 || k.Full == k.Highest {
		t.Errorf("knee %+v: the load delivered in full is not the highest", k)
	}
}

// A cell measured again in a later session shows only the later runs.
func TestLatestSession(t *testing.T) {
	t.Parallel()
	old1, old2, fresh := run("ws", 100, 10e3, 0.5, 1000), run("ws", 100, 10e3, 0.5, 1000), run("ws", 100, 10e3, 1, 1000)
	fresh.Session = 1
	other := run("ws", 100, 50e3, 1, 1000) // measured only in session 0
	cells := groupCells([]result{old1, fresh, old2, other})
	if len(cells) != 2 || len(cells[0].Runs) != 1 || cells[0].Runs[0].Session != 1 || len(cells[1].Runs) != 1 {
		t.Fatalf("cells %+v", cells)
	}
	if k := findKnee(cells); k.Offered != 50e3 {
		t.Errorf("knee %+v, want 50k", k)
	}
}

// When Mosquitto fails the lowest load tested, its knee is below that load
// and the comparison is with it: a lower bound on the ratio.
func TestTargetsWhenMosquittoHasNoKnee(t *testing.T) {
	t.Parallel()
	var runs []result
	for _, load := range []float64{100e3, 400e3, 800e3} {
		runs = append(runs, run("ws", 1000, load, 1, 40_000), run("mqtt-ws", 1000, load, 0.9, 3_000_000))
	}
	var b bytes.Buffer
	writeTargets(&b, groupCells(runs), nil, nil)
	want := "knee: motehub ≥ 800k, Mosquitto < 100k (it failed the lowest load tested), more than 8.00× | **met** |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("targets lack %q:\n%s", want, b.String())
	}
}

// TestPublisherBehindCountsAsLost: messages the publisher was due to send
// and could not are not delivered, whatever the subscribers saw of the rest.
func TestPublisherBehindCountsAsLost(t *testing.T) {
	t.Parallel()
	r := run(transportCentWS, 100, 400000, 1, 1000)
	r.Published, r.PublisherBehind = 600, 400
	if got := ratioOf(r); got != 0.6 {
		t.Errorf("ratioOf = %v, want 0.6", got)
	}
	c := &cell{Runs: []result{r}}
	if c.passes() {
		t.Error("a cell whose publisher fell 40 % behind passes the knee")
	}
	if note := errorNote(c); !strings.Contains(note, "behind by up to 400") {
		t.Errorf("errorNote = %q", note)
	}
}
