package devices

import (
	"fmt"
	"testing"
)

// siblingTopics is n plain JSON topics under one prefix, many/0 … many/<n-1>,
// each with a number: one heuristic device, json:many, of n topics.
func siblingTopics(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprintf("many/%d", i), fmt.Sprint(i))
	}
	return msgs
}

// BenchmarkSiblingTopics feeds 10,000 sibling topics to a new model, with
// Apply one message at a time and with ApplyAll in chunks of 256 as the
// bridge's worker does, and reports the time per message:
//
//	go test ./devices -run '^$' -bench BenchmarkSiblingTopics -benchtime 3x
func BenchmarkSiblingTopics(b *testing.B) {
	const siblings, chunk = 10_000, 256
	msgs := siblingTopics(siblings)
	for _, batched := range []bool{false, true} {
		name := "Apply"
		if batched {
			name = "ApplyAll"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := New(Config{})
				if batched {
					for start := 0; start < len(msgs); start += chunk {
						m.ApplyAll(msgs[start:min(len(msgs), start+chunk)])
					}
				} else {
					for _, x := range msgs {
						m.Apply(x)
					}
				}
				if d, ok := m.Device("json:many"); !ok || len(d.Entities) != DefaultMaxEntities {
					b.Fatalf("json:many has %d entities, want %d", len(d.Entities), DefaultMaxEntities)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*siblings), "ns/msg")
		})
	}
}
