package bridge

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/devices"
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
		s.update(topic, []byte(fmt.Sprint(i)), false, false, uint64(i), now)
	}
	var topics []string
	for _, v := range s.values("", []string{"#"}) {
		topics = append(topics, v.Topic+"="+string(v.Payload))
	}
	if got := strings.Join(topics, " "); got != "a=3 c=2 d=4" {
		t.Fatalf("last values %q, want a=3 c=2 d=4", got)
	}
	for i := range 10 {
		s.update("h", []byte(fmt.Sprint(i)), false, false, uint64(i), now)
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
	c.ack.Store(true)
	cmd, err := h.acks.expectFrom(c, Incoming{Topic: "relay/r/set", Payload: []byte(`{"state":true}`)}, "relay/r/set", devices.Confirm{}, false,
		func(string) bool { return true })
	if err != nil || cmd == nil {
		t.Fatalf("expectFrom = %v, %v", cmd, err)
	}
	h.detach(c)
	h.acks.mu.Lock()
	left := len(h.acks.byID) + len(h.acks.byState) + len(h.acks.perC)
	h.acks.mu.Unlock()
	if left != 0 || cmd.timer.Stop() {
		t.Fatal("a departed client's command is still waiting, with its timer running")
	}
}

// TestStateStoreBoundedInBytes: past the bytes bound, the topics updated
// least recently go first, values and history alike, and the store's count
// of its bytes is what it holds.
func TestStateStoreBoundedInBytes(t *testing.T) {
	payload := []byte(strings.Repeat("x", 1000))
	perTopic := len("t/0") + TopicOverhead + len(payload) + 4*(len(payload)+SampleOverhead) // the value and four samples
	s := newStateStore(1000, 3*perTopic, 4)
	now := time.Now()
	for i, topic := range []string{"t/0", "t/1", "t/2", "t/0", "t/3"} { // t/3 evicts t/1
		for range 4 {
			s.update(topic, payload, false, false, uint64(i), now)
		}
	}
	var kept []string
	for _, v := range s.values("", []string{"#"}) {
		kept = append(kept, v.Topic)
	}
	if got := strings.Join(kept, " "); got != "t/0 t/2 t/3" {
		t.Fatalf("kept %q, want t/0 t/2 t/3: t/1 was updated least recently", got)
	}
	if s.bytes != 3*perTopic || len(s.samples("t/0", 0)) != 4 {
		t.Fatalf("the store counts %d bytes, holds %d, and %d samples of t/0", s.bytes, 3*perTopic, len(s.samples("t/0", 0)))
	}
	s.update("t/2", []byte("1"), false, false, 9, now) // smaller: the samples it replaces no longer count
	if want := 3*perTopic - (len(payload) - 1) - (len(payload) - 1); s.bytes != want {
		t.Fatalf("after a smaller update the store counts %d bytes, want %d", s.bytes, want)
	}
	s.clear("t/0", 10)
	s.forget(func(topic string) bool { return topic == "t/2" })
	if len(s.topics) != 1 || len(s.all) != 1 || s.bytes != perTopic || s.newest != s.oldest {
		t.Fatalf("after clearing two of three: %d topics, %d values, %d bytes", len(s.topics), len(s.all), s.bytes)
	}
}

// TestStateMemoryBoundedAfter100kTopics: 100,000 distinct topics with 2 KB
// payloads (200 MB in all) leave the hub's heap grown by about its bounds
// (HistoryBytes, LogBytes, DeviceQueueBytes and the device model's), not
// by what went through.
func TestStateMemoryBoundedAfter100kTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 topics")
	}
	const historyBytes, logBytes, deviceQueueBytes, modelBytes = 8 << 20, 1 << 20, 1 << 20, 1 << 20
	h := newTestHub(t, Config{MaxTopics: 1 << 20, HistoryBytes: historyBytes, LogBytes: logBytes, DeviceQueueBytes: deviceQueueBytes,
		// The device model's bounds: its kept payloads, and 100 devices of a
		// 2 KB value each.
		Devices: devices.Config{MaxDevices: 100, MaxKeptBytes: modelBytes}})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	payload := strings.Repeat("y", 2000)
	for i := range 100000 {
		h.deliver(Message{Topic: fmt.Sprintf("dev/%d/v", i), Payload: []byte(payload)})
	}
	grown := int64(heap()) - int64(before)
	h.state.mu.RLock()
	topics, bytes := len(h.state.topics), h.state.bytes
	h.state.mu.RUnlock()
	if bytes > historyBytes || topics == 0 || topics == 100000 {
		t.Fatalf("the store holds %d topics in %d bytes, bound %d", topics, bytes, historyBytes)
	}
	if limit := int64(3 * (historyBytes + logBytes + deviceQueueBytes + modelBytes)); grown > limit {
		t.Fatalf("the heap grew by %d MB after 100,000 topics, more than %d MB", grown>>20, limit>>20)
	}
	t.Logf("kept %d topics in %d bytes; heap grew by %.1f MB after 200 MB of messages", topics, bytes, float64(grown)/(1<<20))
}
