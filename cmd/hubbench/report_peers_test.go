package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// idleRun is one idle run of a target's transport.
func idleRun(target, transport string, n int, perConn float64, session int) result {
	return result{Kind: "run", Idle: true, Variant: "pinned", Target: target, Transport: transport, Subscribers: n,
		Connected: n, ConnectSeconds: float64(n) / 5000, MemPerConnBytes: perConn, HeapNoneMB: -1, HeapIdleMB: -1, Session: session}
}

// TestReportSideBySide: the four targets in one table, with idle memory,
// a many-clients cell, and ingest, and motehub's ratio to each peer.
func TestReportSideBySide(t *testing.T) {
	t.Parallel()
	var rs results
	rs.Metas = []meta{
		{Kind: "meta", Date: "2026-01-01T00:00:00Z", Mode: "full", Notes: "runs: idle many; targets: centrifugo nats mosquitto; load average at the start: 1.00 2.00 3.00; repeats 3"},
		{Kind: "meta", Date: "2026-01-02T00:00:00Z", Mode: "full", Notes: "runs: idle; targets: motehub; repeats 3"},
	}
	for _, c := range []struct {
		target, transport string
		kb                float64
	}{{"motehub", transportWS, 8}, {"centrifugo", transportCentWS, 48}, {"nats", transportNATSWS, 50}, {"mosquitto", transportMQTTWS, 6}} {
		for range 3 {
			rs.Runs = append(rs.Runs, idleRun(c.target, c.transport, 5000, c.kb*1024, 0))
		}
	}
	// motehub measured again in a later session: the latest counts.
	for range 3 {
		rs.Runs = append(rs.Runs, idleRun("motehub", transportWS, 5000, 4*1024, 1))
		rs.Runs = append(rs.Runs, idleRun("motehub", transportMQTTTCP, 2000, 8*1024, 1), idleRun("mosquitto", transportMQTTTCP, 2000, 1024, 1))
	}
	for _, tr := range []string{transportWS, transportCentWS, transportNATSWS, transportMQTTWS} {
		ratio := map[string]float64{transportWS: 1, transportCentWS: 0.8, transportNATSWS: 0.5, transportMQTTWS: 0.1}[tr]
		for range 3 {
			rs.Runs = append(rs.Runs, run(tr, 10000, 100000, ratio, 400000))
		}
	}
	for _, rate := range []float64{10000, 20000, 40000} {
		for rep := range 3 {
			rs.Ingests = append(rs.Ingests,
				ingestRecord{ingestResult{Kind: "ingest", Target: "motehub", Variant: "pinned", Transport: transportWS, Devices: 2000, Dashboard: 10,
					Rate: rate, Sustained: rate < 40000 || rep == 0, DeliveryRatio: 1}, 1},
				ingestRecord{ingestResult{Kind: "ingest", Target: "mosquitto", Variant: "pinned", Transport: transportMQTTWS, Devices: 2000, Dashboard: 10,
					Rate: rate, Sustained: rate <= 10000, DeliveryRatio: 0.5}, 0})
		}
	}
	var b bytes.Buffer
	writeReport(&b, reportInput{Results: rs, ResultsPath: "x.jsonl", Command: "make bench"})
	out := b.String()
	for _, want := range []string{
		"| run | motehub | Centrifugo | NATS | Mosquitto | motehub / Centrifugo | motehub / NATS | motehub / Mosquitto |",
		"| memory per idle WebSocket client (5,000) | 4.0 KB | 48.0 KB | 50.0 KB | 6.0 KB | 0.08× | 0.08× | 0.67× |",
		"| memory per idle MQTT device on TCP, one subscription (2,000) | 8.0 KB, connects 5k/s | — | — | 1.0 KB, connects 5k/s | — | — | 8.00× |",
		"| 10,000 WS subscribers × 10 msg/s (pinned): delivered, p50 / p99 ms | 100.00 %, 100 / 400 | 80.00 %, 100 / 400 | 50.00 %, 100 / 400 | 10.00 %, 100 / 400 | 1.25× | 2.00× | 10.00× |",
		"| ingest, 2,000 devices → 10 dashboards: highest sustained (≥ 99.9 %, p99 < 1 s) | 20k msg/s | — | — | 10k msg/s | — | — | 2.00× |",
		"| motehub | 2000 → 10 | pinned | 20k msg/s |",
		"| motehub | 40k | ",
		"| 1 of 3 | 3 |",
		"motehub WS / Centrifugo WS: delivered/s 1.25×",
		"2026-01-01T00:00:00Z (33 runs; runs: idle many; targets: centrifugo nats mosquitto; load average at the start: 1.00 2.00 3.00), 2026-01-02T00:00:00Z (18 runs; runs: idle; targets: motehub)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

// TestSustained: the sweep's question, answered from a results file.
func TestSustained(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := appendJSONLine(path, meta{Kind: "meta"}); err != nil {
		t.Fatal(err)
	}
	for rep := range 3 {
		for _, rate := range []float64{10000, 20000} {
			r := ingestResult{Kind: "ingest", Target: "motehub", Variant: "pinned", Transport: transportWS, Devices: 2000, Dashboard: 10,
				Rate: rate, Sustained: rate == 10000 || rep == 2}
			if err := appendJSONLine(path, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// History on, and without dashboards: series of their own.
	for range 3 {
		for _, r := range []ingestResult{
			{Kind: "ingest", Target: "motehub", Variant: "pinned", Transport: transportWS, Devices: 2000, Dashboard: 10,
				Data: true, History: true, Rate: 10000, Sustained: false},
			{Kind: "ingest", Target: "motehub", Variant: "pinned", Transport: transportWS, Devices: 2000, Dashboard: 0,
				Rate: 20000, Sustained: true},
		} {
			if err := appendJSONLine(path, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	ask := func(rate string, flags ...string) error {
		args := []string{"-in", path, "-target", "motehub", "-devices", "2000", "-rate", rate}
		return cmdSustained(append(args, flags...))
	}
	if err := ask("10000"); err != nil {
		t.Errorf("10k (3 of 3 sustained): %v", err)
	}
	if err := ask("20000", "-dashboards", "10"); err == nil {
		t.Error("20k (1 of 3 sustained) answered sustained")
	}
	if err := ask("20000", "-dashboards", "0"); err != nil {
		t.Errorf("20k without dashboards (3 of 3 sustained): %v", err)
	}
	if err := ask("10000", "-data"); err == nil {
		t.Error("a series never run (--data, no history) answered sustained")
	}
	if err := ask("10000", "-data", "-history"); err == nil {
		t.Error("10k with history (0 of 3 sustained) answered sustained")
	}
}

// TestSaturatedLatestSession: a cell measured again is judged on its
// latest session's runs, as the report shows it.
func TestSaturatedLatestSession(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "r.jsonl")
	write := func(v any) {
		t.Helper()
		if err := appendJSONLine(path, v); err != nil {
			t.Fatal(err)
		}
	}
	ask := func() error {
		return cmdSaturated([]string{"-in", path, "-target", "motehub", "-transport", transportWS, "-subs", "1000", "-offered", "400000"})
	}
	if err := ask(); err == nil {
		t.Error("an empty file answered saturated")
	}
	write(meta{Kind: "meta"})
	for range 3 {
		write(run(transportWS, 1000, 400000, 0.5, 3_000_000))
	}
	if err := ask(); err != nil {
		t.Errorf("three saturated runs: %v", err)
	}
	write(meta{Kind: "meta"})
	write(run(transportWS, 1000, 400000, 1, 40_000))
	if err := ask(); err == nil {
		t.Error("the later session kept up, yet the cell answered saturated")
	}
}
