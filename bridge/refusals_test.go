package bridge_test

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/refusals"
)

// refusalLog is a refusals.Log writing to a buffer, with room for every
// line of a test (its clients all come from 127.0.0.1).
func refusalLog(t *testing.T) (*refusals.Log, *hubtest.LogBuffer) {
	logs := &hubtest.LogBuffer{}
	l := refusals.New(refusals.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), PerAddress: 100})
	t.Cleanup(l.Close)
	return l, logs
}

// TestRefusedSessionsAreLogged: a page of another origin and a session
// past the limit of its address, over WebSocket and SSE, are each one WARN
// line that names the door, the address, the status and why.
func TestRefusedSessionsAreLogged(t *testing.T) {
	refused, logs := refusalLog(t)
	h := startRealHub(t, bridge.Config{Refusals: refused, MaxSessionsPerAddress: 1})
	expect := func(what, pattern string) {
		t.Helper()
		re := regexp.MustCompile(`(?m)^time=\S+ level=WARN msg=refused ` + pattern + `$`)
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return re.MatchString(logs.String()) },
			"%s: no line matching %s in\n%s", what, re, logs)
		if n := strings.Count(logs.String(), "msg=refused"); n != 1 {
			t.Fatalf("%s: %d lines, want 1:\n%s", what, n, logs)
		}
		logs.Reset()
	}

	_, resp, err := websocket.DefaultDialer.Dial(h.URL, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %v, want 403", err)
	}
	expect("cross-origin WebSocket", `door=websocket remote=127\.0\.0\.1:\d+ `+
		`reason="pages from https://evil.example may not use this hub \(see --allow-origin\)" status=403`)

	first := hubtest.DialWS(t, h.URL, nil)
	first.Send(`["clown.talk/-/config/set", {}]`)
	first.Expect("clown.talk/-/config/ok")
	_, resp, err = websocket.DefaultDialer.Dial(h.URL, nil)
	if err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second WebSocket from the address: %v, want 429", err)
	}
	expect("a second WebSocket", `door=websocket remote=127\.0\.0\.1:\d+ reason=".+" status=429`)

	req, _ := http.NewRequest(http.MethodGet, h.HTTP+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	expect("an event stream", `door=sse remote=127\.0\.0\.1:\d+ reason=".+" status=429`)
}

// TestSlowCutOffIsLogged: a browser cut off as slow (4008) is a WARN line
// that names the door, the address and the reason.
func TestSlowCutOffIsLogged(t *testing.T) {
	refused, logs := refusalLog(t)
	// A write that blocks is cut as failed after WriteTimeout: 2 s leaves
	// the queue's overflow (16 more messages) time to cut the session
	// first, however slowly a loaded machine runs the publisher (200 ms did
	// not, in CI). The line is logged once the close frame is written or
	// given up, within WriteTimeout.
	h := startRealHub(t, bridge.Config{Refusals: refused, QueueMessages: 64, QueueBytes: 64 << 10,
		WriteTimeout: 2 * time.Second})
	stalled, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": ["feed"]}]`)); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`"` + strings.Repeat("x", 4000) + `"`)
	for i := 0; h.Hub.Stats().SlowDisconnects == 0 && i < 100000; i++ {
		if err := h.Broker.Publish(context.Background(), bridge.Message{Topic: "feed", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	re := regexp.MustCompile(`level=WARN msg="cut off" door=websocket remote=127\.0\.0\.1:\d+ reason=slow session=\w+ close_code=4008`)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return re.MatchString(logs.String()) },
		"no line matching %s in\n%s", re, logs)
}
