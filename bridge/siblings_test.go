package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestManySiblingTopics: a client that publishes on 10,000 topics under one
// prefix (one plain JSON device, json:many) does not stall the device
// model: a browser following devices gets json:many with its MaxEntities
// entities and, within the test's patience, the device of a message sent
// after them all (the model refuses the topics past the device's bound,
// and counts them); and Close returns promptly. The model worker used to
// rebuild json:many once per topic, each time over every topic before it,
// and to send it to every follower after each.
func TestManySiblingTopics(t *testing.T) {
	const siblings = 10_000
	h := startRealHub(t, bridge.Config{})
	browser := hubtest.DialWS(t, h.URL, nil)
	browser.Send(`["clown.talk/-/config/set", {"subscribe": [], "devices": true}]`)
	browser.Expect("clown.talk/-/config/ok")
	followed := make(chan followedMany, 1)
	go func() { followed <- followMany(browser, 3*hubtest.Timeout) }()

	// One message at a time, as a device with many sub-topics sends them:
	// the model worker takes small batches. Ten clients of 1,000 topics
	// each: one client past the broker's burst of 2,000 messages
	// (MessageRate) would be cut off.
	const clients = 10
	var motes []paho.Client
	for c := range clients {
		motes = append(motes, hubtest.ConnectMQTT(t, h.Broker.Addr().String(), fmt.Sprintf("many-siblings-%d", c)))
	}
	for i := range siblings {
		hubtest.PublishMQTT(t, motes[i%clients], fmt.Sprintf("many/%d", i), 1, false, fmt.Append(nil, i))
	}
	// A message after them all, on another device: the model takes
	// messages in order, so its frame says the model has taken them all.
	hubtest.PublishMQTT(t, motes[0], "last/mote/t", 1, false, []byte("1"))

	got := hubtest.Receive(t, followed, 4*hubtest.Timeout, "the browser's device frames")
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.entities != devices.DefaultMaxEntities {
		t.Fatalf("json:many has %d entities in its last frame, want %d", got.entities, devices.DefaultMaxEntities)
	}
	if got, want := h.Hub.Stats().ModelRefused["entities"], uint64(siblings-devices.DefaultMaxEntities); got != want {
		t.Errorf("the model refused %d topics of json:many, want %d", got, want)
	}

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hubtest.Timeout)
		defer cancel()
		closed <- h.Hub.Close(ctx)
	}()
	if err := hubtest.Receive(t, closed, hubtest.Timeout, "Hub.Close"); err != nil {
		t.Errorf("Hub.Close: %v", err)
	}
}

// followedMany is what followMany saw.
type followedMany struct {
	entities int // in the last frame of json:many; -1: none came
	err      error
}

// followMany reads a browser's device frames, until that of json:last/mote
// or patience runs out, and says how many entities the last frame of
// json:many had. It reads while the test publishes, as a dashboard does.
func followMany(browser *hubtest.WS, patience time.Duration) followedMany {
	seen := followedMany{entities: -1}
	deadline := time.Now().Add(patience)
	for {
		line, err := browser.TryReadLine(time.Until(deadline))
		if err != nil {
			seen.err = fmt.Errorf("no frame of json:last/mote (the message after the siblings) within %v: %w", patience, err)
			return seen
		}
		var frame []json.RawMessage
		var topic string
		if json.Unmarshal([]byte(line), &frame) != nil || len(frame) < 2 || json.Unmarshal(frame[0], &topic) != nil {
			seen.err = fmt.Errorf("line %.80q is no Clown.Talk frame", line)
			return seen
		}
		if topic != "clown.talk/-/device" {
			continue
		}
		var d devices.Device
		if err := json.Unmarshal(frame[1], &d); err != nil {
			seen.err = fmt.Errorf("device frame %.80s: %w", line, err)
			return seen
		}
		switch d.ID {
		case "json:many":
			seen.entities = len(d.Entities)
		case "json:last/mote":
			return seen
		default:
			seen.err = fmt.Errorf("a frame of %s", d.ID)
			return seen
		}
	}
}
