package broker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestLiveMessagesDoNotWaitForTheReplay: a subscription of the hub whose
// replay covers 10,000 retained topics, and a live message on another topic
// meanwhile. The live message is delivered while the replay is still under
// way, not after it. To show the waiting whatever the machine's speed, the
// replay cannot go on past its first message until the live one is
// delivered, or until a deadline past the test's own.
func TestLiveMessagesDoNotWaitForTheReplay(t *testing.T) {
	e := startTest(t, Config{})
	const n = 10000
	for i := range n {
		if err := e.Publish(t.Context(), bridge.Message{Topic: fmt.Sprintf("r/%d", i), Retain: true, Payload: []byte("old")}); err != nil {
			t.Fatal(err)
		}
	}

	var replayed atomic.Int64
	started := make(chan struct{}) // closed by the first replayed message
	live := make(chan struct{})    // closed when the live message is delivered
	fn := func(m bridge.Message) {
		if !m.Replay {
			if m.Topic == "r/live" {
				close(live)
			}
			return
		}
		if replayed.Add(1) == 1 {
			close(started)
			select {
			case <-live:
			case <-time.After(2 * hubtest.Timeout):
			}
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	subscribed := make(chan func(), 1)
	wg.Go(func() {
		cancel, err := e.Subscribe("r/#", fn)
		if err != nil {
			t.Error(err)
			cancel = func() {}
		}
		subscribed <- cancel
	})
	hubtest.Receive(t, started, hubtest.Timeout, "start of the replay")

	start := time.Now()
	wg.Go(func() {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "r/live", Payload: []byte("new")}); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-live:
		t.Logf("the live message was delivered %v after its publish, the replay of %d retained messages under way",
			time.Since(start).Round(time.Microsecond), n)
	case <-time.After(hubtest.Timeout):
		t.Errorf("the live message was not delivered within %v: it waits for the replay of %d retained messages", hubtest.Timeout, n)
	}
	cancel := <-subscribed // the replay has ended
	defer cancel()
	if got := replayed.Load(); got != n {
		t.Errorf("%d retained messages replayed, want %d", got, n)
	}
}

// TestReplayNeverOvertakesLive: while the replay hands one topic's retained
// value to the subscription, a live message on another topic goes through
// at once (and that topic's older retained value is not replayed after it),
// and a live message on the same topic waits for that one call: per topic,
// an older value never comes after a newer one.
func TestReplayNeverOvertakesLive(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	record := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	entered := make(chan string, 1) // the topic the replay holds
	release := make(chan struct{})
	fn := func(m bridge.Message) {
		mu.Lock()
		first := m.Replay && len(got) == 0
		got = append(got, fmt.Sprintf("%s=%s", m.Topic, m.Payload))
		mu.Unlock()
		if first {
			entered <- m.Topic
			<-release
		}
	}
	s := newInlineSub("o/#", fn)
	retained := func(topic, payload string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic, Payload: []byte(payload)}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	wg.Go(func() { s.replay([]packets.Packet{retained("o/a", "old"), retained("o/b", "old")}) })
	held := hubtest.Receive(t, entered, hubtest.Timeout, "the first replayed message")
	other := map[string]string{"o/a": "o/b", "o/b": "o/a"}[held]

	wg.Go(func() { s.handle(nil, packets.Subscription{}, retained(other, "new")) })
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Contains(record(), other+"=new") },
		"the live message on %s waits while the replay holds %s", other, held)

	wg.Go(func() { s.handle(nil, packets.Subscription{}, retained(held, "new")) })
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.live[held]
	}, "the live message on %s did not arrive", held)
	if slices.Contains(record(), held+"=new") {
		t.Errorf("the live message on %s came while the replay still held its older value: %q", held, record())
	}
	released()
	wg.Wait()

	want := []string{held + "=old", other + "=new", held + "=new"}
	if strings.Join(record(), " ") != strings.Join(want, " ") {
		t.Errorf("delivered %q, want %q: per topic, never an older value after a newer one", record(), want)
	}
}

// BenchmarkPublishToASubscription: the hub's share of a publish, from
// several publishers at once, into one Bus subscription.
func BenchmarkPublishToASubscription(b *testing.B) {
	e := startTest(b, Config{})
	cancel, err := e.Subscribe("b/#", func(bridge.Message) {})
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()
	m := bridge.Message{Topic: "b/x", Payload: []byte("1")}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.Publish(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
