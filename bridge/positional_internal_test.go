package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// appendSeqs appends one entry per seq, in order, at `at`.
func appendSeqs(l *eventLog, at time.Time, seqs ...uint64) {
	for _, s := range seqs {
		l.append(logEntry{seq: s, topic: "t", payload: fmt.Appendf(nil, "%d", s), time: at})
	}
}

func seqsOf(entries []logEntry) []uint64 {
	var out []uint64
	for _, e := range entries {
		out = append(out, e.seq)
	}
	return out
}

// TestEventLogWithSkippingSeqs: a positional hub's log holds increasing
// seqs with gaps between them; reads start after any seq (held or not),
// stop below `before` and at max, and the bounds still evict the oldest.
func TestEventLogWithSkippingSeqs(t *testing.T) {
	now := time.Now()
	l := newEventLog(4, 1<<20, time.Hour)
	appendSeqs(l, now, 10, 12, 15, 40)
	for _, c := range []struct {
		after, before uint64
		max           int
		want          string
	}{
		{0, 100, 100, "[10 12 15 40]"},
		{10, 100, 100, "[12 15 40]"},
		{11, 100, 100, "[12 15 40]"},
		{12, 40, 100, "[15]"},
		{13, 100, 2, "[15 40]"},
		{40, 100, 100, "[]"},
		{99, 200, 100, "[]"},
	} {
		got, err := l.read(nil, c.after, c.before, c.max)
		if err != nil || fmt.Sprint(seqsOf(got)) != c.want {
			t.Errorf("read(after %d, before %d, max %d) = %v, %v; want %s", c.after, c.before, c.max, seqsOf(got), err, c.want)
		}
	}
	for _, seq := range []uint64{0, 9, 11, 40, 41} {
		if !l.covers(seq, now) {
			t.Errorf("covers(%d) = false: nothing was evicted", seq)
		}
	}

	appendSeqs(l, now, 41, 50) // the ring holds 4: 10 and 12 go
	if got, err := l.read(nil, 12, 100, 100); err != nil || fmt.Sprint(seqsOf(got)) != "[15 40 41 50]" {
		t.Fatalf("read after 12 (the last evicted) = %v, %v; want [15 40 41 50]", seqsOf(got), err)
	}
	if _, err := l.read(nil, 11, 100, 100); !errors.Is(err, errGone) {
		t.Fatalf("read after 11 (12 evicted) = %v, want errGone", err)
	}
	if l.covers(11, now) || !l.covers(12, now) || !l.covers(13, now) {
		t.Fatal("covers disagrees with what the log holds after eviction")
	}
	if l.n != len(l.ring) {
		t.Fatalf("the log holds %d entries, bound %d", l.n, len(l.ring))
	}
	// Age: the entry after 40 (41) is too old to resume from.
	if l.covers(40, now.Add(2*time.Hour)) {
		t.Fatal("covers an id whose next event is older than maxAge")
	}
}

// positionalHub is a hub numbering by positions, with epoch "s.1".
func positionalHub(t *testing.T, cfg Config) *Hub {
	cfg.Epoch, cfg.Positional = "s.1", true
	return newTestHub(t, cfg)
}

func deliverAt(h *Hub, topic string, pos uint64) {
	h.deliver(Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", pos), Position: pos})
}

// TestPositionalNumbering: events are numbered by their positions, shared
// ids; a position not above the last is dropped and counted, never
// numbered twice.
func TestPositionalNumbering(t *testing.T) {
	h := positionalHub(t, Config{})
	c := attachTest(t, h, "", "#")
	configureIDs(t, h, c)
	deliverAt(h, "a", 5)
	deliverAt(h, "a", 5) // the same position again
	deliverAt(h, "b", 3) // behind
	h.deliver(Message{Topic: "b", Payload: []byte("0")})
	deliverAt(h, "b", 9)
	got := strings.Join(drain(c), "")
	want := `["a",5,{"id":"s.1-5"}]` + "\n" + `["b",9,{"id":"s.1-9"}]` + "\n"
	if got != want {
		t.Fatalf("client got\n%s\nwant\n%s", got, want)
	}
	if s := h.Stats(); s.StalePositions != 3 || s.Received != 2 {
		t.Fatalf("stale positions %d, received %d; want 3 and 2", s.StalePositions, s.Received)
	}
	if h.Epoch() != "s.1" {
		t.Fatalf("epoch %q, want the configured s.1", h.Epoch())
	}
}

// configureIDs makes c's lines carry event ids.
func configureIDs(t *testing.T, h *Hub, c *client) {
	t.Helper()
	if err := h.configure(context.Background(), c, []byte(`{"subscribe":["#"],"ids":true}`)); err != nil {
		t.Fatal(err)
	}
	drain(c)
}

// TestPositionalResumeReplaysAcrossSkips: a client resuming from an id in
// a log whose seqs skip gets exactly the events after it.
func TestPositionalResumeReplaysAcrossSkips(t *testing.T) {
	h := positionalHub(t, Config{})
	for _, p := range []uint64{4, 7, 8, 20, 31} {
		deliverAt(h, "t", p)
	}
	c := attachTest(t, h, "", "#")
	if err := h.configure(context.Background(), c, []byte(`{"subscribe":["#"],"ids":true,"since":"s.1-7"}`)); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := h.drain(c, &drainer{}, func(lines [][]byte) error {
		for _, l := range lines {
			got = append(got, string(l))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(got, "")
	if !strings.Contains(all, `"id":"s.1-7"`) || strings.Contains(all, "resync") ||
		!strings.HasSuffix(all, `["t",8,{"id":"s.1-8"}]`+"\n"+`["t",20,{"id":"s.1-20"}]`+"\n"+`["t",31,{"id":"s.1-31"}]`+"\n") {
		t.Fatalf("resume after s.1-7 wrote\n%s", all)
	}
}

// TestPositionalResumeAheadWaits: an id ahead of the hub (from a replica
// further along) waits for the hub to get there and resumes; past the
// bound it resyncs as unknown.
func TestPositionalResumeAheadWaits(t *testing.T) {
	h := positionalHub(t, Config{AheadWait: time.Minute})
	deliverAt(h, "t", 5)
	type point struct {
		after  uint64
		resync ResyncNotice
	}
	res := make(chan point, 1)
	go func() {
		after, resync := h.fan.resumePoint("s.1-8", "", []string{"#"})
		res <- point{after, resync}
	}()
	hubtest.Eventually(t, 5*time.Second, func() bool { return h.Stats().AheadWaits == 1 }, "the resume waits for the id ahead")
	deliverAt(h, "t", 6)
	select {
	case p := <-res:
		t.Fatalf("resumed at %+v before the hub reached the id", p)
	default:
	}
	deliverAt(h, "t", 8)
	select {
	case p := <-res:
		if p.after != 8 || p.resync.Code != "" {
			t.Fatalf("resumed after %d with %+v; want after 8, no resync", p.after, p.resync)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the resume did not go on once the hub reached the id")
	}

	short := positionalHub(t, Config{AheadWait: 20 * time.Millisecond})
	deliverAt(short, "t", 5)
	if after, resync := short.fan.resumePoint("s.1-9", "", []string{"#"}); resync.Code != ResyncUnknownID || after != 5 {
		t.Fatalf("an id still ahead after the wait: after %d, %+v; want unknown-id from 5", after, resync)
	}
}

// TestPositionalResumeRefusesWhatItCannotProve: another stream's id, one
// before a hole or before the start's snapshot, resync; one after resumes.
func TestPositionalResumeRefusesWhatItCannotProve(t *testing.T) {
	h := positionalHub(t, Config{})
	h.ResyncFrom(10, ResyncNotice{Code: ResyncBrokerConnected, Reason: "snapshot"}) // the start: last values up to 10
	deliverAt(h, "a", 4)                                                            // the snapshot's
	deliverAt(h, "b", 10)
	deliverAt(h, "a", 11)
	deliverAt(h, "a", 12)
	h.ResyncFrom(19, ResyncNotice{Code: ResyncBrokerGap, Reason: "hole"}) // 13..19 left the stream before this replica read them
	deliverAt(h, "a", 20)
	for _, c := range []struct {
		id   string
		code string
		from uint64
	}{
		{"s.0-12", ResyncRestarted, 20}, // a recreated stream
		{"x.1-12", ResyncRestarted, 20},
		{"s.1-4", ResyncBrokerGap, 20},  // inside the snapshot
		{"s.1-10", ResyncBrokerGap, 20}, // every message after 10 came, but 13..19 did not
		{"s.1-12", ResyncBrokerGap, 20}, // before the hole
		{"s.1-15", ResyncBrokerGap, 20}, // inside it
		{"s.1-19", "", 19},              // another replica had up to 19: this one has all after
		{"s.1-20", "", 20},
	} {
		after, resync := h.fan.resumePoint(c.id, "", []string{"#"})
		if resync.Code != c.code || after != c.from {
			t.Errorf("resume from %s: after %d, %q; want after %d, %q", c.id, after, resync.Code, c.from, c.code)
		}
	}
	// The floor never goes down: a plain resync now keeps it at 20.
	h.Resync(ResyncNotice{Code: ResyncBrokerGap})
	if _, resync := h.fan.resumePoint("s.1-19", "", []string{"#"}); resync.Code != ResyncBrokerGap {
		t.Fatalf("after Resync at 20, s.1-19 resumes (%+v)", resync)
	}
}

// TestPositionalConfigChecked: a bad epoch, and Restore with Positional,
// are refused by New.
func TestPositionalConfigChecked(t *testing.T) {
	for _, epoch := range []string{"has space", "quote\"", "line\n", strings.Repeat("e", 129)} {
		if _, err := New(nopBus{}, Config{Epoch: epoch}); err == nil {
			t.Errorf("epoch %q accepted", epoch)
		}
	}
	if _, err := New(nopBus{}, Config{Positional: true, Restore: &Restored{}}); err == nil {
		t.Error("Positional with Restore accepted")
	}
}
