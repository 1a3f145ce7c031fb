package bridge

import (
	"strings"
	"testing"
)

func TestMinimalCover(t *testing.T) {
	for _, c := range []struct{ wanted, want string }{
		{"a/b a/#", "a/#"},
		{"a/+/c a/b/c a/b/d", "a/+/c a/b/d"},
		{"# $SYS/#", "# $SYS/#"}, // '#' does not reach '$' topics
		{"# +/x a", "#"},
		{"a/b a/b", "a/b"},
		{"x", "x"},
	} {
		if got := strings.Join(minimalCover(strings.Fields(c.wanted)), " "); got != c.want {
			t.Errorf("minimalCover(%s) = %q, want %q", c.wanted, got, c.want)
		}
	}
}

// TestOneMessageThroughOverlappingSubscriptions: a Bus that hands one
// message to two of the hub's subscriptions (numbered alike) makes one
// event, and a retained message the hub has as the topic's value (sent
// again for a new subscription) makes none.
func TestOneMessageThroughOverlappingSubscriptions(t *testing.T) {
	h := newTestHub(t, Config{})
	c := attachTest(t, h, "", "#")
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 7})
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 7})
	h.deliver(Message{Topic: "a/b", Payload: []byte("1"), Delivery: 8}) // the same content, another message
	h.deliver(Message{Topic: "r", Payload: []byte("on"), Retain: true, Replay: true})
	h.deliver(Message{Topic: "r", Payload: []byte("on"), Retain: true, Replay: true})  // again, for another subscription
	h.deliver(Message{Topic: "r", Payload: []byte("off"), Retain: true, Replay: true}) // a value the hub did not have
	h.deliver(Message{Topic: "r", Payload: []byte("off")})                             // live: always an event
	h.deliver(Message{Topic: "r", Payload: []byte("off"), Retain: true})               // live and retained by its publisher: too
	if got, want := strings.Join(drain(c), ""), "[\"a/b\",1]\n[\"a/b\",1]\n[\"r\",\"on\"]\n[\"r\",\"off\"]\n[\"r\",\"off\"]\n[\"r\",\"off\"]\n"; got != want {
		t.Fatalf("events:\n%swant:\n%s", got, want)
	}
}
