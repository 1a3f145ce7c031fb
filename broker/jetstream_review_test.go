package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestJetStreamFeedReview runs the adversarial review's feed tests on a
// one-node cluster, each on its own stream.
func TestJetStreamFeedReview(t *testing.T) {
	b := newJSBed(t, 1)
	t.Run("MessagesBetweenOpenAndStartAreNoHole", func(t *testing.T) { testFeedMessagesBetweenOpenAndStart(t, b) })
	t.Run("OddSubjectsAndAMegabyte", func(t *testing.T) { testFeedOddSubjectsAndAMegabyte(t, b) })
	t.Run("HundredThousandSubjects", func(t *testing.T) { testFeedHundredThousandSubjects(t, b) })
}

// testFeedMessagesBetweenOpenAndStart: messages published after
// OpenJetStream read the stream and before Start made its consumer come as
// the last message of each subject (the consumer's snapshot reaches the
// stream's end when it is made): that is no hole, and no client may resume
// from before the last of them.
func testFeedMessagesBetweenOpenAndStart(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.>"}})
	b.publish(t, "late.a", "1")
	b.publish(t, "late.b", "2")
	var l feedLog
	f := followFeed(t, b, "LATE", &l)
	// Between the hub's open and its start (cmd/hub builds the hub and
	// listens meanwhile) the devices go on: late.a twice, so that the
	// snapshot skips its first.
	b.publish(t, "late.a", "3")
	b.publish(t, "late.a", "4")
	b.publish(t, "late.c", "5")
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return f.Stats().Position == 5 }, "the feed reaches the stream's end")
	b.publish(t, "late.b", "6")
	hubtest.Eventually(t, 10*time.Second, func() bool { return f.Stats().Position == 6 }, "a live message")
	events, _ := l.snapshot()
	if s := f.Stats(); s.Holes != 0 || slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "hole") }) {
		t.Fatalf("a hole reported for messages the stream still holds: stats %+v, events %q", s, events)
	}
	// The floor, said before any message, is at least the snapshot's end
	// (5): a client resuming from 3 would miss late.a 3.
	var floor uint64
	if _, err := fmt.Sscanf(events[0], "floor %d", &floor); err != nil || floor < 5 {
		t.Fatalf("first event %q: want the floor, at least 5", events[0])
	}
	want := []string{"late/b 2 @2 replay", "late/a 4 @4 replay", "late/c 5 @5 replay", "late/b 6 @6"}
	if got := events[1:]; !slices.Equal(got, want) {
		t.Fatalf("feed gave\n%q\nwant\n%q", got, want)
	}
}

// testFeedOddSubjectsAndAMegabyte: a subject that is no MQTT topic ('+'
// or '#' in a level) is skipped, by every replica alike, without a hole;
// a message of nearly NATS's largest payload (1 MB) comes whole.
func testFeedOddSubjectsAndAMegabyte(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "ODD", Subjects: []string{"odd.>"}})
	var l feedLog
	f := startFeed(t, b, "ODD", &l)
	big := strings.Repeat("x", int(b.nc.MaxPayload())-1024) // room for the headers
	b.publish(t, "odd.a", "1")
	b.publish(t, "odd.+", "2")
	b.publish(t, "odd.#", "3")
	b.publish(t, "odd.big", big)
	last := b.publish(t, "odd.b", "5")
	hubtest.Eventually(t, 10*time.Second, func() bool { return f.Stats().Position == last }, "the feed reaches the stream's end")
	_, msgs := l.snapshot()
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%s %d @%d", m.Topic, len(m.Payload), m.Position))
	}
	want := []string{"odd/a 1 @1", fmt.Sprintf("odd/big %d @4", len(big)), "odd/b 1 @5"}
	if !slices.Equal(got, want) || f.Stats().Holes != 0 {
		t.Fatalf("feed gave %q (holes %d), want %q", got, f.Stats().Holes, want)
	}
}

// testFeedHundredThousandSubjects: a stream of 100,000 subjects (one
// message each, then a second round on all of them): the snapshot brings
// each subject's last, in order, then every new message, and the feed keeps
// nothing per subject (the heap after it read them all is the heap before,
// within a few MB).
func testFeedHundredThousandSubjects(t *testing.T, b *jsBed) {
	if testing.Short() {
		t.Skip("publishes 200,000 messages")
	}
	const n = 100_000
	b.createStream(t, jetstream.StreamConfig{Name: "MANY", Subjects: []string{"many.>"}})
	publishAll := func(round int) {
		for i := range n {
			// Stalled at the 4,000 outstanding messages nats.go allows, a
			// publish waits for room: 200 ms by default, which a loaded
			// machine exceeds.
			if _, err := b.js.PublishAsync(fmt.Sprintf("many.s%d", i), fmt.Appendf(nil, "%d", round), jetstream.WithStallWait(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-b.js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			t.Fatal("publishing did not complete")
		}
	}
	publishAll(1)
	var l feedLog
	f := openFeed(t, b, "MANY", &l)
	var mu sync.Mutex
	var count int
	var last uint64
	var disorder error
	cancel, err := f.Subscribe("#", func(m bridge.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Position <= last && disorder == nil {
			disorder = fmt.Errorf("position %d after %d", m.Position, last)
		}
		count, last = count+1, m.Position
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	publishAll(2)
	hubtest.Eventually(t, 2*time.Minute, func() bool { return f.Stats().Position == 2*n }, "the feed reads the stream")
	mu.Lock()
	got, bad := count, disorder
	mu.Unlock()
	if bad != nil || got > 2*n || got < n || f.Stats().Holes != 0 {
		t.Fatalf("%d messages (want the snapshot's %d subjects, then every new one), holes %d, order: %v", got, n, f.Stats().Holes, bad)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Fatalf("the heap grew by %d bytes reading %d subjects: the feed keeps something per subject", grown, n)
	}
	t.Logf("%d messages of %d subjects read; heap %d -> %d bytes", got, n, before.HeapAlloc, after.HeapAlloc)
}

// stubBus is a Bus that carries nothing, for a hub built only to check its
// configuration.
type stubBus struct{}

func (stubBus) Publish(context.Context, bridge.Message) error { return nil }
func (stubBus) Subscribe(string, func(bridge.Message)) (func(), error) {
	return func() {}, nil
}

// TestStreamEpochOfAnyName: every name NATS allows a stream (up to 255
// bytes; quotes, backslashes, '%', non-ASCII) makes an epoch a hub takes,
// and different names different epochs; a plain name is kept as it is.
func TestStreamEpochOfAnyName(t *testing.T) {
	names := []string{"DEVICES", `my"stream`, `back\slash`, "with%25percent", "with%percent", "Gerätedaten",
		strings.Repeat("x", 255), strings.Repeat("x", 254) + "y", strings.Repeat("ä", 127), "a-b_c~d"}
	seen := map[string]string{}
	for _, name := range names {
		epoch := streamEpoch(name, "lq2x8k3m0abc")
		h, err := bridge.New(stubBus{}, bridge.Config{Epoch: epoch, Positional: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Errorf("stream %q: epoch %q refused: %v", name, epoch, err)
			continue
		}
		_ = h.Close(context.Background())
		if other, dup := seen[epoch]; dup {
			t.Errorf("streams %q and %q share the epoch %q", other, name, epoch)
		}
		seen[epoch] = name
	}
	if e := streamEpoch("DEVICES", "lq2x8k3m0abc"); e != "DEVICES.lq2x8k3m0abc" {
		t.Errorf("a plain name's epoch is %q", e)
	}
}
