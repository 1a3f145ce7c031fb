package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestScaleTargets: each scale target judged from its runs, the 100,000
// devices at the most devices measured, and said so.
func TestScaleTargets(t *testing.T) {
	t.Parallel()
	var idle, load []result
	var ingest []ingestRecord
	for range 3 {
		slow := idleRun("motehub", transportMQTTTCP, 19500, 7*1024, 0)
		slow.ConnectSeconds *= 2 // 2.5k/s
		idle = append(idle,
			idleRun("motehub", transportSSE, 5000, 11*1024, 0),
			idleRun("motehub", transportMQTTTCP, 2000, 7.5*1024, 0),
			slow,
			idleRun("mosquitto", transportMQTTTCP, 30000, 1024, 0)) // a peer's: no part of the targets
		load = append(load, run(transportWS, 19000, 95000, 1, 300_000), run(transportWS, 10000, 100000, 1, 600_000))
		for _, rate := range []float64{40000, 50000} {
			for _, data := range []bool{false, true} {
				ingest = append(ingest, ingestRecord{ingestResult{Kind: "ingest", Target: "motehub", Variant: "pinned", Transport: transportWS,
					Devices: 2000, Dashboard: 10, Data: data, Rate: rate, Sustained: !data || rate == 40000, DeliveryRatio: 1}, 0})
			}
		}
	}
	var b bytes.Buffer
	writeScaleTargets(&b, groupCells(load), groupIdle(idle), groupIngest(ingest))
	out := b.String()
	for _, want := range []string{
		"| ≤ 10 KB per idle SSE stream | 5,000 idle: 11.0 KB | **not met** |",
		"| ≤ 8 KB per idle MQTT device (one subscription) | 2,000 idle: 7.5 KB; 19,500 idle: 7.0 KB | **met** |",
		"| 100,000 idle devices on one hub within 64 KB of RSS each, connecting at ≥ 5,000/s | 19,500 devices: 7.0 KB each, connecting at 2.5k/s; 100,000 not measured | **not met** at 19,500 |",
		"| 19,000 WS subscribers × 5 msg/s: ≥ 99.9 % delivered, p99 < 1 s | 100.00 % delivered, p99 300 ms | **met** |",
		"| 10,000 WS subscribers × 10 msg/s: ≥ 99.9 % delivered, p99 < 500 ms | 100.00 % delivered, p99 600 ms | **not met** |",
		"| ingest, 2,000 devices → 10 dashboards, sustained ≥ 50k msg/s | 50k msg/s | **met** |",
		"| ingest, 2,000 devices → 10 dashboards, sustained ≥ 40k msg/s with --data | 40k msg/s | **met** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("targets lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("targets:\n%s", out)
	}

	// Nothing measured: every row says so, none is judged.
	b.Reset()
	writeScaleTargets(&b, nil, nil, nil)
	if strings.Contains(b.String(), "**") {
		t.Errorf("rows judged without runs:\n%s", b.String())
	}
}
