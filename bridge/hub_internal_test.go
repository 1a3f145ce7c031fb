package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
)

// nopBus is a Bus that goes nowhere, for tests that drive the hub's fan-out
// directly. Tests with a real broker live in package bridge_test.
type nopBus struct{}

func (nopBus) Publish(context.Context, Message) error { return nil }
func (nopBus) Subscribe(string, func(Message)) (func(), error) {
	return func() {}, nil
}

func newTestHub(t testing.TB, cfg Config) *Hub {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := New(nopBus{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// attachTest attaches and starts a client with no transport, live from now;
// the test detaches it.
func attachTest(t testing.TB, h *Hub, base string, filters ...string) *client {
	t.Helper()
	c := newClient(newID(4), "test", base, "test:1", auth.Anonymous, formatLines, &h.cfg)
	if err := h.sess.attach(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a test that failed early leaves it attached
		if h.sess.has(c) {
			h.detach(c)
		}
	})
	h.fan.mu.Lock()
	cu, err := h.fan.beginLocked(c, filters, h.fan.seq, ResyncNotice{})
	if err == nil {
		c.out.restart(cu)
	}
	h.fan.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if cu, _ := c.out.take(nil); cu == nil || cu.replay {
		t.Fatalf("a client started from now has catchup %+v", cu)
	}
	return c
}

func lines(c *client) [][]byte {
	_, items := c.out.take(nil)
	var out [][]byte
	for _, it := range items {
		out = append(out, it.line)
	}
	return out
}

func drain(c *client) []string {
	var out []string
	for _, l := range lines(c) {
		out = append(out, string(l))
	}
	return out
}

func TestFanOutSharesOneEncodingPerVariant(t *testing.T) {
	h := newTestHub(t, Config{})
	a := attachTest(t, h, "", "#")
	b := attachTest(t, h, "", "nodes/#", "nodes/+/relay") // two matching filters
	m := attachTest(t, h, "nodes/bridge", "#")
	other := attachTest(t, h, "elsewhere", "#")
	defer func() {
		for _, c := range []*client{a, b, m, other} {
			h.detach(c)
		}
	}()

	h.deliver(Message{Topic: "nodes/bridge/relay", Payload: []byte(`{"state":true}`)})

	la, lb, lm := lines(a), lines(b), lines(m)
	if len(la) != 1 || len(lb) != 1 || len(lm) != 1 || len(drain(other)) != 0 {
		t.Fatalf("deliveries: root %d, two-filter client %d, mounted %d (want 1 each), elsewhere %d (want 0)", len(la), len(lb), len(lm), len(drain(other)))
	}
	if &la[0][0] != &lb[0][0] {
		t.Fatal("clients with the same base got separately encoded frames")
	}
	if string(la[0]) != "[\"nodes/bridge/relay\",{\"state\":true}]\n" || string(lm[0]) != "[\"relay\",{\"state\":true}]\n" {
		t.Fatalf("frames %q and %q", la[0], lm[0])
	}
	if s := h.Stats(); s.Received != 1 || s.Delivered != 3 || s.Sessions != 4 {
		t.Fatalf("stats %+v, want 1 received, 3 delivered, 4 sessions", s)
	}
}

func TestQueueOverflowMarksSlowAndRefusesMore(t *testing.T) {
	h := newTestHub(t, Config{QueueMessages: 3, QueueBytes: 1 << 20})
	c := attachTest(t, h, "", "#")
	defer h.detach(c)
	for i := range 3 {
		h.deliver(Message{Topic: "t", Payload: fmt.Appendf(nil, "%d", i)})
	}
	if c.stopped() {
		t.Fatal("a full queue is not yet an overflow")
	}
	h.deliver(Message{Topic: "t", Payload: []byte("3")})
	if !c.stopped() || c.reason != ReasonSlow {
		t.Fatalf("after overflow: stopped %v, reason %v; want slow", c.stopped(), c.reason)
	}
	if got := drain(c); len(got) != 0 {
		t.Fatalf("an overflowed queue still holds %d lines; it must let go of them", len(got))
	}
	h.deliver(Message{Topic: "t", Payload: []byte("4")})
	if got := drain(c); len(got) != 0 || h.Stats().SlowDisconnects != 1 {
		t.Fatalf("after overflow the queue took %d more; slow disconnects %d", len(got), h.Stats().SlowDisconnects)
	}
}

func TestQueueBytesLimit(t *testing.T) {
	q := newQueue(100, 10)
	if !q.push(make([]byte, 25), 0) {
		t.Fatal("a single line over the byte limit must be taken by an empty queue")
	}
	if q.push([]byte("x"), 0) {
		t.Fatal("a line past the byte limit was taken")
	}
}

func TestCloseEndsSessionsGoingAway(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	done := make(chan error)
	go func() { done <- h.Close(context.Background()) }()
	<-c.stop
	if c.reason != ReasonGoingAway {
		t.Fatalf("reason %v, want going away", c.reason)
	}
	h.detach(c) // the transport's part
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.sess.attach(newClient("late", "test", "", "", auth.Anonymous, formatLines, &h.cfg)); AsError(err).Code != CodeUnavailable {
		t.Fatalf("attach after Close: %v, want unavailable", err)
	}
}

func TestCloseCutsSessionsThatDoNotEnd(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	c.abort = func() { h.detach(c) } // stands in for a transport that ends when its connection is cut
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Close(ctx); err == nil {
		t.Fatal("Close with an expired context and a session that did not end must say so")
	}
}

// TestDetachedClientStaysOutOfTheIndex: once detach returns, nothing puts
// the client back in the index (a late subscribe, a resync, a config/set),
// so no message reaches it.
func TestDetachedClientStaysOutOfTheIndex(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "a")
	h.detach(c)
	if err := h.subscribe(context.Background(), c, []string{"#"}); err == nil {
		t.Error("subscribe after detach was taken")
	}
	h.fan.restartWithResync(c, testResync)
	if err := h.configure(context.Background(), c, []byte(`{"subscribe":["#"],"since":""}`)); err == nil {
		t.Error("config/set after detach was taken")
	}
	h.deliver(Message{Topic: "a", Payload: []byte("1")})
	if got := drain(c); len(got) != 0 {
		t.Fatalf("a detached client got %q", got)
	}
	if fs := h.fan.filtersOf(c); len(fs) != 0 {
		t.Fatalf("a detached client holds filters %v", fs)
	}
}

// TestCloseTellsEverySessionAttachedMeanwhile: sessions attach while Close
// runs; each attach either fails or its session is told "going away", and
// Close returns once they all ended.
func TestCloseTellsEverySessionAttachedMeanwhile(t *testing.T) {
	h := newTestHub(t, Config{MaxSessionsPerAddress: 1000})
	const n = 200
	attached := make(chan *client, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			c := newClient(fmt.Sprint(i), "test", "", "test:1", auth.Anonymous, formatLines, &h.cfg)
			<-start
			if h.sess.attach(c) != nil {
				return
			}
			attached <- c
			<-c.stop // the transport's part: it ends when told to
			h.detach(c)
		}()
	}
	close(start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v (a session attached meanwhile was not told to end)", err)
	}
	for range n {
		<-done
	}
	close(attached)
	for c := range attached {
		if c.reason != ReasonGoingAway {
			t.Fatalf("session %s ended for %v, want going away", c.id, c.reason)
		}
	}
}

// BenchmarkFanOut1000 measures the publish path: one message from the Bus to
// 1,000 subscribed clients' queues (encoding, index lookup, queueing).
// Queues are emptied every 1,000 messages, as writers would.
func BenchmarkFanOut1000(b *testing.B) {
	h := newTestHub(b, Config{MaxSessionsPerAddress: 1000})
	clients := make([]*client, 1000)
	for i := range clients {
		clients[i] = attachTest(b, h, "", "nodes/+/thermometer/#")
	}
	msg := Message{Topic: "nodes/bridge/thermometer/0:1/temperature", Payload: []byte(`[21.5,"°C"]`)}
	spare := make([][]outItem, len(clients))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.deliver(msg)
		if i++; i%1000 == 0 {
			for j, c := range clients {
				_, spare[j] = c.out.take(spare[j])
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(clients)), "ns/delivery")
	for _, c := range clients {
		h.detach(c)
	}
}

// TestDrainLetsBurstBuffersGo: after a burst, a client that stays idle for
// two slow ticks holds no buffers on either side of its queue, while one
// that drains between ticks keeps them.
func TestDrainLetsBurstBuffersGo(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	var d drainer
	write := func([][]byte) error { return nil }
	burst := func() {
		for range 3000 {
			h.deliver(Message{Topic: "t", Payload: []byte("1")})
		}
		if err := h.drain(c, &d, write); err != nil {
			t.Fatal(err)
		}
	}
	held := func() (int, int, int) {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		return cap(d.items), cap(d.lines), cap(c.out.items)
	}
	burst()
	burst() // both of the queue's buffers have held a burst
	d.idle(&c.out)
	if items, lines, _ := held(); items < 3000 || lines < 3000 {
		t.Fatalf("a client that drained since the last tick let its buffers go (%d items, %d lines)", items, lines)
	}
	d.idle(&c.out)
	if items, lines, queued := held(); items > drainKeep || lines > drainKeep || queued > drainKeep {
		t.Fatalf("idle for a tick after a burst: drainer holds %d items and %d lines, the queue %d; want at most %d each",
			items, lines, queued, drainKeep)
	}
}

// TestResyncSessionsShareOneSnapshot: the sessions one Resync restarts hold
// one copy of the last values between them, not one each; a session
// restarted a few events later gets those events replayed after the values.
func TestResyncSessionsShareOneSnapshot(t *testing.T) {
	h := newTestHub(t, Config{})
	for i := range 1000 {
		h.deliver(Message{Topic: fmt.Sprintf("t/%d", i), Payload: []byte("1")})
	}
	var clients []*client
	for range 50 {
		clients = append(clients, attachTest(t, h, "", "#"))
	}
	h.Resync(testResync)
	first, _ := clients[0].out.take(nil)
	if first == nil || first.resync.Code == "" || len(first.values) != 1000 {
		t.Fatalf("after a resync, catchup %+v", first)
	}
	for i, c := range clients[1:] {
		cu, _ := c.out.take(nil)
		if cu == nil || cu.resync.Code == "" || len(cu.values) != 1000 || &cu.values[0] != &first.values[0] {
			t.Fatalf("session %d: its resync does not share the values of the first", i+1)
		}
	}

	h.deliver(Message{Topic: "t/late", Payload: []byte("2")})
	late := attachTest(t, h, "", "#")
	h.fan.restartWithResync(late, testResync)
	cu, _ := late.out.take(nil)
	if &cu.values[0] != &first.values[0] || !cu.replay || cu.after != first.after || cu.liveFrom != first.after+2 {
		t.Fatalf("a session restarted one event later: catchup after %d, live from %d, replay %v; want the shared values (at %d) and a replay of one event",
			cu.after, cu.liveFrom, cu.replay, first.after)
	}
	var got []string
	if _, err := h.writeCatchup(late, cu, func(frames [][]byte) error {
		for _, f := range frames {
			got = append(got, string(f))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(got); n < 2 || !strings.Contains(got[n-1], `"t/late"`) {
		t.Fatalf("the replay after the values: last frames %q", got[max(0, n-2):])
	}
}

// testResync is the notice of the resyncs these tests cause.
var testResync = ResyncNotice{Code: ResyncBrokerGap, Reason: "test"}
