package bridge_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestSSEDevices: an event stream asked with ?devices=1 gets "event: device"
// with the device as the WebSocket's device frame carries it, without an id
// (the stream's position does not move), among its messages; one asked
// without gets the messages only.
func TestSSEDevices(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	with := hubtest.DialSSE(t, h.HTTP+"/events?devices=1&filter=lab/%23", nil)
	without := hubtest.DialSSE(t, h.HTTP+"/events?filter=lab/%23", nil)
	_, withStart := startOf(t, with)
	startOf(t, without)

	h.publish(t, "lab/dev1/state", `{"temperature":21.5}`)
	// The device worker applies the message after the fan-out delivered it:
	// a later message shows when the stream without devices had its chance.
	var device map[string]any
	var ids []string
	for device == nil || len(ids) < 2 {
		ev, err := with.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("the stream with devices: %v (device %v, ids %v)", err, device, ids)
		}
		switch {
		case ev.Event == "device":
			if ev.HasID {
				t.Errorf("a device event has the id %q: it would move the stream's resume position", ev.ID)
			}
			if device != nil {
				continue // lab/after's device, arriving before its message's id
			}
			if err := json.Unmarshal([]byte(ev.Data), &device); err != nil {
				t.Fatalf("device event data %q: %v", ev.Data, err)
			}
			h.publish(t, "lab/after", `1`)
		case ev.Data != "":
			ids = append(ids, ev.ID)
		}
	}
	if id, _ := device["id"].(string); !strings.Contains(id, "lab/dev1") {
		t.Errorf("device event %v, want the device lab/dev1", device)
	}
	if seq(t, ids[1]) != seq(t, ids[0])+1 || seq(t, ids[0]) != seq(t, withStart)+1 {
		t.Errorf("ids %v after the start %s: the device event moved the stream", ids, withStart)
	}

	for got := 0; got < 2; {
		ev, err := without.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("the stream without devices: %v", err)
		}
		if ev.Event == "device" {
			t.Fatalf("a stream that did not ask for devices got %q", ev.Data)
		}
		if ev.Data != "" {
			got++
		}
	}
}
