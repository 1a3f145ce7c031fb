package main

import (
	"fmt"
	"testing"
	"time"
)

// What one message costs the load generator, per client type: these bound
// how many deliveries per second one core of hubbench can count.

func BenchmarkClownLine(b *testing.B) {
	line := fmt.Appendf(nil, `["bench/t",%s]`+"\n", appendBenchPayload(nil, 123456, time.Now().UnixNano(), 100))
	st := newTestState()
	st.seq = newSeqTracker(1 << 30)
	s := &clownSub{st: st}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		s.lines(line)
	}
}

func BenchmarkMQTTDecode(b *testing.B) {
	pk := appendPublish(nil, "bench/t", appendBenchPayload(nil, 123456, time.Now().UnixNano(), 100))
	st := newTestState()
	d := newMQTTDecoder(1 << 20)
	b.SetBytes(int64(len(pk)))
	b.ReportAllocs()
	for b.Loop() {
		d.Write(pk)
		p, ok, err := d.Next()
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		st.got(p.Payload)
	}
}

func BenchmarkSeqTracker(b *testing.B) {
	t := newSeqTracker(1 << 24)
	var s uint64
	for b.Loop() {
		s = s%(1<<24) + 1
		t.add(s)
	}
}
