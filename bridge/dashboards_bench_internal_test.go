package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkDashboards: 10 WebSocket dashboards on "#", one flush shard,
// messages delivered one at a time at a steady rate (as from many devices
// during an ingest). It prints the shard's passes per message (each pass
// is one write per dashboard with something waiting): at 10,000 msg/s and
// above, a busy shard writes a few messages per pass, not one. The pacing
// spins, so ns/op is the interval and the process's CPU is not the hub's:
// the passes are the figure.
func BenchmarkDashboards(b *testing.B) {
	for _, rate := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchDashboards(b, rate) })
	}
}

func benchDashboards(b *testing.B, rate int) {
	const dashboards = 10
	h, addr := idleHub(b, Config{FlushShards: 1, MaxSessionsPerAddress: 2 * dashboards})
	var readers sync.WaitGroup
	b.Cleanup(readers.Wait) // once the connections are closed (cleanups run last first)
	for range dashboards {
		conn := dialRaw(b, addr, rawWSRequest)
		configureRaw(b, conn, `{"subscribe": ["#"]}`)
		readers.Go(func() { _, _ = io.Copy(io.Discard, conn) })
		b.Cleanup(func() { _ = conn.Close() })
	}
	sh := h.flush.shards[0]
	payload := bytes.Repeat([]byte("x"), 100)
	topics := make([]string, 2000)
	for i := range topics {
		topics[i] = "bench/dev" + strconv.Itoa(i) + "/data"
	}
	before, _ := passCounts(sh)
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for due := start.Add(time.Duration(i) * interval); time.Now().Before(due); {
		} // spin: a sleep this short would take a millisecond
		h.deliver(Message{Topic: topics[i%len(topics)], Payload: payload})
	}
	b.StopTimer()
	passes, _ := passCounts(sh)
	b.ReportMetric(float64(passes-before)/float64(b.N), "passes/msg")
	lat := h.stats.latency.snapshot()
	if lat.Count > 0 {
		b.ReportMetric(float64(lat.Sum.Microseconds())/float64(lat.Count), "queued-µs/delivery")
	}
}

// configureRaw sends a masked config/set frame with cfg on conn, a raw
// WebSocket (dialRaw), and reads until the hub's config/ok.
func configureRaw(tb testing.TB, conn net.Conn, cfg string) {
	tb.Helper()
	payload := []byte(`["clown.talk/-/config/set", ` + cfg + `]`)
	if len(payload) > 125 {
		tb.Fatalf("config %q: longer than a short frame", cfg)
	}
	frame := append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...) // mask key 0: the payload as it is
	if _, err := conn.Write(frame); err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	br := bufio.NewReaderSize(conn, 256) // the hub sends nothing else before the config/ok
	var seen []byte
	for !bytes.Contains(seen, []byte("config/ok")) {
		c, err := br.ReadByte()
		if err != nil {
			tb.Fatalf("waiting for config/ok: %v (got %q)", err, seen)
		}
		seen = append(seen, c)
		if len(seen) > 4096 {
			tb.Fatalf("no config/ok in %q", seen)
		}
	}
	for br.Buffered() > 0 { // the rest of the frame
		if _, err := br.ReadByte(); err != nil {
			tb.Fatal(err)
		}
	}
}
