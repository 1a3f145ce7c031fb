package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// latestTopics and latestRounds: a stalled reader on latestTopics topics,
// with a 4 KB socket receive buffer, is sent latestRounds messages on each,
// 4 KB apiece: 8 MB, more than the socket buffers and the queue (64
// messages) hold, so the queue overflows.
const (
	latestTopics = 20
	latestRounds = 100
)

// dialSlowWS dials a Clown.Talk WebSocket with a small socket receive
// buffer, so that what the hub writes to a client that stops reading soon
// stays in the hub's queue.
func dialSlowWS(t *testing.T, url string) *hubtest.WS {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: hubtest.Timeout, Subprotocols: []string{"clown.talk"},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_ = conn.(*net.TCPConn).SetReadBuffer(4096)
			}
			return conn, err
		}}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return hubtest.WrapWS(t, conn)
}

// latestMsg is a test message: its topic's round, padded.
type latestMsg struct {
	Round int    `json:"round"`
	Pad   string `json:"pad"`
}

// publishRounds publishes rounds [from, to] on every topic feed/0..feed/N-1,
// round by round, through the broker's inline client.
func publishRounds(t *testing.T, h *realHub, from, to int) {
	t.Helper()
	pad := strings.Repeat("x", 4000)
	for r := from; r <= to; r++ {
		for i := range latestTopics {
			p, _ := json.Marshal(latestMsg{Round: r, Pad: pad})
			if err := h.Broker.Publish(t.Context(), bridge.Message{Topic: fmt.Sprintf("feed/%d", i), Payload: p}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// idOf is the event id of a frame of a session with ids.
func idOf(t *testing.T, f hubtest.Frame) string {
	t.Helper()
	var meta struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(f.Meta, &meta); err != nil || meta.ID == "" {
		t.Fatalf("frame on %s has no id: %s", f.Topic, f.Meta)
	}
	return meta.ID
}

// TestLatestOverflowKeepsNewestOfEachTopic: a browser that asked for
// overflow "latest" and stops reading while 2,000 messages go by is not
// cut off: reading again, it gets what the sockets held and, each time its
// queue conflated, an overflow notice then the newest message of each topic
// (ids marked); never an older message of a topic after a newer one, and
// every topic's last. Resuming from a marked id is
// answered with a resync; from an ordinary id after it, without one.
func TestLatestOverflowKeepsNewestOfEachTopic(t *testing.T) {
	// The client stalls while the messages go by: more than the default
	// write timeout under the race detector.
	h := startRealHub(t, bridge.Config{QueueMessages: 64, QueueBytes: 1 << 20, WriteTimeout: time.Minute})
	ws := dialSlowWS(t, h.URL)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["feed/#"], "ids": true, "overflow": "latest"}]`)
	ok := ws.Expect("clown.talk/-/config/ok")
	if !strings.Contains(string(ok.Payload), `"overflow":"latest"`) {
		t.Fatalf("config/ok %s does not say overflow latest", ok.Payload)
	}

	publishRounds(t, h, 1, latestRounds) // the client reads nothing meanwhile
	if n := h.Hub.Stats().SlowDisconnects; n != 0 {
		t.Fatalf("%d slow disconnects, want none: the client asked for the latest values", n)
	}

	// Reading again (at full speed): every topic ends at its last round.
	_ = ws.Conn.NetConn().(*net.TCPConn).SetReadBuffer(1 << 20)
	last := map[string]int{}
	var notices, lines, marked int
	var markedID string
	for done := 0; done < latestTopics; {
		if lines++; lines > latestTopics*latestRounds {
			t.Fatalf("more lines than messages published")
		}
		f := hubtest.ParseFrame(t, ws.ReadLine())
		if f.Topic == "clown.talk/-/overflow" {
			notices++
			var n struct {
				Mode    string `json:"mode"`
				Dropped uint64 `json:"dropped"`
			}
			if err := json.Unmarshal(f.Payload, &n); err != nil || n.Mode != "latest" || n.Dropped == 0 {
				t.Fatalf("overflow notice %s, want mode latest and dropped > 0", f.Payload)
			}
			continue
		}
		var m latestMsg
		if err := json.Unmarshal(f.Payload, &m); err != nil {
			t.Fatalf("frame %s: %v", f.Payload, err)
		}
		if m.Round <= last[f.Topic] {
			t.Fatalf("%s: round %d after round %d", f.Topic, m.Round, last[f.Topic])
		}
		last[f.Topic] = m.Round
		if id := idOf(t, f); strings.HasSuffix(id, "~") {
			if notices == 0 {
				t.Fatalf("marked id %s before any overflow notice", id)
			}
			marked++
			markedID = id
		}
		if m.Round == latestRounds {
			done++
		}
	}
	if notices == 0 || marked == 0 {
		t.Fatalf("%d overflow notices and %d marked ids after %d lines, want some of each", notices, marked, lines)
	}
	if lines >= latestTopics*latestRounds/2 {
		t.Fatalf("%d lines of %d messages: the queue did not conflate", lines, latestTopics*latestRounds)
	}
	t.Logf("read %d lines of %d messages, %d conflated", lines, latestTopics*latestRounds, marked)

	// The stream goes on as usual: one more round, unmarked.
	publishRounds(t, h, latestRounds+1, latestRounds+1)
	var plainID string
	for range latestTopics {
		f := hubtest.ParseFrame(t, ws.ReadLine())
		if id := idOf(t, f); strings.HasSuffix(id, "~") {
			t.Fatalf("id %s marked after the conflated messages were written", id)
		} else {
			plainID = id
		}
	}

	// A resume from a marked id is not told it has no gap.
	again := hubtest.DialWS(t, h.URL, nil)
	again.Send(fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["feed/#"], "ids": true, "since": %q}]`, markedID))
	again.Expect("clown.talk/-/config/ok")
	resync := again.Expect("clown.talk/-/resync")
	if !strings.Contains(string(resync.Payload), `"code":"conflated"`) {
		t.Fatalf("resync reason %s does not say why", resync.Payload)
	}
	state := again.Expect("clown.talk/-/state/ok")
	for i := range latestTopics {
		if want := fmt.Sprintf(`"round":%d`, latestRounds+1); !strings.Contains(string(state.Payload), want) {
			t.Fatalf("the resync's values lack feed/%d at round %d", i, latestRounds+1)
		}
	}

	// A resume from an unmarked id after them is an ordinary one.
	third := hubtest.DialWS(t, h.URL, nil)
	third.Send(fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["feed/#"], "ids": true, "since": %q}]`, plainID))
	third.Expect("clown.talk/-/config/ok")
	publishRounds(t, h, latestRounds+2, latestRounds+2)
	if f := hubtest.ParseFrame(t, third.ReadLine()); f.Topic == "clown.talk/-/resync" {
		t.Fatalf("resume from %s answered with a resync: %s", plainID, f.Payload)
	}
}

// TestLatestOverflowTooManyTopicsIsSlow: when the distinct topics alone
// exceed the queue's bound, a client with overflow "latest" is cut off as
// slow like any other.
func TestLatestOverflowTooManyTopicsIsSlow(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 8})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["many/#"], "overflow": "latest"}]`)
	ws.Expect("clown.talk/-/config/ok")
	for i := range 10000 {
		if err := h.Broker.Publish(t.Context(), bridge.Message{Topic: fmt.Sprintf("many/%d", i), Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		if h.Hub.Stats().SlowDisconnects > 0 {
			break
		}
	}
	if h.Hub.Stats().SlowDisconnects != 1 {
		t.Fatal("10,000 distinct topics did not overflow a queue of 8")
	}
	var err error
	for range 10001 {
		if _, err = ws.TryReadLine(hubtest.Timeout); err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, 4008) {
		t.Fatalf("client saw %v, want close 4008 slow", err)
	}
}

// TestOverflowModeChecked: an unknown overflow mode is answered with an
// error frame (WebSocket) or a 400 (SSE), and the session goes on.
func TestOverflowModeChecked(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"overflow": "drop-oldest"}]`)
	e := ws.Expect("clown.talk/-/error")
	if !strings.Contains(string(e.Payload), "drop-oldest") {
		t.Fatalf("error %s does not name the mode", e.Payload)
	}
	ws.Send(`["clown.talk/-/config/set", {"overflow": "close"}]`)
	ws.Expect("clown.talk/-/config/ok")

	client := &http.Client{Timeout: hubtest.Timeout}
	resp, err := client.Get(h.HTTP + "/events?overflow=sometimes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("SSE with overflow=sometimes: %s, want 400", resp.Status)
	}
}
