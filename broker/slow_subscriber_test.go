package broker

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestSubscriberThatStopsReadingIsBounded: a subscriber that stops reading
// holds at most MaxPendingWrites messages in the broker (and one writer
// goroutine, stuck in its write until WriteTimeout), the rest are dropped
// and counted, publishing never waits for it, and a subscriber that reads
// gets every message meanwhile, in order.
func TestSubscriberThatStopsReadingIsBounded(t *testing.T) {
	const pending, messages = 8, 300
	e := startTest(t, Config{MaxPendingWrites: pending, MessageRate: -1})
	dial := func() (net.Conn, error) { return net.Dial("tcp", e.Addr().String()) }
	stuck, _, err := connectDevices(dial, 0, 1, 1) // subscribed to dev/0/cmd, never reads again
	defer closeAll(stuck)
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()

	payload := make([]byte, 64<<10) // 300 of them overflow any loopback socket's buffers
	start := time.Now()
	for range messages {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "dev/0/cmd", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > hubtest.Timeout/2 {
		t.Fatalf("publishing took %v: it waited for the subscriber that does not read", d)
	}
	dropped := e.Stats().MessagesDropped
	if dropped == 0 || dropped > messages-pending {
		t.Fatalf("%d messages dropped; want some, and at most %d (%d fit in the queue)", dropped, messages-pending, pending)
	}
	if got := runtime.NumGoroutine(); got > base+1 {
		t.Fatalf("%d goroutines for the stuck subscriber's messages, want at most its one writer", got-base)
	}

	// Another subscriber, reading, gets what is published meanwhile (as many
	// as its own queue holds, published at once).
	readers, _, err := connectDevices(dial, 1, 1, 1)
	defer closeAll(readers)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pending {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "dev/1/cmd", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pending {
		want := appendPacket(nil, 0x30, append(appendString(nil, "dev/1/cmd"), byte(i)))
		got := make([]byte, len(want))
		_ = readers[0].SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := io.ReadFull(readers[0], got); err != nil || string(got) != string(want) {
			t.Fatalf("message %d: got % x (%v), want % x", i, got, err, want)
		}
	}
}
