package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

type testServer struct {
	URL    string
	Broker *broker.Embedded
	client *http.Client
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	ts, _ := startTestServer(t, broker.Config{}, bridge.Config{HistoryLength: 5}, Config{MaxBodyBytes: 1024})
	return ts
}

// startTestServer starts an embedded broker on loopback, a hub on it and
// the HTTP surface (with the broker for the admin view), each with its
// Config given (their loggers quiet), all stopped when the test ends; it
// returns the server and the hub.
func startTestServer(t testing.TB, bcfg broker.Config, hcfg bridge.Config, wcfg Config) (*testServer, *bridge.Hub) {
	t.Helper()
	bcfg.Addr, bcfg.Logger = "127.0.0.1:0", quiet
	b, err := broker.Start(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	hcfg.Logger = quiet
	hub, err := bridge.New(b, hcfg)
	if err != nil {
		_ = b.Close(context.Background())
		t.Fatal(err)
	}
	b.Open()
	wcfg.Logger = quiet
	if wcfg.Broker == nil {
		wcfg.Broker = b // the admin view's MQTT side
	}
	srv := httptest.NewServer(New(hub, wcfg))
	ts := &testServer{URL: srv.URL, Broker: b, client: &http.Client{Timeout: hubtest.Timeout}}
	t.Cleanup(func() {
		ts.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Close(ctx)
		srv.Close()
		_ = b.Close(ctx)
	})
	return ts, hub
}

func (ts *testServer) do(t *testing.T, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: error %d with Content-Type %q, want JSON", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

func (ts *testServer) publishMQTT(t *testing.T, topic, payload string) {
	t.Helper()
	if err := ts.Broker.Publish(t.Context(), bridge.Message{Topic: topic, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishReachesDevices(t *testing.T) {
	ts := startServer(t)
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "api-device")
	got := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)
	status, body := ts.do(t, "POST", "/api/publish", "application/json; charset=utf-8", `["relay/r1/set", {"state": true}]`)
	if status != http.StatusOK || body != `{"ok":true,"topic":"relay/r1/set"}`+"\n" {
		t.Fatalf("publish = %d %s", status, body)
	}
	if m := hubtest.Receive(t, got, hubtest.Timeout, "command"); m.Topic != "relay/r1/set" || m.Payload != `{"state":true}` {
		t.Fatalf("device got %+v", m)
	}
}

// TestAPIErrors: every way a request can be wrong gets its status and a
// JSON error with a code.
func TestAPIErrors(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		method, path, contentType, body string
		status                          int
		code                            string
	}{
		{"POST", "/api/publish", "text/plain", `["a", 1]`, 415, "bad-request"},
		{"POST", "/api/publish", "", `["a", 1]`, 415, "bad-request"},
		{"POST", "/api/publish", "application/json", `["a", "` + strings.Repeat("x", 2000) + `"]`, 413, "too-large"},
		{"POST", "/api/publish", "application/json", `{"topic": "a"}`, 400, "bad-json"},
		{"POST", "/api/publish", "application/json", `["a/+", 1]`, 400, "bad-topic"},
		{"POST", "/api/publish", "application/json", `["$SYS/x", 1]`, 400, "bad-topic"},
		{"POST", "/api/publish", "application/json", "[\"\xff\", 1]", 400, "bad-json"},
		{"GET", "/api/publish", "", "", 405, "bad-method"},
		{"GET", "/api/state?filter=a/%23/b", "", "", 400, "bad-topic"},
		{"POST", "/api/state", "application/json", "{}", 405, "bad-method"},
		{"GET", "/api/history", "", "", 400, "bad-request"},
		{"GET", "/api/history?topic=a/%2B", "", "", 400, "bad-topic"},
		{"GET", "/api/history?topic=a&limit=0", "", "", 400, "bad-request"},
		{"GET", "/api/history?topic=a&limit=x", "", "", 400, "bad-request"},
		{"GET", "/api/poll?wait=-1", "", "", 400, "bad-request"},
		{"GET", "/api/poll?wait=soon", "", "", 400, "bad-request"},
		{"GET", "/api/poll?filter=%23/a", "", "", 400, "bad-topic"},
		{"GET", "/api/nope", "", "", 404, "not-found"},
		{"GET", "/events/a//b", "", "", 400, "bad-topic"},
		{"GET", "/events?filter=a/%23/b", "", "", 400, "bad-topic"},
	}
	for _, tt := range tests {
		status, body := ts.do(t, tt.method, tt.path, tt.contentType, tt.body)
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &e); status != tt.status || err != nil || e.Error.Code != tt.code || e.Error.Message == "" {
			t.Errorf("%s %s = %d %s, want %d with code %q and a message", tt.method, tt.path, status, body, tt.status, tt.code)
		}
	}
}

func TestStateAndHistory(t *testing.T) {
	ts := startServer(t)
	for i := range 8 {
		ts.publishMQTT(t, "sensor/t", `[2`+string(rune('0'+i))+`.5,"°C"]`)
	}
	ts.publishMQTT(t, "sensor/h", `55`)
	ts.publishMQTT(t, "other", `"x"`)

	status, body := ts.do(t, "GET", "/api/state?filter=sensor/%23", "", "")
	var state struct {
		ID     string
		Values []struct {
			Topic   string
			Payload json.RawMessage
			Time    time.Time
		}
	}
	if err := json.Unmarshal([]byte(body), &state); status != 200 || err != nil || state.ID == "" || len(state.Values) != 2 ||
		state.Values[0].Topic != "sensor/h" || state.Values[1].Topic != "sensor/t" || string(state.Values[1].Payload) != `[27.5,"°C"]` ||
		time.Since(state.Values[0].Time) > time.Minute {
		t.Fatalf("state = %d %s", status, body)
	}

	status, body = ts.do(t, "GET", "/api/history?topic=sensor/t&limit=3", "", "")
	var hist struct {
		Topic  string
		Values []struct{ Payload json.RawMessage }
	}
	if err := json.Unmarshal([]byte(body), &hist); status != 200 || err != nil || len(hist.Values) != 3 ||
		string(hist.Values[0].Payload) != `[25.5,"°C"]` || string(hist.Values[2].Payload) != `[27.5,"°C"]` {
		t.Fatalf("history with limit 3 = %d %s, want the three most recent, oldest first", status, body)
	}
	_, body = ts.do(t, "GET", "/api/history?topic=sensor/t", "", "")
	if err := json.Unmarshal([]byte(body), &hist); err != nil || len(hist.Values) != 5 {
		t.Fatalf("history keeps 5 per topic here, got %s", body)
	}
	if _, body := ts.do(t, "GET", "/api/history?topic=never/seen", "", ""); body != `{"topic":"never/seen","values":[]}`+"\n" {
		t.Fatalf("history of an unknown topic = %s", body)
	}
}

func TestPollEndpoint(t *testing.T) {
	ts := startServer(t)
	status, body := ts.do(t, "GET", "/api/poll?wait=0", "", "")
	var first bridge.PollResult
	if err := json.Unmarshal([]byte(body), &first); status != 200 || err != nil || first.ID == "" || len(first.Messages) != 0 {
		t.Fatalf("first poll = %d %s", status, body)
	}
	ts.publishMQTT(t, "p/1", "1")
	ts.publishMQTT(t, "q/1", "2")
	ts.publishMQTT(t, "p/2", "3")
	status, body = ts.do(t, "GET", "/api/poll?wait=5&filter=p/%23&since="+first.ID, "", "")
	var next bridge.PollResult
	if err := json.Unmarshal([]byte(body), &next); status != 200 || err != nil || len(next.Messages) != 2 ||
		!strings.HasPrefix(string(next.Messages[0]), `["p/1",1,{"id":"`) || next.Resync != nil {
		t.Fatalf("poll since %s = %d %s", first.ID, status, body)
	}

	// A poll that waits is answered as soon as a message arrives.
	answered := make(chan string, 1)
	go func() {
		_, body := ts.do(t, "GET", "/api/poll?wait=30&filter=p/%23&since="+next.ID, "", "")
		answered <- body
	}()
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		ts.publishMQTT(t, "p/late", "4") // until the waiting poll has seen one
		select {
		case body := <-answered:
			if !strings.Contains(body, `"p/late"`) {
				t.Fatalf("waiting poll answered %s", body)
			}
			return true
		default:
			return false
		}
	}, "the waiting poll was not answered")

	_, body = ts.do(t, "GET", "/api/poll?wait=0&since=nope-1", "", "")
	if !strings.Contains(body, `"resync":{"reason":`) {
		t.Fatalf("poll with an unusable id = %s, want a resync", body)
	}
}

func TestEventsRoute(t *testing.T) {
	ts := startServer(t)
	s := hubtest.DialSSE(t, ts.URL+"/events/nodes/x?filter=%23", nil)
	ts.publishMQTT(t, "nodes/x/relay", `{"state":true}`)
	if ev := s.NextMessage(t); ev.Data != `["relay",{"state":true}]` {
		t.Fatalf("mounted stream got %s", ev.Data)
	}
}
