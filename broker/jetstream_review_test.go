package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestJetStreamFeedReview runs the adversarial review's feed tests on a
// one-node cluster, each on its own stream.
func TestJetStreamFeedReview(t *testing.T) {
	b := newJSBed(t, 1)
	t.Run("MessagesBetweenOpenAndStartAreNoHole", func(t *testing.T) { testFeedMessagesBetweenOpenAndStart(t, b) })
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
	f := openFeed(t, b, "LATE", &l)
	cancel, err := f.Subscribe("#", l.message)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
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
