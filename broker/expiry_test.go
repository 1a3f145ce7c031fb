package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestRetainedMessageOutlivesADay: a retained message whose publisher set
// no expiry (an MQTT 3.1.1 device cannot set one) lives until it is
// replaced or cleared: mochi's once-a-second expiry sweep leaves it even
// when it was stored more than a day ago. (With mochi's default
// MaximumMessageExpiryInterval the sweep deleted every retained message a
// day after it was stored.)
//
// The day is not waited for: the message's stored times are moved back by
// a day and a minute. That a sweep has looked at it since is known from
// markers, retained messages whose v5 expiry has passed: when a second
// marker, added after the first was swept away, is gone too, a whole sweep
// has run over the moved message.
func TestRetainedMessageOutlivesADay(t *testing.T) {
	const topic, aDayAgo = "lab/thermo/temperature", int64(24*60*60 + 60)
	e := startTest(t, Config{})
	device := hubtest.ConnectMQTT(t, e.Addr().String(), "retainer-311")
	hubtest.PublishMQTT(t, device, topic, 1, true, []byte("21.5"))

	retained := e.server.Topics.Retained
	pk, ok := retained.Get(topic)
	if !ok {
		t.Fatalf("the broker keeps no retained message on %s", topic)
	}
	pk.Created -= aDayAgo
	if pk.Expiry != 0 {
		pk.Expiry -= aDayAgo
	}
	retained.Add(topic, pk)

	for i := range 2 {
		marker := fmt.Sprintf("test/marker/%d", i)
		now := time.Now().Unix()
		retained.Add(marker, packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:       marker,
			Payload:         []byte("expired"),
			ProtocolVersion: 5,
			Created:         now - 120,
			Expiry:          now - 60,
		})
		hubtest.Eventually(t, 3*hubtest.Timeout, func() bool {
			_, ok := retained.Get(marker)
			return !ok
		}, "the broker's expiry sweep did not remove %s, a retained message whose expiry had passed", marker)
	}

	r, _ := subscribe(t, e, topic)
	if got := r.got(); len(got) != 1 || got[0] != topic {
		t.Fatalf("a new subscription to %s got %q: the retained message stored a day ago without an expiry was deleted", topic, got)
	}
}
