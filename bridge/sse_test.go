package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

func (h *realHub) publish(t testing.TB, topic, payload string) {
	t.Helper()
	if err := h.Broker.Publish(context.Background(), bridge.Message{Topic: topic, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}

// start reads the stream's retry line and its starting id event.
func startOf(t *testing.T, s *hubtest.SSE) (retry, id string) {
	t.Helper()
	for retry == "" || id == "" {
		ev, err := s.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("stream start: %v", err)
		}
		switch {
		case ev.Retry != "":
			retry = ev.Retry
		case ev.HasID && ev.Data == "":
			id = ev.ID
		case ev.Comment != "":
		default:
			t.Fatalf("stream start: unexpected %+v", ev)
		}
	}
	return retry, id
}

func header(k, v string) http.Header { return http.Header{k: {v}} }

func TestSSEStream(t *testing.T) {
	h := startRealHub(t, bridge.Config{KeepAlive: 50 * time.Millisecond, SSERetry: 1500 * time.Millisecond})
	s := hubtest.DialSSE(t, h.HTTP+"/events?filter=a/%23&filter=c", nil)
	for k, want := range map[string]string{"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Content-Type": "text/event-stream; charset=utf-8"} {
		if got := s.Resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	retry, start := startOf(t, s)
	epoch := h.Hub.Epoch()
	if retry != "1500" || !strings.HasPrefix(start, epoch+"-") {
		t.Fatalf("stream starts with retry %q and id %q; want 1500 and an id of epoch %s", retry, start, epoch)
	}

	for i, topic := range []string{"a/1", "b/1", "c", "a"} {
		h.publish(t, topic, strconv.Itoa(i))
	}
	last := start
	for _, want := range []string{`["a/1",0]`, `["c",2]`, `["a",3]`} {
		ev := s.NextMessage(t)
		if ev.Data != want || ev.Event != "" {
			t.Fatalf("got event %q data %s, want data %s", ev.Event, ev.Data, want)
		}
		if seq(t, ev.ID) <= seq(t, last) {
			t.Fatalf("id %s after %s", ev.ID, last)
		}
		last = ev.ID
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		ev, err := s.Next(time.Second)
		return err == nil && ev.Comment == "keep-alive"
	}, "no keep-alive comment")

	mounted := hubtest.DialSSE(t, h.HTTP+"/events/nodes/x", nil)
	startOf(t, mounted)
	h.publish(t, "nodes/y/t", "1")
	h.publish(t, "nodes/x/t", "2")
	if ev := mounted.NextMessage(t); ev.Data != `["t",2]` {
		t.Fatalf("mounted stream got %s", ev.Data)
	}
}

func seq(t testing.TB, id string) int {
	t.Helper()
	i := strings.LastIndexByte(id, '-')
	n, err := strconv.Atoi(id[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("event id %q is not <epoch>-<seq>", id)
	}
	return n
}

func TestSSEBadRequests(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for path, want := range map[string]string{
		"/events?filter=a/%23/b": `"code":"bad-topic"`,
		"/events?filter=":        `"code":"bad-topic"`,
		"/events/a/+/b":          `"code":"bad-topic"`,
		"/events?lastEventId=" + strings.Repeat("x", 200): `"code":"bad-request"`,
		"/events?devices=yes":                             `"code":"bad-request"`,
	} {
		resp, err := client.Get(h.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body[:n]), want) {
			t.Errorf("GET %s = %d %s, want 400 with %s", path, resp.StatusCode, body[:n], want)
		}
	}
}

// TestSSEResumeReplaysExactlyWhatWasMissed: after a drop, a client that sends
// its last id gets exactly the messages it missed, in order, then live ones.
func TestSSEResumeReplaysExactlyWhatWasMissed(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	s1, err := hubtest.TryDialSSE(h.HTTP+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, start := startOf(t, s1)
	for i := 1; i <= 5; i++ {
		h.publish(t, "m", strconv.Itoa(i))
	}
	var last string
	for i := 1; i <= 5; i++ {
		last = s1.NextMessage(t).ID
	}
	s1.Close()

	for i := 6; i <= 15; i++ {
		h.publish(t, "m", strconv.Itoa(i))
	}
	for _, resume := range []struct {
		name   string
		url    string
		header http.Header
		from   int
	}{
		{"Last-Event-ID header", "/events", header("Last-Event-ID", last), 6},
		{"lastEventId query", "/events?lastEventId=" + last, nil, 6},
		{"the header wins over a stale query", "/events?lastEventId=" + start, header("Last-Event-ID", last), 6},
		{"from the starting id", "/events?lastEventId=" + start, nil, 1},
	} {
		s := hubtest.DialSSE(t, h.HTTP+resume.url, resume.header)
		prev := 0
		for i := resume.from; i <= 15; i++ {
			ev := s.NextMessage(t)
			if ev.Data != fmt.Sprintf(`["m",%d]`, i) || (prev != 0 && seq(t, ev.ID) != prev+1) {
				t.Fatalf("%s: got %s (id %s), want message %d with the next id", resume.name, ev.Data, ev.ID, i)
			}
			prev = seq(t, ev.ID)
		}
		s.Close()
	}

	s := hubtest.DialSSE(t, h.HTTP+"/events", header("Last-Event-ID", last))
	for i := 6; i <= 15; i++ {
		s.NextMessage(t)
	}
	h.publish(t, "m", "16")
	if ev := s.NextMessage(t); ev.Data != `["m",16]` {
		t.Fatalf("after the replay, live message %s", ev.Data)
	}
}

// TestSSEResync: an id the hub cannot resume from gets "event: resync" with
// the reason and its code, then the last values, then the id they are
// current at.
func TestSSEResync(t *testing.T) {
	h := startRealHub(t, bridge.Config{LogEntries: 8})
	h.publish(t, "state/b", `"bee"`)
	h.publish(t, "state/a", `1`)
	epoch := h.Hub.Epoch()

	s := hubtest.DialSSE(t, h.HTTP+"/events?filter=state/%23", header("Last-Event-ID", "0123abcd-1"))
	check := func(s *hubtest.SSE, code, reason string, values []string) {
		t.Helper()
		startOf := func() { // skip the retry line
			if ev, err := s.Next(hubtest.Timeout); err != nil || ev.Retry == "" {
				t.Fatalf("stream start %+v %v", ev, err)
			}
		}
		startOf()
		ev, err := s.Next(hubtest.Timeout)
		var notice bridge.ResyncNotice
		if err != nil || ev.Event != "resync" || json.Unmarshal([]byte(ev.Data), &notice) != nil || !strings.Contains(notice.Reason, reason) || notice.Code != code {
			t.Fatalf("want event resync %s with a reason about %q, got %+v %v", code, reason, ev, err)
		}
		for _, want := range values {
			if ev, err := s.Next(hubtest.Timeout); err != nil || ev.Data != want || ev.HasID {
				t.Fatalf("want last value %s without an id, got %+v %v", want, ev, err)
			}
		}
		if ev, err := s.Next(hubtest.Timeout); err != nil || !ev.HasID || ev.Data != "" || !strings.HasPrefix(ev.ID, epoch+"-") {
			t.Fatalf("want an id-only event after the values, got %+v %v", ev, err)
		}
	}
	values := []string{`["state/a",1]`, `["state/b","bee"]`}
	check(s, bridge.ResyncRestarted, "epoch", values)
	check(hubtest.DialSSE(t, h.HTTP+"/events?filter=state/%23", header("Last-Event-ID", "garbage")), bridge.ResyncInvalidID, "invalid", values)
	check(hubtest.DialSSE(t, h.HTTP+"/events?filter=state/%23", header("Last-Event-ID", epoch+"-999")), bridge.ResyncUnknownID, "unknown", values)

	for i := range 20 {
		h.publish(t, "noise", strconv.Itoa(i))
	}
	check(hubtest.DialSSE(t, h.HTTP+"/events?filter=state/%23", header("Last-Event-ID", epoch+"-1")), bridge.ResyncTooOld, "too old", values)
}

// TestResumeSeamUnderConcurrentPublishing: while thousands of messages are
// published, a client drops and resumes again and again, at random points.
// It ends with every message exactly once and in order: nothing lost or
// repeated at the seam between replay and live.
func TestResumeSeamUnderConcurrentPublishing(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 512})
	const n = 5000
	first := hubtest.DialSSE(t, h.HTTP+"/events?filter=seq", nil)
	_, last := startOf(t, first)
	first.Close()

	// The publisher keeps at most 200 messages ahead of the reader, so that
	// every reconnect happens while it publishes.
	var progress atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	published := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			for int64(i) > progress.Load()+200 {
				select {
				case <-stop:
					published <- errors.New("the reader gave up")
					return
				default:
					runtime.Gosched()
				}
			}
			if err := h.Broker.Publish(context.Background(), bridge.Message{Topic: "seq", Payload: strconv.AppendInt(nil, int64(i), 10)}); err != nil {
				published <- err
				return
			}
			if i%500 == 0 {
				h.publish(t, "other", "x") // not in the filter: ids have gaps for this client
			}
		}
		published <- nil
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	var got []int
	reconnects, duringPublishing := 0, 0
	for len(got) < n && reconnects < 2000 {
		reconnects++
		if progress.Load() < n-200 {
			duringPublishing++
		}
		s, err := hubtest.TryDialSSE(h.HTTP+"/events?filter=seq", header("Last-Event-ID", last))
		if err != nil {
			t.Fatal(err)
		}
		for take := 1 + rng.IntN(300); take > 0 && len(got) < n; {
			ev, err := s.Next(hubtest.Timeout)
			if err != nil {
				break // the hub may end a stream it found slow; the client resumes
			}
			if ev.HasID {
				last = ev.ID
			}
			if ev.Data == "" || ev.Event != "" {
				continue
			}
			var msg [2]json.RawMessage
			if err := json.Unmarshal([]byte(ev.Data), &msg); err != nil {
				t.Fatalf("data %q: %v", ev.Data, err)
			}
			v, _ := strconv.Atoi(string(msg[1]))
			got = append(got, v)
			progress.Store(int64(len(got)))
			take--
		}
		s.Close()
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("after %d reconnects, message %d is %d (got %d of %d): lost or repeated at a seam", reconnects, i+1, v, len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d of %d messages in %d connections", len(got), n, reconnects)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if duringPublishing < reconnects/2 {
		t.Fatalf("only %d of %d reconnects happened while publishing: the seam was not exercised", duringPublishing, reconnects)
	}
	t.Logf("%d messages, %d connections (%d while publishing), %d slow disconnects: none lost or repeated",
		n, reconnects, duringPublishing, h.Hub.Stats().SlowDisconnects)
}

// TestSlowSSEClientIsCutOff: an SSE client that stops reading is disconnected
// as slow; another stream on the same topic gets everything.
func TestSlowSSEClientIsCutOff(t *testing.T) {
	// A stalled stream's writer sits in a write until the write timeout.
	h := startRealHub(t, bridge.Config{QueueMessages: 128, QueueBytes: 256 << 10, WriteTimeout: time.Second})
	healthy := hubtest.DialSSE(t, h.HTTP+"/events?filter=feed", nil)
	startOf(t, healthy)

	stalled, err := net.Dial("tcp", strings.TrimPrefix(h.HTTP, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := fmt.Fprintf(stalled, "GET /events?filter=feed HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 2 }, "stalled stream did not start")

	payload := strings.Repeat("x", 4000)
	sent := 0
	for h.Hub.Stats().SlowDisconnects == 0 && sent < 20000 {
		for range 32 {
			sent++
			h.publish(t, "feed", fmt.Sprintf(`{"n":%d,"pad":"%s"}`, sent, payload))
		}
		for i := sent - 31; i <= sent; i++ {
			if ev := healthy.NextMessage(t); !strings.Contains(ev.Data, fmt.Sprintf(`{"n":%d,`, i)) {
				t.Fatalf("healthy stream: got %.30s…, want message %d", ev.Data, i)
			}
		}
	}
	if h.Hub.Stats().SlowDisconnects != 1 {
		t.Fatalf("after %d messages: %d slow disconnects, want 1", sent, h.Hub.Stats().SlowDisconnects)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 }, "the slow stream was not ended")
	h.publish(t, "feed", `{"n":"after"}`)
	if ev := healthy.NextMessage(t); ev.Data != `["feed",{"n":"after"}]` {
		t.Fatalf("healthy stream after the cut: %s", ev.Data)
	}
}

// TestWebSocketResume: config/set {"since": id} replays exactly what was
// missed; ids and state/get work; an unusable id gets a resync.
func TestWebSocketResume(t *testing.T) {
	h := startRealHub(t, bridge.Config{HelloTimeout: 100 * time.Millisecond})
	idOf := func(f hubtest.Frame) string {
		var m struct{ ID string }
		if err := json.Unmarshal(f.Meta, &m); err != nil || m.ID == "" {
			t.Fatalf("frame without an id: %s %s %s", f.Topic, f.Payload, f.Meta)
		}
		return m.ID
	}

	ws1 := hubtest.DialWS(t, h.URL, nil)
	ws1.Send(`["clown.talk/-/config/set", {"ids": true, "subscribe": ["m"]}]`)
	ws1.Expect("clown.talk/-/config/ok")
	for i := 1; i <= 3; i++ {
		h.publish(t, "m", strconv.Itoa(i))
	}
	var last string
	for range 3 {
		last = idOf(hubtest.ParseFrame(t, ws1.ReadLine()))
	}
	_ = ws1.Conn.Close()
	for i := 4; i <= 7; i++ {
		h.publish(t, "m", strconv.Itoa(i))
	}

	ws2 := hubtest.DialWS(t, h.URL, nil)
	ws2.Send(`["clown.talk/-/config/set", {"ids": true, "subscribe": ["m"], "since": "` + last + `"}]`)
	ok := hubtest.ParseFrame(t, ws2.ReadLine())
	if ok.Topic != "clown.talk/-/config/ok" || !strings.Contains(string(ok.Payload), `"id":"`+last+`"`) {
		t.Fatalf("first frame %s %s, want config/ok with id %s", ok.Topic, ok.Payload, last)
	}
	for i := 4; i <= 7; i++ {
		if f := hubtest.ParseFrame(t, ws2.ReadLine()); f.Topic != "m" || string(f.Payload) != strconv.Itoa(i) {
			t.Fatalf("replay: got %s %s, want m %d", f.Topic, f.Payload, i)
		}
	}
	h.publish(t, "m", "8")
	if f := hubtest.ParseFrame(t, ws2.ReadLine()); string(f.Payload) != "8" {
		t.Fatalf("live after replay: %s", f.Payload)
	}

	// state/get: the last values, at the live stream's position.
	h.publish(t, "x/b", `"b"`)
	h.publish(t, "x/a", `{"on":true}`)
	ws2.Send(`["clown.talk/-/state/get", {"filter": "x/#"}]`)
	state := ws2.Expect("clown.talk/-/state/ok")
	var st struct {
		ID     string
		Values [][3]json.RawMessage
	}
	if err := json.Unmarshal(state.Payload, &st); err != nil || len(st.Values) != 2 ||
		string(st.Values[0][0]) != `"x/a"` || string(st.Values[0][1]) != `{"on":true}` || string(st.Values[1][0]) != `"x/b"` {
		t.Fatalf("state/ok %s", state.Payload)
	}

	// An unusable id: config/ok, then resync with the reason, then the values.
	ws3 := hubtest.DialWS(t, h.URL, nil)
	ws3.Send(`["clown.talk/-/config/set", {"subscribe": ["x/#"], "since": "feedface-3"}]`)
	for _, want := range []string{"clown.talk/-/config/ok", "clown.talk/-/resync", "clown.talk/-/state/ok"} {
		if f := hubtest.ParseFrame(t, ws3.ReadLine()); f.Topic != want {
			t.Fatalf("got %s %s, want %s", f.Topic, f.Payload, want)
		}
	}
}

// TestWebSocketStartLosesNothing: what is published between the handshake
// and the client's config/set (or, for a client that never sends one, the
// hello timeout) arrives after config/ok, once.
func TestWebSocketStartLosesNothing(t *testing.T) {
	h := startRealHub(t, bridge.Config{HelloTimeout: 100 * time.Millisecond})
	configured := hubtest.DialWS(t, h.URL, nil)
	passive := hubtest.DialWS(t, h.URL, nil)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 2 }, "sessions did not open")
	h.publish(t, "early", "1")
	h.publish(t, "early", "2")
	configured.Send(`["clown.talk/-/config/set", {}]`)
	for _, want := range []string{"clown.talk/-/config/ok", `["early",1]`, `["early",2]`} {
		line := configured.ReadLine()
		if !strings.HasPrefix(line, `["`+want+`"`) && line != want {
			t.Fatalf("configured client: got %s, want %s", line, want)
		}
	}
	for _, want := range []string{`["early",1]`, `["early",2]`} {
		if got := passive.ReadLine(); got != want {
			t.Fatalf("passive client: got %s, want %s", got, want)
		}
	}
}

// TestLongPollMatchesSSE: under the same load, the long poll yields the same
// sequence of messages as an SSE stream, with nothing lost or repeated.
func TestLongPollMatchesSSE(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	const n = 2000
	s := hubtest.DialSSE(t, h.HTTP+"/events?filter=load/%23", nil)
	_, start := startOf(t, s)

	type result struct {
		seqs []string
		err  error
	}
	polled := make(chan result, 1)
	go func() {
		var r result
		since := start
		for len(r.seqs) < n {
			res, err := h.Hub.Poll(context.Background(), auth.Anonymous, "", bridge.StreamQuery{Filters: []string{"load/#"}, Since: since}, 5*time.Second)
			if err != nil || res.Resync != nil {
				r.err = fmt.Errorf("poll after %s: %v %+v", since, err, res.Resync)
				break
			}
			for _, m := range res.Messages {
				var parts [3]json.RawMessage
				_ = json.Unmarshal(m, &parts)
				r.seqs = append(r.seqs, string(parts[0])+string(parts[1]))
			}
			since = res.ID
		}
		polled <- r
	}()
	for i := range n {
		h.publish(t, "load/"+strconv.Itoa(i%7), strconv.Itoa(i))
		if i%100 == 0 {
			h.publish(t, "elsewhere", "0")
		}
	}
	var streamed []string
	for range n {
		var parts [2]json.RawMessage
		_ = json.Unmarshal([]byte(s.NextMessage(t).Data), &parts)
		streamed = append(streamed, string(parts[0])+string(parts[1]))
	}
	r := <-polled
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !slices.Equal(r.seqs, streamed) {
		t.Fatalf("long poll and SSE differ: %d vs %d messages", len(r.seqs), len(streamed))
	}
}
