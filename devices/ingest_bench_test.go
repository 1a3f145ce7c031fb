package devices

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/cputime"
)

// ingestRecords is what hubbench ingest sends: n plain JSON devices, each
// on its own topic bench/dev<i>/data, taking turns, rounds messages each,
// every payload {"s":SEQ,"t":SENDNS,"p":"xxx…"} of 100 bytes, a new value
// of the same keys each time, marked JSON as the hub's records are.
func ingestRecords(n, rounds int) []Message {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	out := make([]Message, 0, n*rounds)
	for r := range rounds {
		for i := range n {
			seq := r*n + i
			at := start.Add(time.Duration(seq) * 25 * time.Microsecond)
			head := fmt.Sprintf(`{"s":%d,"t":%d,"p":"`, seq, at.UnixNano())
			payload := head + strings.Repeat("x", 100-len(head)-2) + `"}`
			out = append(out, Message{Topic: fmt.Sprintf("bench/dev%d/data", i), Payload: []byte(payload), Time: at, JSON: true})
		}
	}
	return out
}

// BenchmarkPlainJSONIngest is the device model's share of hubbench ingest:
// 2,000 plain JSON devices known to the model, then their messages applied
// as the bridge's worker applies them, ApplyAll in chunks of 256, each
// followed by a copy of every device the chunk changed (what the worker
// sends to the followers). One op is one record; cpu-ns/record is the
// process's CPU time, the garbage collector's included:
//
//	go test ./devices -run '^$' -bench BenchmarkPlainJSONIngest -cpu 1 -count 8
func BenchmarkPlainJSONIngest(b *testing.B) {
	const devices, rounds, chunk = 2000, 8, 256
	msgs := ingestRecords(devices, rounds)
	m := New(Config{})
	m.ApplyAll(msgs[:devices]) // every device known
	for _, snapshot := range []bool{false, true} {
		name := "ApplyAll"
		if snapshot {
			name = "ApplyAll+Device"
		}
		b.Run(name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu := cputime.Process(b)
			next := 0
			for i := 0; i < b.N; i += chunk {
				n := min(chunk, b.N-i)
				if next+n > len(msgs) {
					next = 0
				}
				ch := m.ApplyAll(msgs[next : next+n])
				next += n
				if snapshot {
					for _, id := range ch.Updated {
						if _, ok := m.Device(id); !ok {
							b.Fatalf("device %s changed and not there", id)
						}
					}
				}
			}
			b.StopTimer()
			cpu = cputime.Process(b) - cpu
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/record")
		})
	}
}
