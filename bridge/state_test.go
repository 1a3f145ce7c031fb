package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

type stateOK struct {
	ID        string
	Values    [][3]json.RawMessage
	Truncated bool
}

// TestStateGetCapAndTruncation: state/get names at most MaxSubscriptions
// filters (error "limit" past it) and says "truncated" when more values
// matched than MaxStateValues.
func TestStateGetCapAndTruncation(t *testing.T) {
	h := startRealHub(t, bridge.Config{MaxSubscriptions: 3, MaxStateValues: 2})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["x/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	for _, topic := range []string{"x/a", "x/b", "x/c"} {
		h.publish(t, topic, `1`)
		ws.Expect(topic)
	}

	ws.Send(`["clown.talk/-/state/get", {"filter": "x/#"}]`)
	var st stateOK
	if f := ws.Expect("clown.talk/-/state/ok"); json.Unmarshal(f.Payload, &st) != nil || len(st.Values) != 2 || !st.Truncated ||
		string(st.Values[1][0]) != `"x/b"` {
		t.Fatalf("state/ok of 3 topics, 2 allowed: %s, want x/a and x/b, truncated", f.Payload)
	}
	ws.Send(`["clown.talk/-/state/get", {"filter": ["x/a", "x/c"]}]`)
	if f := ws.Expect("clown.talk/-/state/ok"); strings.Contains(string(f.Payload), "truncated") {
		t.Fatalf("a whole state/ok says truncated: %s", f.Payload)
	}
	ws.Send(`["clown.talk/-/state/get", {"filter": ["a", "b", "c", "d"]}]`)
	var e struct{ Code string }
	if f := ws.Expect("clown.talk/-/error"); json.Unmarshal(f.Payload, &e) != nil || e.Code != bridge.CodeLimit {
		t.Fatalf("state/get of 4 filters, 3 allowed: %s, want code limit", f.Payload)
	}
}

// TestStateGetInStreamOrderWhilePublishing: state/ok, read outside the
// fan-out lock, still sits exactly where the live stream is: no value in it
// is older than a message the client got before it, and none after it is
// older than the value, while devices publish all the time.
func TestStateGetInStreamOrderWhilePublishing(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["c/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")

	// Each state/get goes out with a burst of publishes beside it: as many
	// as a loaded machine handles in time, and never enough to fill the
	// client's queue (a reader that far behind would be cut off as slow).
	stop := make(chan struct{})
	burst := make(chan struct{}, 1)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for n := 1; ; {
			select {
			case <-stop:
				return
			case <-burst:
			}
			for range 500 {
				m := bridge.Message{Topic: fmt.Sprintf("c/%d", n%5), Payload: []byte(strconv.Itoa(n))}
				if err := h.Broker.Publish(context.Background(), m); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				n++
			}
		}
	}()
	defer func() { close(stop); <-published }()

	seen := map[string]int{} // topic → the last value the client has
	asked, answered := 0, 0
	deadline := time.Now().Add(hubtest.Timeout)
	for answered < 20 && time.Now().Before(deadline) {
		if asked == answered {
			select {
			case burst <- struct{}{}:
			default:
			}
			ws.Send(`["clown.talk/-/state/get", {"filter": "c/#"}]`)
			asked++
		}
		f := hubtest.ParseFrame(t, ws.ReadLine())
		if f.Topic != "clown.talk/-/state/ok" {
			n, err := strconv.Atoi(string(f.Payload))
			if err != nil || n < seen[f.Topic] {
				t.Fatalf("%s %s after %d", f.Topic, f.Payload, seen[f.Topic])
			}
			seen[f.Topic] = n
			continue
		}
		answered++
		var st stateOK
		if err := json.Unmarshal(f.Payload, &st); err != nil {
			t.Fatal(err)
		}
		for _, v := range st.Values {
			var topic string
			_ = json.Unmarshal(v[0], &topic)
			n, err := strconv.Atoi(string(v[1]))
			if err != nil || n < seen[topic] {
				t.Fatalf("state/ok has %s = %s, older than %d which came before it", topic, v[1], seen[topic])
			}
			seen[topic] = n
		}
	}
	if answered < 20 {
		t.Fatalf("%d state/ok in %v", answered, hubtest.Timeout)
	}
}
