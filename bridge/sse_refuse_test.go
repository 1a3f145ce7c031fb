package bridge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestSSERefusedByLimitSaysComeBackLater: an EventSource refused by a session
// limit (per address, or the whole hub) gets 200, a long retry: and
// "event: close" with the reason, then the end of the stream, so that it
// reconnects later instead of giving up for good (WHATWG: any other status
// fails the EventSource). Other requests still get the JSON error.
func TestSSERefusedByLimitSaysComeBackLater(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg    bridge.Config
		status int
		code   string
	}{
		"per address": {bridge.Config{MaxSessionsPerAddress: 2}, http.StatusTooManyRequests, "limit"},
		"hub full":    {bridge.Config{MaxSessions: 2}, http.StatusServiceUnavailable, "unavailable"},
	} {
		t.Run(name, func(t *testing.T) {
			h := startRealHub(t, tc.cfg)
			hubtest.DialSSE(t, h.HTTP+"/events", nil)
			hubtest.DialSSE(t, h.HTTP+"/events", nil)

			s := hubtest.DialSSE(t, h.HTTP+"/events", nil) // Accept: text/event-stream, as EventSource
			var retry string
			var closing hubtest.SSEEvent
			for closing.Event == "" {
				ev, err := s.Next(hubtest.Timeout)
				if err != nil {
					t.Fatalf("the refused stream: %v before its close event", err)
				}
				switch {
				case ev.Retry != "":
					retry = ev.Retry
				case ev.Event == "close":
					closing = ev
				case ev.HasID || ev.Data != "":
					t.Fatalf("the refused stream sent %+v", ev)
				}
			}
			if retry != "30000" {
				t.Errorf("retry: %q, want 30000 (Config.SSERefusedRetry)", retry)
			}
			var data struct {
				Reason  string `json:"reason"`
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(closing.Data), &data); err != nil || data.Reason != "try again later" ||
				data.Code != 1013 || !strings.HasPrefix(data.Message, tc.code+": ") {
				t.Errorf("event: close with %s (%v), want reason, code 1013 and the %s message", closing.Data, err, tc.code)
			}
			if ev, err := s.Next(hubtest.Timeout); err == nil {
				t.Errorf("the refused stream goes on: %+v", ev)
			}

			resp, err := http.Get(h.HTTP + "/events") // no Accept: a program, which reads the JSON error
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Errorf("without Accept: %d %s, want %d and the JSON error %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
}

// TestSSECloseEventSaysWhy: a stream the hub ends carries the reason and
// the close code in "event: close".
func TestSSECloseEventSaysWhy(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	s := hubtest.DialSSE(t, h.HTTP+"/events", nil)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 }, "the stream did not open")
	done := make(chan error, 1)
	go func() { done <- h.Hub.Close(t.Context()) }()
	deadline := time.Now().Add(hubtest.Timeout)
	for {
		ev, err := s.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("no close event: %v", err)
		}
		if ev.Event == "close" {
			if ev.Data != `{"reason":"going away","code":1001}` {
				t.Fatalf("event: close with %s", ev.Data)
			}
			break
		}
	}
	if err := hubtest.Receive(t, done, hubtest.Timeout, "the hub's close"); err != nil {
		t.Fatal(err)
	}
}
