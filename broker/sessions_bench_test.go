package broker

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAbandonedSessions: what persistent sessions whose clients went
// away cost the broker while it keeps them, each with one subscription:
// live heap per session. Run with -benchtime 1x: each iteration makes 5,000.
func BenchmarkAbandonedSessions(b *testing.B) {
	const sessions = 5000
	for b.Loop() {
		e := startTest(b, Config{MaxConnections: 2 * sessions, MaxConnectionsPerAddress: 2 * sessions, MessageRate: -1})
		base := liveHeap()
		abandonSessions(b, e, sessions, func(i int) string { return "load/" + strconv.Itoa(i) + "/#" })
		b.ReportMetric(float64(liveHeap()-base)/sessions, "B/session")
		_ = e.Close(b.Context())
	}
}

// BenchmarkAbandonedSessionsOnABusyTopic: 1,000 abandoned sessions
// subscribed at QoS 1 to a topic that gets 3,000 messages of 100 bytes:
// what the broker queues for them (at most Config.MaxQueued each), in
// messages and live heap per session. Run with -benchtime 1x.
func BenchmarkAbandonedSessionsOnABusyTopic(b *testing.B) {
	const sessions, messages = 1000, 3000
	payload := make([]byte, 100)
	for b.Loop() {
		e := startTest(b, Config{MaxConnections: 2 * sessions, MaxConnectionsPerAddress: 2 * sessions, MessageRate: -1})
		base := liveHeap()
		abandonSessions(b, e, sessions, func(int) string { return "busy/#" })
		for range messages {
			if err := e.Publish(b.Context(), bridge.Message{Topic: "busy/x", QoS: 1, Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(e.Stats().Inflight)/sessions, "queued/session")
		b.ReportMetric(float64(liveHeap()-base)/sessions, "B/session")
		_ = e.Close(b.Context())
	}
}

// abandonSessions makes n persistent sessions, each subscribed at QoS 1 to
// the filter it is given, whose clients go away.
func abandonSessions(b *testing.B, e *Embedded, n int, filter func(i int) string) {
	for i := range n {
		c, _ := dialMQTTConnWith(b, e.Addr().String(), packets.ConnectParams{ClientIdentifier: "abandoned-" + strconv.Itoa(i)})
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: filter(i), Qos: 1}}})
		c.read()
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		_ = c.conn.Close()
	}
	hubtest.Eventually(b, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "clients stayed connected")
}
