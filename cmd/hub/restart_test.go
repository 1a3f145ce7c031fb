package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestResumeAcrossRestartSaysResync: a hub restarted without its history
// cannot replay; a client that resumes with an id of the old hub is told so
// (resync, reason epoch) over SSE, over the WebSocket and in the long poll.
func TestResumeAcrossRestartSaysResync(t *testing.T) {
	first := startHub(t)
	s := hubtest.DialSSE(t, "http://"+first.HTTP+"/events", nil)
	var oldID string
	for oldID == "" {
		ev, err := s.Next(hubtest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		if ev.HasID {
			oldID = ev.ID
		}
	}
	s.Close()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	second := startHub(t, "--http", first.HTTP)
	device := hubtest.ConnectMQTT(t, second.MQTT, "restart-device")
	hubtest.PublishMQTT(t, device, "relay/r1", 1, true, []byte(`{"state":true}`))

	resumed := hubtest.DialSSE(t, "http://"+second.HTTP+"/events", http.Header{"Last-Event-ID": {oldID}})
	for {
		ev, err := resumed.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("no resync after the restart: %v", err)
		}
		if ev.Event == "resync" {
			if !strings.Contains(ev.Data, "epoch") {
				t.Fatalf("resync data %s, want the epoch reason", ev.Data)
			}
			break
		}
	}
	if ev := resumed.NextMessage(t); ev.Data != `["relay/r1",{"state":true}]` {
		t.Fatalf("after the resync, the last value %s", ev.Data)
	}

	ws, _ := second.session(t, "/ws", `{"since": "`+oldID+`"}`)
	if f := ws.Expect("clown.talk/-/resync"); !strings.Contains(string(f.Payload), "epoch") {
		t.Fatalf("WebSocket resync %s", f.Payload)
	}

	resp, err := http.Get("http://" + second.HTTP + "/api/poll?wait=0&since=" + oldID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var poll struct{ Resync *struct{ Reason string } }
	if err := json.NewDecoder(resp.Body).Decode(&poll); err != nil || poll.Resync == nil || !strings.Contains(poll.Resync.Reason, "epoch") {
		t.Fatalf("long poll after the restart: %+v %v", poll, err)
	}
}

// TestEventSourceInChromiumSurvivesRestart: a real browser's EventSource
// receives live messages, reconnects by itself when the hub restarts, reports
// the resync, and goes on receiving.
func TestEventSourceInChromiumSurvivesRestart(t *testing.T) {
	browser := hubtest.NewBrowser(t)
	first := startHub(t)
	device := hubtest.ConnectMQTT(t, first.MQTT, "es-device-1")

	browser.Do(t, chromedp.Navigate("http://"+first.HTTP+"/"))
	hubtest.Eval[bool](t, browser, `
		window.seen = [];
		window.es = new EventSource("/events?filter=demo/%23");
		es.onopen = () => seen.push({type: "open"});
		es.onmessage = (e) => seen.push({type: "message", data: e.data, id: e.lastEventId});
		es.addEventListener("resync", (e) => seen.push({type: "resync", data: e.data}));
		true`)
	browser.WaitJS(t, hubtest.Timeout, `seen.some(e => e.type === "open")`, "JSON.stringify(seen)")
	hubtest.PublishMQTT(t, device, "demo/a", 1, false, []byte("1"))
	browser.WaitJS(t, hubtest.Timeout, `seen.some(e => e.data === '["demo/a",1]')`, "JSON.stringify(seen)")

	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, "--http", first.HTTP)
	browser.WaitJS(t, 15*time.Second, `seen.some(e => e.type === "resync" && e.data.includes("epoch"))`, "JSON.stringify(seen)")

	device2 := hubtest.ConnectMQTT(t, second.MQTT, "es-device-2")
	hubtest.PublishMQTT(t, device2, "demo/b", 1, false, []byte("2"))
	browser.WaitJS(t, hubtest.Timeout, `seen.some(e => e.data === '["demo/b",2]')`, "JSON.stringify(seen)")
	if readyState := hubtest.Eval[int](t, browser, "es.readyState"); readyState != 1 {
		t.Fatalf("EventSource readyState %d after the restart, want 1 (open)", readyState)
	}
	hubtest.Eval[any](t, browser, "es.close()")
}
