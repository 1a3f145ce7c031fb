package bridge

import (
	"errors"
	"fmt"
	"github.com/motehub/motehub/auth"
	"strings"
	"testing"
	"time"
)

func appendN(l *eventLog, from, to int, payload string, at time.Time) {
	for i := from; i <= to; i++ {
		l.append(logEntry{seq: uint64(i), topic: "t", payload: []byte(payload), time: at})
	}
}

func TestEventLogBoundedInEntries(t *testing.T) {
	l := newEventLog(4, 1<<20, time.Hour)
	now := time.Now()
	appendN(l, 1, 10, "1", now)
	got, err := l.read(nil, 6, 100, 100)
	if err != nil || len(got) != 4 || got[0].seq != 7 || got[3].seq != 10 {
		t.Fatalf("read after 6: %v %v", got, err)
	}
	if _, err := l.read(nil, 5, 100, 100); !errors.Is(err, errGone) {
		t.Fatalf("read after 5 (6 is evicted) = %v, want errGone", err)
	}
	if !l.covers(6, now) || l.covers(5, now) || !l.covers(10, now) {
		t.Fatal("covers disagrees with what the log holds")
	}
	if got, _ := l.read(nil, 6, 9, 100); len(got) != 2 {
		t.Fatalf("read stops below `before`: got %d entries", len(got))
	}
}

func TestEventLogBoundedInBytes(t *testing.T) {
	big := strings.Repeat("x", 1000)
	l := newEventLog(1000, 5*(1000+64+1), time.Hour)
	appendN(l, 1, 20, big, time.Now())
	if l.n > 5 || l.bytes > l.maxBytes {
		t.Fatalf("log holds %d entries, %d bytes; bound %d bytes", l.n, l.bytes, l.maxBytes)
	}
	if _, err := l.read(nil, 14, 100, 100); !errors.Is(err, errGone) {
		t.Fatal("entries evicted for bytes must be gone")
	}
}

func TestEventLogBoundedInAge(t *testing.T) {
	l := newEventLog(100, 1<<20, time.Minute)
	start := time.Now()
	appendN(l, 1, 3, "1", start)
	if l.covers(0, start.Add(2*time.Minute)) {
		t.Fatal("a client whose next event is over the age limit must not resume")
	}
	appendN(l, 4, 4, "1", start.Add(2*time.Minute)) // evicts the old ones
	if l.n != 1 || l.covers(2, start.Add(2*time.Minute)) {
		t.Fatalf("after an append two minutes later: %d entries, covers(2) %v", l.n, l.covers(2, start))
	}
}

func TestParseEventID(t *testing.T) {
	for id, want := range map[string]struct {
		epoch string
		seq   uint64
		ok    bool
	}{
		"abc123-42":                {"abc123", 42, true},
		"a-b-7":                    {"a-b", 7, true},
		"abc":                      {"", 0, false},
		"-5":                       {"", 0, false},
		"abc-":                     {"", 0, false},
		"abc-x":                    {"", 0, false},
		"abc--1":                   {"abc-", 1, true}, // matches no epoch: a resync
		"abc-99999999999999999999": {"", 0, false},
	} {
		epoch, seq, ok := parseEventID(id)
		if epoch != want.epoch || seq != want.seq || ok != want.ok {
			t.Errorf("parseEventID(%q) = %q %d %v", id, epoch, seq, ok)
		}
	}
}

func TestStateStoreBounds(t *testing.T) {
	s := newStateStore(3, 1<<20, 4)
	now := time.Now()
	for i, topic := range []string{"a", "b", "c", "a", "d"} { // d evicts b, the least recently updated
		s.update(topic, []byte(fmt.Sprint(i)), false, uint64(i), now)
	}
	var topics []string
	for _, v := range s.values("", []string{"#"}) {
		topics = append(topics, v.Topic+"="+string(v.Payload))
	}
	if got := strings.Join(topics, " "); got != "a=3 c=2 d=4" {
		t.Fatalf("last values %q, want a=3 c=2 d=4", got)
	}
	for i := range 10 {
		s.update("h", []byte(fmt.Sprint(i)), false, uint64(i), now)
	}
	var hist []string
	for _, sample := range s.samples("h", 0) {
		hist = append(hist, string(sample.Payload))
	}
	if got := strings.Join(hist, " "); got != "6 7 8 9" {
		t.Fatalf("history %q, want the last 4, oldest first", got)
	}
	s.clear("h", 99)
	if len(s.samples("h", 0)) != 0 || len(s.values("", []string{"h"})) != 0 {
		t.Fatal("a cleared topic keeps its values")
	}
	if vs := s.values("", []string{"+"}); len(vs) != 2 {
		t.Fatalf("values matching + = %v", vs)
	}
}

func TestEmptyRetainedMessageClearsLastValue(t *testing.T) {
	h := newTestHub(t, Config{})
	h.deliver(Message{Topic: "r", Payload: []byte("1"), Retain: true})
	h.deliver(Message{Topic: "e", Payload: nil}) // an empty message that is not retained is a value
	h.deliver(Message{Topic: "r", Payload: nil, Retain: true})
	st, err := h.State(t.Context(), auth.Anonymous, "", []string{"#"})
	values := st.Values
	if err != nil || len(values) != 1 || values[0].Topic != "e" || string(values[0].Payload) != `""` {
		t.Fatalf("state %v %v: want only e with an empty string", values, err)
	}
}

func TestStateMatches(t *testing.T) {
	for _, tt := range []struct {
		want, got string
		match     bool
	}{
		{`{"state":true}`, `{"state":true}`, true},
		{`{"state":true}`, `{"state": true, "time": 5}`, true},
		{`{"state":true}`, `{"state":false}`, false},
		{`{"state":true}`, `{"other":true}`, false},
		{`{"state":true}`, `true`, false},
		{`true`, `true`, true},
		{`true`, `false`, false},
		{`1`, `1.0`, true},
		{`{"rgb":{"r":1}}`, `{"rgb":{"r":1,"g":2}}`, true},
		{`[1,2]`, `[1,2,3]`, false},
		{`"on"`, `"on"`, true},
	} {
		if got := stateMatches([]byte(tt.want), []byte(tt.got)); got != tt.match {
			t.Errorf("stateMatches(%s, %s) = %v", tt.want, tt.got, got)
		}
	}
}

func TestDetachDropsPendingCommands(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	h.mu.Lock()
	c.ack = true
	h.mu.Unlock()
	cmd, err := h.expectAck(c, Incoming{Topic: "relay/r/set", Payload: []byte(`{"state":true}`)}, "relay/r/set")
	if err != nil || cmd == nil {
		t.Fatalf("expectAck = %v, %v", cmd, err)
	}
	h.detach(c)
	if len(h.acks.byID) != 0 || len(h.acks.byState) != 0 || cmd.timer.Stop() {
		t.Fatal("a departed client's command is still waiting, with its timer running")
	}
}
