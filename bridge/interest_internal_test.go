package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/topics"
)

func TestMinimalCover(t *testing.T) {
	for _, c := range []struct{ wanted, want string }{
		{"a/b a/#", "a/#"},
		{"a/+/c a/b/c a/b/d", "a/+/c a/b/d"},
		{"# $SYS/#", "# $SYS/#"}, // '#' does not reach '$' topics
		{"# +/x a", "#"},
		{"a/b a/b", "a/b"},
		{"x", "x"},
	} {
		if got := strings.Join(minimalCover(strings.Fields(c.wanted)), " "); got != c.want {
			t.Errorf("minimalCover(%s) = %q, want %q", c.wanted, got, c.want)
		}
	}
}

// TestOneMessageThroughOverlappingSubscriptions: a Bus that hands one
// message to two of the hub's subscriptions (numbered alike) makes one
// event, and a retained message the hub has as the topic's value (sent
// again for a new subscription) makes none.
func TestOneMessageThroughOverlappingSubscriptions(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 7})
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 7})
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 8}) // the same content, another message
	h.deliver(Message{Topic: "r", Payload: []byte("on"), Retain: true, Replay: true})
	h.deliver(Message{Topic: "r", Payload: []byte("on"), Retain: true, Replay: true})  // again, for another subscription
	h.deliver(Message{Topic: "r", Payload: []byte("off"), Retain: true, Replay: true}) // a value the hub did not have
	h.deliver(Message{Topic: "r", Payload: []byte("off")})                             // live: always an event
	h.deliver(Message{Topic: "r", Payload: []byte("off"), Retain: true})               // live and retained by its publisher: too
	if got, want := strings.Join(drain(c), ""), "[\"a/b\",1]\n[\"a/b\",1]\n[\"r\",\"on\"]\n[\"r\",\"off\"]\n[\"r\",\"off\"]\n[\"r\",\"off\"]\n"; got != want {
		t.Fatalf("events:\n%swant:\n%s", got, want)
	}
}

// minimalCoverByPairs is the definition minimalCover implements: every
// filter against every other.
func minimalCoverByPairs(wanted []string) []string {
	var out []string
	for _, f := range wanted {
		needed := true
		for _, g := range wanted {
			if g != f && topics.Covers(g, f) && (!topics.Covers(f, g) || g < f) {
				needed = false
				break
			}
		}
		if needed {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// randomFilters makes n filters of up to four levels from a small alphabet,
// with '+' and '#' and '$' topics, so that many cover others.
func randomFilters(r *rand.Rand, n int) []string {
	levels := []string{"a", "b", "c", "+", "$SYS", ""}
	out := make([]string, n)
	for i := range out {
		parts := make([]string, 1+r.IntN(4))
		for j := range parts {
			parts[j] = levels[r.IntN(len(levels))]
			if parts[j] == "$SYS" && j > 0 {
				parts[j] = "x"
			}
		}
		if r.IntN(4) == 0 {
			parts = append(parts, "#")
		}
		out[i] = strings.Join(parts, "/")
		if topics.ValidateFilter(out[i]) != nil {
			out[i] = "a/b"
		}
	}
	return out
}

// TestMinimalCoverMatchesPairwise: the indexed cover is the pairwise one, on
// random sets full of overlaps.
func TestMinimalCoverMatchesPairwise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		wanted := randomFilters(r, 1+r.IntN(40))
		if got, want := minimalCover(wanted), minimalCoverByPairs(wanted); !slices.Equal(got, want) {
			t.Fatalf("minimalCover(%q) = %q, want %q", wanted, got, want)
		}
	}
}

// tenThousandFilters is what 10,000 distinct client filters look like:
// exact topics of many devices, their wildcards, a few broad ones.
func tenThousandFilters() []string {
	var fs []string
	for i := range 9000 {
		fs = append(fs, fmt.Sprintf("site/%d/node/%d/temp", i%30, i))
	}
	for i := range 900 {
		fs = append(fs, fmt.Sprintf("site/%d/node/%d/#", i%30, i+20000))
	}
	for i := range 98 {
		fs = append(fs, fmt.Sprintf("site/%d/+/%d/temp", i, i))
	}
	return append(fs, "site/3/#", "+/+/node/17/temp")
}

// TestMinimalCoverOfTenThousandFilters checks the cover of 10,000 distinct
// filters (its speed is BenchmarkMinimalCover's): what must go goes, what
// must stay stays, and on every 50th filter, against all the others, that
// a kept one is covered by no other kept one and a wanted one by a kept one.
func TestMinimalCoverOfTenThousandFilters(t *testing.T) {
	wanted := tenThousandFilters()
	got := minimalCover(wanted)
	for _, f := range []string{"site/3/#", "site/4/+/4/temp", "+/+/node/17/temp", "site/4/node/34/temp", "site/4/node/20004/#"} {
		if !slices.Contains(got, f) {
			t.Errorf("%q is not kept", f)
		}
	}
	for _, f := range []string{"site/3/node/3/temp", "site/3/node/20003/#", "site/4/node/4/temp", "site/17/node/17/temp"} {
		if slices.Contains(got, f) {
			t.Errorf("%q is kept, yet covered", f)
		}
	}
	for i := 0; i < len(got); i += 50 {
		for _, g := range got {
			if g != got[i] && topics.Covers(g, got[i]) {
				t.Fatalf("%q and %q are both kept, the second covers the first", got[i], g)
			}
		}
	}
	for i := 0; i < len(wanted); i += 50 {
		if !slices.ContainsFunc(got, func(g string) bool { return topics.Covers(g, wanted[i]) }) {
			t.Fatalf("%q is not covered", wanted[i])
		}
	}
}

func BenchmarkMinimalCover(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		wanted := tenThousandFilters()[:n-2]
		wanted = append(wanted, "site/3/#", "+/+/node/17/temp")
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				minimalCover(wanted)
			}
		})
	}
}

type recorder struct{ records []Record }

func (r *recorder) Observe(rec Record) { r.records = append(r.records, rec) }

// TestObserversSeeEveryEventInOrder: a Config.Observer is told of every
// event the hub takes, numbered, in order, with what it did to its topic;
// not of the duplicates the hub drops.
func TestObserversSeeEveryEventInOrder(t *testing.T) {
	rec := &recorder{}
	h := newTestHub(t, Config{Observers: []Observer{rec}})
	h.deliver(Message{Topic: "a", Payload: []byte("1"), Delivery: 1})
	h.deliver(Message{Topic: "a", Payload: []byte("1"), Delivery: 1}) // the same message again
	h.deliver(Message{Topic: "r", Payload: []byte("on"), Retain: true})
	h.deliver(Message{Topic: "r", Payload: nil, Retain: true})
	var got []string
	for _, r := range rec.records {
		got = append(got, fmt.Sprintf("%d %s %s %v %v", r.Seq, r.Topic, r.Payload, r.Retained, r.Cleared))
	}
	if want := []string{`1 a 1 false false`, `2 r "on" true false`, `3 r "" true true`}; !slices.Equal(got, want) {
		t.Fatalf("observed %q, want %q", got, want)
	}
}

// TestReconcilerForgetsDueRefusals: a filter the Bus refused is remembered
// until it is due to be asked again, and then forgotten unless it is still
// wanted (asked again at once): refusals of filters nobody wants any more do
// not pile up.
func TestReconcilerForgetsDueRefusals(t *testing.T) {
	h := newTestHub(t, Config{}) // fixed subscriptions: no reconciler of its own runs
	now := time.Now()
	r := &reconciler{
		wanted:  map[string]int{"wanted/#": 1},
		leased:  map[string]time.Time{},
		own:     map[string]*busSub{},
		retry:   map[string]time.Time{"gone/#": now.Add(-time.Second), "wanted/#": now.Add(-time.Second), "later/#": now.Add(time.Minute)},
		refused: map[string]bool{"gone/#": true, "wanted/#": true},
		dirty:   true,
	}
	adds, _, _ := h.interest.plan(r)
	if len(adds) != 1 || adds[0] != "wanted/#" {
		t.Fatalf("plan adds %v, want the wanted filter whose refusal is due", adds)
	}
	if _, kept := r.retry["gone/#"]; kept || len(r.retry) != 1 {
		t.Fatalf("refusals after planning: %v, want only the one not yet due", r.retry)
	}
	if r.refused["gone/#"] || !r.refused["wanted/#"] {
		t.Fatalf("refusals said after planning: %v, want only the wanted one's", r.refused)
	}
}

// refusingBus refuses the subscriptions to filters in refuse, while it
// does, and counts the times each was asked.
type refusingBus struct {
	nopBus
	mu     sync.Mutex
	refuse map[string]bool
	asked  map[string]int
}

func (b *refusingBus) Subscribe(filter string, fn func(Message)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked[filter]++
	if b.refuse[filter] {
		return nil, fmt.Errorf("subscribe to %q: not authorized", filter)
	}
	return func() {}, nil
}

func (b *refusingBus) times(filter string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked[filter]
}

// TestRefusedSubscriptionSaidOnce: a subscription the Bus refuses (an
// upstream ACL: --history-topics a replica's user may not read) is asked
// again every retryRefused, and said once at WARN, not at each retry; once
// the Bus accepts it, that is said too (at INFO), and a later refusal is
// said again.
func TestRefusedSubscriptionSaidOnce(t *testing.T) {
	defer func(d time.Duration) { retryRefused = d }(retryRefused)
	retryRefused = 10 * time.Millisecond
	bus := &refusingBus{refuse: map[string]bool{"secret/#": true}, asked: map[string]int{}}
	var logs syncLog
	h, err := New(bus, Config{SubscribeOnDemand: true, KeepSubscribed: []string{"plant/#", "secret/#"},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close(context.Background()) }()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return bus.times("secret/#") >= 5 }, "secret/# not asked again every %v", retryRefused)
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "filter=secret/#") {
		t.Fatalf("the refusal said %d times at WARN, want once:\n%s", n, logs.String())
	}
	if bus.times("plant/#") != 1 {
		t.Errorf("plant/# asked %d times, want once: the rest is served", bus.times("plant/#"))
	}
	bus.mu.Lock()
	bus.refuse["secret/#"] = false
	bus.mu.Unlock()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(logs.String(), "accepted by the bus now") }, "the acceptance of secret/# not said")
	if n := strings.Count(logs.String(), "accepted by the bus now"); n != 1 {
		t.Fatalf("the acceptance said %d times, want once:\n%s", n, logs.String())
	}
}

// syncLog is a log buffer safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
