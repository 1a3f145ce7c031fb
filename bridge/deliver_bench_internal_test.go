package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkDeliverIngest measures the hub's side of an ingest, one message
// at a time: a device's message from the Bus callback (Hub.deliver) to the
// queues of 10 dashboards on "#" (encoding, the event log, the last values
// and history, the device model's queue, the index, the pushes), with 2,000
// devices on topics of their own and payloads as hubbench's. The queues are
// emptied every 256 messages, as the flushers would. The device model's
// worker is held off (its lock held), so that the figures are the
// delivery's alone: its queue overflows now and then, as the hub's does
// when the worker falls behind.
func BenchmarkDeliverIngest(b *testing.B) {
	const dashboards, devices = 10, 2000
	h := newTestHub(b, Config{MaxSessionsPerAddress: dashboards})
	h.devices.mu.Lock()
	b.Cleanup(h.devices.mu.Unlock) // before the hub's Close, which waits for the worker
	clients := make([]*client, dashboards)
	for i := range clients {
		clients[i] = attachTest(b, h, "", "#")
	}
	msgs := make([]Message, devices)
	pad := strings.Repeat("x", 60)
	for i := range msgs {
		msgs[i] = Message{Topic: fmt.Sprintf("bench/dev%d/data", i),
			Payload: fmt.Appendf(nil, `{"s":%d,"t":1764000000000000000,"p":"%s"}`, i, pad)}
	}
	drain := func() {
		for _, c := range clients {
			if items, ok := c.out.takeUpTo(c.out.maxBytes); ok {
				c.out.recycle(items)
			}
		}
	}
	for i := range 4 * devices { // every topic known to the state store and the model
		h.deliver(msgs[i%devices])
		if i%256 == 0 {
			drain()
		}
	}
	drain()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.deliver(msgs[i%devices])
		if i++; i%256 == 0 {
			drain()
		}
	}
}

// BenchmarkCountWritten: what the flushers count per write of 64 lines to
// a dashboard (bytes, and each line's latency in the histogram).
func BenchmarkCountWritten(b *testing.B) {
	h := newTestHub(b, Config{})
	c := &client{kind: transportWS}
	items := make([]outItem, 64)
	at := time.Now().UnixNano()
	for i := range items {
		items[i] = outItem{line: make([]byte, 120), at: at - int64(i)*int64(20*time.Microsecond)}
	}
	for b.Loop() {
		h.countWritten(c, items)
	}
}
