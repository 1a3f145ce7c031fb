package bridge

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/cputime"
)

// BenchmarkDeviceModelIngest is the model worker's share of hubbench
// ingest: 2,000 plain JSON devices on bench/dev<i>/data, each message
// {"s":SEQ,"t":SENDNS,"p":"xxx…"} of 100 bytes, taken by the worker 256
// records at a time (process: ApplyAll, then publish of each device
// changed), with no follower. One op is one record; cpu-ns/record is the
// process's CPU time, the garbage collector's included:
//
//	go test ./bridge -run '^$' -bench BenchmarkDeviceModelIngest -cpu 1 -count 8
func BenchmarkDeviceModelIngest(b *testing.B) {
	const devices, rounds, batch = 2000, 8, 256
	h := newTestHub(b, Config{})
	dm := h.devices // its worker waits for a record Observe never gets: process runs here alone
	start := time.Now()
	records := make([]Record, 0, devices*rounds)
	for seq := range devices * rounds {
		at := start.Add(time.Duration(seq) * 25 * time.Microsecond)
		head := fmt.Sprintf(`{"s":%d,"t":%d,"p":"`, seq, at.UnixNano())
		payload, text := payloadToJSON([]byte(head + strings.Repeat("x", 100-len(head)-2) + `"}`))
		records = append(records, Record{Topic: fmt.Sprintf("bench/dev%d/data", seq%devices), Payload: payload, Text: text, Time: at})
	}
	seq := uint64(0)
	take := func(n int) []Record { // the next n records, with new sequence numbers
		out := make([]Record, n)
		for i := range out {
			seq++
			out[i] = records[int(seq)%len(records)]
			out[i].Seq = seq
		}
		return out
	}
	dm.process(take(devices), false) // every device known
	batches := make([][]Record, 0, b.N/batch+1)
	for i := 0; i < b.N; i += batch {
		batches = append(batches, take(min(batch, b.N-i)))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu := cputime.Process(b)
	b.ResetTimer()
	for _, x := range batches {
		dm.process(x, false)
	}
	b.StopTimer()
	cpu = cputime.Process(b) - cpu
	runtime.ReadMemStats(&after)
	if len(dm.known) != devices {
		b.Fatalf("%d devices known, want %d", len(dm.known), devices)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/record")
}
