package broker

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	m5 "github.com/motehub/motehub/internal/mqtt5test"
)

// Publish and subscribe, as the MQTT 5 conformance suite checks them (see
// conformance_test.go).

var someUser = []m5.UserProperty{{Key: "device", Value: "mote-1"}, {Key: "trace", Value: "42"}}

// expectDelivery reads the next PUBLISH and checks its topic, payload and QoS.
func expectDelivery(t *testing.T, c *m5.Client, topic, payload string, qos byte) *m5.Publish {
	t.Helper()
	p := c.ExpectPublish()
	if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos {
		t.Fatalf("got %s, want %q %q at QoS %d", m5.Describe(p), topic, payload, qos)
	}
	return p
}

// TestConformanceQoS0: a QoS 0 message is delivered once, at QoS 0, with
// its user properties, and nothing is acknowledged.
func TestConformanceQoS0(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub := b.client(t, "sub")
		sub.Subscribe(nil, m5.Subscription{Filter: "q/0", QoS: 2})
		pub := b.client(t, "pub")
		pub.Send(&m5.Publish{Topic: "q/0", Payload: []byte("zero"), Properties: m5.Properties{User: someUser}})
		p := expectDelivery(t, sub, "q/0", "zero", 0)
		if p.Retain || p.Dup || !slices.Equal(p.Properties.User, someUser) {
			t.Errorf("delivered %s", m5.Describe(p))
		}
		expectNoPublish(t, pub.Sync(), "the publisher")
	})
}

// TestConformanceQoS1: the publisher's PUBACK is Success (0x00, or left
// out) and carries none of its properties (section 3.4.2.1: 0x01 is not a
// PUBACK code; MQTT.js and paho v5 drop the connection on it); the
// subscriber gets the message once, at QoS 1, with its properties, and its
// PUBACK completes it.
func TestConformanceQoS1(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub := b.client(t, "sub")
		sub.Subscribe(nil, m5.Subscription{Filter: "q/1", QoS: 1})
		pub := b.client(t, "pub")
		acks := pub.Publish(&m5.Publish{Topic: "q/1", QoS: 1, Payload: []byte("plain")})
		expectCleanAck(t, acks[0], nil)
		expectDelivery(t, sub, "q/1", "plain", 1)

		acks = pub.Publish(&m5.Publish{Topic: "q/1", QoS: 1, Payload: []byte("with properties"),
			Properties: m5.Properties{User: someUser, ContentType: m5.Ptr("text/plain")}})
		expectCleanAck(t, acks[0], someUser)
		p := expectDelivery(t, sub, "q/1", "with properties", 1)
		if p.Dup || p.Retain || !slices.Equal(p.Properties.User, someUser) || p.Properties.ContentType == nil {
			t.Errorf("delivered %s", m5.Describe(p))
		}
		expectNoPublish(t, sub.Sync(), "after the two messages")
	})
}

// TestConformanceQoS2: PUBREC and PUBCOMP are Success without the
// properties of the publisher's PUBLISH and PUBREL; the subscriber,
// acknowledging by hand, gets the message once, then the broker's PUBREL
// (Success, without the properties of the subscriber's PUBREC), and its
// PUBCOMP ends the exchange.
func TestConformanceQoS2(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub, _ := m5.Open(t, b.addr, &m5.Connect{ClientID: "sub", CleanStart: true}, m5.Options{ManualAcks: true})
		sub.Subscribe(nil, m5.Subscription{Filter: "q/2", QoS: 2})
		pub := b.client(t, "pub")

		send := &m5.Publish{Topic: "q/2", QoS: 2, Payload: []byte("exactly once"), Properties: m5.Properties{User: someUser}}
		pub.Send(send)
		rec := pub.AwaitAck(m5.PUBREC, send.PacketID)
		expectCleanAck(t, rec, someUser)
		if rec.Reason >= 0x80 {
			t.FailNow()
		}
		rel := &m5.Ack{Kind: m5.PUBREL, PacketID: send.PacketID, Properties: m5.Properties{User: []m5.UserProperty{{Key: "rel", Value: "1"}}}}
		pub.Send(rel)
		expectCleanAck(t, pub.AwaitAck(m5.PUBCOMP, send.PacketID), rel.Properties.User)

		p := expectDelivery(t, sub, "q/2", "exactly once", 2)
		if !slices.Equal(p.Properties.User, someUser) {
			t.Errorf("delivered %s", m5.Describe(p))
		}
		subUser := []m5.UserProperty{{Key: "rec", Value: "sub"}}
		sub.Send(&m5.Ack{Kind: m5.PUBREC, PacketID: p.PacketID, Properties: m5.Properties{User: subUser}})
		expectCleanAck(t, sub.ExpectAck(m5.PUBREL, p.PacketID), subUser)
		sub.Complete(&m5.Ack{PacketID: p.PacketID})
		expectNoPublish(t, sub.Sync(), "after the exchange")
		if n := sub.Inflight(); n != 0 {
			t.Errorf("%d messages unacknowledged", n)
		}
	})
}

// TestConformanceQoSDowngrade: a message is delivered at the lower of its
// QoS and the subscription's [MQTT-3.8.4-8].
func TestConformanceQoSDowngrade(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		subs := make([]*m5.Client, 3)
		for qos := range subs {
			subs[qos] = b.client(t, fmt.Sprintf("sub%d", qos))
			subs[qos].Subscribe(nil, m5.Subscription{Filter: "dg/#", QoS: byte(qos)})
		}
		pub := b.client(t, "pub")
		for pq := byte(0); pq <= 2; pq++ {
			pub.Publish(&m5.Publish{Topic: "dg/x", QoS: pq, Payload: []byte{'0' + pq}})
			for sq, sub := range subs {
				expectDelivery(t, sub, "dg/x", string('0'+rune(pq)), min(pq, byte(sq)))
			}
		}
	})
}

// TestConformanceRetained: a retained message is stored, replaced, and
// cleared by an empty one; a new subscription gets the stored one with
// RETAIN set (section 3.3.1.3); live deliveries have RETAIN clear (Retain
// As Published not asked) [MQTT-3.3.1-12].
func TestConformanceRetained(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		pub := b.client(t, "pub")
		pub.Publish(&m5.Publish{Topic: "r/a", QoS: 1, Retain: true, Payload: []byte("1")})
		pub.Publish(&m5.Publish{Topic: "r/a", QoS: 1, Retain: true, Payload: []byte("2")})

		s1 := b.client(t, "s1")
		s1.Subscribe(nil, m5.Subscription{Filter: "r/#", QoS: 1})
		if p := expectDelivery(t, s1, "r/a", "2", 1); !p.Retain {
			t.Errorf("retained message delivered on subscribe without RETAIN: %s", m5.Describe(p))
		}
		expectNoPublish(t, s1.Sync(), "after the one retained message")

		pub.Publish(&m5.Publish{Topic: "r/a", QoS: 1, Retain: true})
		if p := expectDelivery(t, s1, "r/a", "", 1); p.Retain {
			t.Errorf("live delivery with RETAIN: %s", m5.Describe(p))
		}
		s2 := b.client(t, "s2")
		s2.Subscribe(nil, m5.Subscription{Filter: "r/#", QoS: 1})
		expectNoPublish(t, s2.Sync(), "a subscriber after the retained message was cleared")
	})
}

// TestConformanceRetainHandling: 0 sends the retained messages at every
// SUBSCRIBE, 1 only when the subscription is new, 2 never
// [MQTT-3.3.1-9..11].
func TestConformanceRetainHandling(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		pub := b.client(t, "pub")
		pub.Publish(&m5.Publish{Topic: "rh/a", QoS: 1, Retain: true, Payload: []byte("kept")})
		s := b.client(t, "s")
		for _, step := range []struct {
			sub  m5.Subscription
			want bool
			what string
		}{
			{m5.Subscription{Filter: "rh/a", QoS: 1}, true, "retain handling 0, new subscription"},
			{m5.Subscription{Filter: "rh/a", QoS: 1}, true, "retain handling 0, existing subscription"},
			{m5.Subscription{Filter: "rh/a", QoS: 1, RetainHandling: 1}, false, "retain handling 1, existing subscription"},
			{m5.Subscription{Filter: "rh/+", QoS: 1, RetainHandling: 1}, true, "retain handling 1, new subscription"},
			{m5.Subscription{Filter: "rh/#", QoS: 1, RetainHandling: 2}, false, "retain handling 2"},
		} {
			s.Subscribe(nil, step.sub)
			if step.want {
				if p := s.ExpectPublish(); p.Topic != "rh/a" || !p.Retain {
					t.Errorf("%s: got %s, want the retained message", step.what, m5.Describe(p))
				}
			}
			expectNoPublish(t, s.Sync(), step.what)
		}
	})
}

// TestConformanceManyRetainedOnSubscribe: a subscription gets every
// retained message it matches [MQTT-3.3.1-9], however many, even when the
// client is slow to read them: Home Assistant keeps its discovery this way
// (a retained config per entity, often hundreds), and subscribes to all of
// it at each start, when it is busiest. 900 messages of 16 KB are more
// than the sockets' buffers hold (4 MB at most on Linux by default), so
// the broker has to keep most of them until the client reads again (within
// Mosquitto's default limit of 1,000 messages queued for a client).
func TestConformanceManyRetainedOnSubscribe(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		const n = 900
		config := bytes.Repeat([]byte("x"), 16000)
		pub := b.client(t, "pub")
		for i := range n {
			pub.Send(&m5.Publish{Topic: fmt.Sprintf("homeassistant/sensor/s%d/config", i), Retain: true, Payload: config})
		}
		pub.Sync() // all n stored
		s := b.client(t, "s")
		s.PauseReading()
		s.Send(&m5.Subscribe{Subscriptions: []m5.Subscription{{Filter: "homeassistant/#", QoS: 1}}})
		// Busy for a moment, as a client is at start: the scenario, not a
		// synchronisation (a broker slower than this to answer the SUBSCRIBE
		// would only make the test easier).
		time.Sleep(300 * time.Millisecond)
		s.ResumeReading()
		got := 0
		for _, p := range s.Sync() { // the retained messages come before the marker, or not at all
			if p.Type() == m5.PUBLISH {
				got++
			}
		}
		if got != n {
			t.Errorf("%d retained messages delivered on subscribe, want %d", got, n)
		}
	})
}

// TestConformanceRetainAsPublished: with it, live deliveries keep the
// publisher's RETAIN; without it, they have it clear [MQTT-3.3.1-12, -13].
func TestConformanceRetainAsPublished(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		rap := b.client(t, "rap")
		rap.Subscribe(nil, m5.Subscription{Filter: "rap/x", QoS: 1, RetainAsPublished: true})
		plain := b.client(t, "plain")
		plain.Subscribe(nil, m5.Subscription{Filter: "rap/x", QoS: 1})
		pub := b.client(t, "pub")
		pub.Publish(&m5.Publish{Topic: "rap/x", QoS: 1, Retain: true, Payload: []byte("r")})
		pub.Publish(&m5.Publish{Topic: "rap/x", QoS: 1, Payload: []byte("n")})
		for _, c := range []struct {
			c      *m5.Client
			what   string
			retain []bool
		}{{rap, "retain as published", []bool{true, false}}, {plain, "without retain as published", []bool{false, false}}} {
			for i, payload := range []string{"r", "n"} {
				if p := expectDelivery(t, c.c, "rap/x", payload, 1); p.Retain != c.retain[i] {
					t.Errorf("%s: %s, want RETAIN %v", c.what, m5.Describe(p), c.retain[i])
				}
			}
		}
	})
}

// TestConformanceRequestResponse: Response Topic, Correlation Data,
// Content Type and Payload Format Indicator reach the subscriber unchanged
// (section 3.3.2.3), and the answer finds its way back.
func TestConformanceRequestResponse(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		responder := b.client(t, "responder")
		responder.Subscribe(nil, m5.Subscription{Filter: "req/+", QoS: 1})
		requester := b.client(t, "requester")
		requester.Subscribe(nil, m5.Subscription{Filter: "resp/requester", QoS: 1})

		corr := []byte{0x00, 0xFF, 0x10, 'x'}
		requester.Publish(&m5.Publish{Topic: "req/relay", QoS: 1, Payload: []byte(`{"state":true}`), Properties: m5.Properties{
			ResponseTopic: m5.Ptr("resp/requester"), CorrelationData: corr,
			ContentType: m5.Ptr("application/json"), PayloadFormat: m5.Ptr[byte](1)}})
		req := expectDelivery(t, responder, "req/relay", `{"state":true}`, 1)
		p := req.Properties
		if p.ResponseTopic == nil || *p.ResponseTopic != "resp/requester" || !bytes.Equal(p.CorrelationData, corr) ||
			p.ContentType == nil || *p.ContentType != "application/json" || p.PayloadFormat == nil || *p.PayloadFormat != 1 {
			t.Errorf("request delivered as %s", m5.Describe(req))
		}
		responder.Publish(&m5.Publish{Topic: *p.ResponseTopic, QoS: 1, Payload: []byte("done"),
			Properties: m5.Properties{CorrelationData: p.CorrelationData}})
		resp := expectDelivery(t, requester, "resp/requester", "done", 1)
		if !bytes.Equal(resp.Properties.CorrelationData, corr) {
			t.Errorf("response delivered as %s", m5.Describe(resp))
		}
	})
}

// TestConformanceEmptyCorrelationData: Correlation Data of zero bytes is
// still Correlation Data (Binary Data may be empty, section 1.5.6), and is
// delivered as such: a responder that finds none does not answer.
func TestConformanceEmptyCorrelationData(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		if !b.mosquitto {
			t.Skip("known limit of the embedded broker: mochi's property codec keeps Correlation Data only when it is not empty (docs/security.md, Known limits)")
		}
		responder := b.client(t, "responder")
		responder.Subscribe(nil, m5.Subscription{Filter: "req/+", QoS: 1})
		b.client(t, "requester").Publish(&m5.Publish{Topic: "req/empty", QoS: 1, Properties: m5.Properties{
			ResponseTopic: m5.Ptr("resp/requester"), CorrelationData: []byte{}}})
		if p := expectDelivery(t, responder, "req/empty", "", 1); !p.Properties.HasCorrelationData() {
			t.Errorf("empty Correlation Data lost: %s", m5.Describe(p))
		}
	})
}

// TestConformanceUserProperties: user properties reach subscribers, all
// of them, in order, repeated names and empty strings included
// [MQTT-3.3.2-17, -18]. Published at QoS 0 so that only the delivery is
// judged here (TestConformanceQoS1 and QoS2 judge the acknowledgements of
// messages with user properties, and their delivery at QoS 1 and 2).
func TestConformanceUserProperties(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub := b.client(t, "sub")
		sub.Subscribe(nil, m5.Subscription{Filter: "up/#", QoS: 2})
		pub := b.client(t, "pub")
		props := []m5.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"},
			{Key: "", Value: ""}, {Key: "ключ", Value: "значение ∞"}}
		pub.Publish(&m5.Publish{Topic: "up/x", Payload: []byte("x"), Properties: m5.Properties{User: props}})
		if p := expectDelivery(t, sub, "up/x", "x", 0); !slices.Equal(p.Properties.User, props) {
			t.Errorf("user properties %q, want %q", p.Properties.User, props)
		}
	})
}

// TestConformanceSubscriptionIdentifiers: a message carries the identifier
// of each subscription it matches, all of them when they overlap (in one
// PUBLISH, or one per subscription) [MQTT-3.3.4-3, -4, -5]; a subscription
// without one adds none; subscribing again replaces it.
func TestConformanceSubscriptionIdentifiers(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		s := b.client(t, "s")
		s.Subscribe(&m5.Properties{SubscriptionIDs: []int{7}}, m5.Subscription{Filter: "si/+", QoS: 1})
		s.Subscribe(&m5.Properties{SubscriptionIDs: []int{268435455}}, m5.Subscription{Filter: "si/a", QoS: 1})
		s.Subscribe(nil, m5.Subscription{Filter: "nosi/x", QoS: 1})
		pub := b.client(t, "pub")
		for _, topic := range []string{"si/a", "si/b", "nosi/x"} {
			pub.Publish(&m5.Publish{Topic: topic, QoS: 1, Payload: []byte(topic)})
		}
		// One publisher's messages come in order: si/a (once or twice), si/b, nosi/x.
		got := map[string][]int{}
		for {
			p := s.ExpectPublish()
			if p.Topic != "nosi/x" && len(p.Properties.SubscriptionIDs) == 0 {
				t.Errorf("no subscription identifier: %s", m5.Describe(p))
			}
			got[p.Topic] = append(got[p.Topic], p.Properties.SubscriptionIDs...)
			if p.Topic == "nosi/x" {
				break
			}
		}
		expectNoPublish(t, s.Sync(), "after each message was delivered")
		slices.Sort(got["si/a"])
		for topic, want := range map[string][]int{"si/a": {7, 268435455}, "si/b": {7}, "nosi/x": {}} {
			if !slices.Equal(got[topic], want) {
				t.Errorf("%s: subscription identifiers %v, want %v", topic, got[topic], want)
			}
		}

		s.Subscribe(&m5.Properties{SubscriptionIDs: []int{8}}, m5.Subscription{Filter: "si/+", QoS: 1})
		pub.Publish(&m5.Publish{Topic: "si/b", QoS: 1})
		if p := s.ExpectPublish(); !slices.Equal(p.Properties.SubscriptionIDs, []int{8}) {
			t.Errorf("after subscribing again with 8: %s", m5.Describe(p))
		}
	})
}

// TestConformanceSubscriptionIdentifierOnRetained: the retained messages
// sent for a new subscription carry its Subscription Identifier, as live
// ones do [MQTT-3.3.4-3]: a client that routes messages by identifier
// (MQTT.js handlers, paho's router) finds no owner for them otherwise.
func TestConformanceSubscriptionIdentifierOnRetained(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		b.client(t, "pub").Publish(&m5.Publish{Topic: "sir/x", QoS: 1, Retain: true, Payload: []byte("kept")})
		s := b.client(t, "s")
		s.Subscribe(&m5.Properties{SubscriptionIDs: []int{42}}, m5.Subscription{Filter: "sir/#", QoS: 1})
		if p := expectDelivery(t, s, "sir/x", "kept", 1); !slices.Equal(p.Properties.SubscriptionIDs, []int{42}) {
			t.Errorf("retained message delivered on subscribe as %s, want subscription identifier 42", m5.Describe(p))
		}
	})
}

// TestConformanceSharedSubscriptions: each message published to a shared
// subscription's topics goes to one member of the group (section 4.8.2),
// while an ordinary subscription still gets them all.
func TestConformanceSharedSubscriptions(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		members := []*m5.Client{b.client(t, "m1"), b.client(t, "m2")}
		for _, m := range members {
			m.Subscribe(nil, m5.Subscription{Filter: "$share/g/sh/#", QoS: 1})
		}
		all := b.client(t, "all")
		all.Subscribe(nil, m5.Subscription{Filter: "sh/#", QoS: 1})
		pub := b.client(t, "pub")
		const n = 10
		for i := range n {
			pub.Publish(&m5.Publish{Topic: "sh/x", QoS: 1, Payload: []byte(strconv.Itoa(i))})
		}
		for i := range n {
			expectDelivery(t, all, "sh/x", strconv.Itoa(i), 1)
		}
		seen := map[string]int{}
		deadline := time.Now().Add(m5.Timeout)
		for len(seen) < n && time.Now().Before(deadline) {
			for _, m := range members {
				// Both members are read in turn; a short wait on each is
				// how long a turn lasts, not a synchronisation.
				p, err := m.Next(20 * time.Millisecond)
				if err != nil && err != m5.ErrTimeout {
					t.Fatal(err)
				}
				if p, ok := p.(*m5.Publish); ok {
					seen[string(p.Payload)]++
				}
			}
		}
		for _, m := range members {
			for _, p := range m.Sync() {
				if p, ok := p.(*m5.Publish); ok {
					seen[string(p.Payload)]++
				}
			}
		}
		for i := range n {
			if c := seen[strconv.Itoa(i)]; c != 1 {
				t.Errorf("message %d went to %d members of the group, want 1", i, c)
			}
		}
	})
}

// TestConformanceTopicAliasInbound: a client may use aliases up to the
// Topic Alias Maximum the broker announced: set with a topic, then alone.
// An alias above it is refused with DISCONNECT 0x94 Topic Alias invalid;
// an alias never set, with 0x82 Protocol Error (section 3.3.2.3.4).
func TestConformanceTopicAliasInbound(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		pub, ack := b.open(t, "pub", nil)
		maxAlias := uint16(0)
		if ack.Properties.TopicAliasMaximum != nil {
			maxAlias = *ack.Properties.TopicAliasMaximum
		}
		if maxAlias == 0 {
			t.Error("the broker announces no Topic Alias Maximum: v5 clients will not use aliases")
		} else {
			sub := b.client(t, "sub")
			sub.Subscribe(nil, m5.Subscription{Filter: "ta/#", QoS: 1})
			alias := m5.Ptr(maxAlias)
			expectCleanAck(t, pub.Publish(&m5.Publish{Topic: "ta/x", QoS: 1, Payload: []byte("set"), Properties: m5.Properties{TopicAlias: alias}})[0], nil)
			expectCleanAck(t, pub.Publish(&m5.Publish{Topic: "", QoS: 1, Payload: []byte("used"), Properties: m5.Properties{TopicAlias: alias}})[0], nil)
			expectDelivery(t, sub, "ta/x", "set", 1)
			expectDelivery(t, sub, "ta/x", "used", 1)

			unset, _ := b.open(t, "unset", nil)
			unset.Send(&m5.Publish{Topic: "", QoS: 1, Properties: m5.Properties{TopicAlias: m5.Ptr[uint16](1)}})
			expectRefusal(t, unset, "an alias never set", m5.ProtocolError)
		}
		// An alias one above the maximum (1 when there is none).
		over, _ := b.open(t, "over", nil)
		over.Send(&m5.Publish{Topic: "ta/y", QoS: 1, Properties: m5.Properties{TopicAlias: m5.Ptr(maxAlias + 1)}})
		expectRefusal(t, over, fmt.Sprintf("Topic Alias %d", maxAlias+1), m5.TopicAliasInvalid)
	})
}

// expectRefusal expects a DISCONNECT with reason, then the connection closed.
func expectRefusal(t *testing.T, c *m5.Client, what string, reason m5.Reason) {
	t.Helper()
	p, err := c.Next(m5.Timeout)
	if err != nil {
		t.Errorf("%s: %v, want DISCONNECT %v", what, err, reason)
		return
	}
	if d, ok := p.(*m5.Disconnect); !ok || d.Reason != reason {
		t.Errorf("%s: got %s, want DISCONNECT %v", what, m5.Describe(p), reason)
		return
	}
	if _, err := c.Next(m5.Timeout); err == nil {
		t.Errorf("%s: the connection stayed open after the DISCONNECT", what)
	}
}

// TestConformanceTopicAliasOutbound: a broker that uses aliases toward a
// client keeps to the client's Topic Alias Maximum and sets each before
// using it (the client checks both); every message arrives on its topic.
// One that uses none passes too.
func TestConformanceTopicAliasOutbound(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub, _ := b.open(t, "sub", &m5.Properties{TopicAliasMaximum: m5.Ptr[uint16](2)})
		sub.Subscribe(nil, m5.Subscription{Filter: "tao/#", QoS: 1})
		pub := b.client(t, "pub")
		topics := []string{"tao/a", "tao/b", "tao/a", "tao/c", "tao/b", "tao/c", "tao/a"}
		aliased := 0
		for i, topic := range topics {
			pub.Publish(&m5.Publish{Topic: topic, QoS: 1, Payload: []byte(strconv.Itoa(i))})
			if p := expectDelivery(t, sub, topic, strconv.Itoa(i), 1); p.Properties.TopicAlias != nil {
				aliased++
			}
		}
		t.Logf("%d of %d deliveries used a topic alias", aliased, len(topics))
	})
}

// TestConformanceNoLocal: a No Local subscription does not get its own
// client's messages [MQTT-3.8.3-3].
func TestConformanceNoLocal(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		s := b.client(t, "s")
		s.Subscribe(nil, m5.Subscription{Filter: "nl/x", QoS: 1, NoLocal: true})
		s.Publish(&m5.Publish{Topic: "nl/x", QoS: 1, Payload: []byte("own")})
		b.client(t, "other").Publish(&m5.Publish{Topic: "nl/x", QoS: 1, Payload: []byte("other")})
		expectDelivery(t, s, "nl/x", "other", 1)
		expectNoPublish(t, s.Sync(), "after the other client's message")
	})
}

// TestConformanceUnsubscribe: UNSUBACK says 0x00 for a subscription that
// existed and 0x11 for one that did not; messages stop.
func TestConformanceUnsubscribe(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		s := b.client(t, "s")
		s.Subscribe(nil, m5.Subscription{Filter: "u/x", QoS: 1})
		ack := s.Unsubscribe("u/x", "u/never")
		if !slices.Equal(ack.Reasons, []m5.Reason{m5.Success, m5.NoSubscriptionExisted}) {
			t.Errorf("UNSUBACK %s, want 0x00 and 0x11", m5.Describe(ack))
		}
		b.client(t, "pub").Publish(&m5.Publish{Topic: "u/x", QoS: 1})
		expectNoPublish(t, s.Sync(), "after UNSUBSCRIBE")
	})
}

// TestConformanceMessageExpiryAbsent: a message published without a
// Message Expiry Interval is delivered without one, live and retained
// alike [MQTT-3.3.2-5..6 apply only to messages that have one]; a broker
// that adds one tells v5 clients the message will go stale, and drops
// retained messages nobody asked it to.
func TestConformanceMessageExpiryAbsent(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		live := b.client(t, "live")
		live.Subscribe(nil, m5.Subscription{Filter: "mea/live", QoS: 1})
		pub := b.client(t, "pub")
		pub.Publish(&m5.Publish{Topic: "mea/live", QoS: 1, Payload: []byte("live")})
		pub.Publish(&m5.Publish{Topic: "mea/retained", QoS: 1, Retain: true, Payload: []byte("kept")})
		pub.Publish(&m5.Publish{Topic: "mea/retained0", Retain: true, Payload: []byte("kept0")})
		pub.Sync() // the QoS 0 one has no ack: retained once its marker is back
		if p := expectDelivery(t, live, "mea/live", "live", 1); p.Properties.MessageExpiry != nil {
			t.Errorf("live delivery gained a Message Expiry Interval of %d s: %s", *p.Properties.MessageExpiry, m5.Describe(p))
		}
		late := b.client(t, "late")
		late.Subscribe(nil, m5.Subscription{Filter: "mea/retained", QoS: 1}, m5.Subscription{Filter: "mea/retained0", QoS: 1})
		for range 2 {
			if p := late.ExpectPublish(); !p.Retain || p.Properties.MessageExpiry != nil {
				t.Errorf("retained message delivered as %s, want RETAIN and no Message Expiry Interval", m5.Describe(p))
			}
		}
	})
}

// TestConformanceMessageExpiry: a message's Message Expiry Interval is
// counted down while the broker holds it [MQTT-3.3.2-6], and a message
// whose interval has passed is not delivered, retained or queued for an
// offline session [MQTT-3.3.2-5].
func TestConformanceMessageExpiry(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		live := b.client(t, "live")
		live.Subscribe(nil, m5.Subscription{Filter: "me/long", QoS: 1})
		offline, _ := b.open(t, "offline", &m5.Properties{SessionExpiry: m5.Ptr[uint32](60)})
		offline.Subscribe(nil, m5.Subscription{Filter: "me/short", QoS: 1})
		offline.Disconnect(&m5.Disconnect{})

		pub := b.client(t, "pub")
		published := time.Now()
		pub.Publish(&m5.Publish{Topic: "me/long", QoS: 1, Retain: true, Payload: []byte("long"),
			Properties: m5.Properties{MessageExpiry: m5.Ptr[uint32](60)}})
		pub.Publish(&m5.Publish{Topic: "me/short", QoS: 1, Retain: true, Payload: []byte("short"),
			Properties: m5.Properties{MessageExpiry: m5.Ptr[uint32](1)}})
		if p := expectDelivery(t, live, "me/long", "long", 1); p.Properties.MessageExpiry == nil ||
			*p.Properties.MessageExpiry > 60 || *p.Properties.MessageExpiry < 50 {
			t.Errorf("live delivery: %s, want a Message Expiry Interval of 60 or a little less", m5.Describe(p))
		}

		// Time must pass for a message to expire. 3.5 s: "me/short" (1 s) is
		// then past its expiry even for a broker that counts whole seconds and
		// sweeps expired messages once a second, with room for a slow machine.
		time.Sleep(time.Until(published.Add(3500 * time.Millisecond)))

		late := b.client(t, "late")
		late.Subscribe(nil, m5.Subscription{Filter: "me/#", QoS: 1})
		p := expectDelivery(t, late, "me/long", "long", 1)
		if e := p.Properties.MessageExpiry; e == nil || *e > 57 || *e == 0 {
			t.Errorf("retained after 3.5 s: %s, want a Message Expiry Interval counted down to 57 or less", m5.Describe(p))
		}
		expectNoPublish(t, late.Sync(), "the retained message past its expiry")

		back, ack := m5.Open(t, b.addr, &m5.Connect{ClientID: "offline", KeepAlive: 60,
			Properties: m5.Properties{SessionExpiry: m5.Ptr[uint32](60)}}, m5.Options{})
		if !ack.SessionPresent {
			t.Fatalf("the offline session is gone: %s", m5.Describe(ack))
		}
		expectNoPublish(t, back.Sync(), "the queued message past its expiry")
	})
}

// TestConformanceFlowControl: the broker never has more unacknowledged
// QoS 1 PUBLISHes in flight to a client than the client's Receive Maximum
// [MQTT-3.3.4-9] (the client fails the test on the first one too many),
// sends the rest as acknowledgements come, in order, and loses none.
func TestConformanceFlowControl(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		if b.mosquitto {
			// Seen with Debian's 2.0.11: after PUBACKs for messages 1, 2 and 3
			// it had messages 4, 5 and 6 in flight at once.
			t.Skip("Mosquitto 2.0.11 sends more unacknowledged QoS 1 messages than the client's Receive Maximum (3 with a maximum of 2)")
		}
		sub, _ := m5.Open(t, b.addr, &m5.Connect{ClientID: "slow", CleanStart: true,
			Properties: m5.Properties{ReceiveMaximum: m5.Ptr[uint16](2)}}, m5.Options{ManualAcks: true})
		sub.Subscribe(nil, m5.Subscription{Filter: "fc/x", QoS: 1})
		pub := b.client(t, "pub")
		const n = 8
		for i := range n {
			pub.Publish(&m5.Publish{Topic: "fc/x", QoS: 1, Payload: []byte(strconv.Itoa(i))})
		}
		var window []*m5.Publish
		for range 2 {
			window = append(window, sub.ExpectPublish())
		}
		expectNoPublish(t, sub.Sync(), "with 2 unacknowledged (Receive Maximum 2)")
		for i := range n {
			if len(window) == 0 {
				t.Fatalf("message %d never came", i)
			}
			p := window[0]
			window = window[1:]
			if string(p.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d: got %s", i, m5.Describe(p))
			}
			sub.Ack(p)
			if i+2 < n {
				window = append(window, sub.ExpectPublish())
			}
		}
		expectNoPublish(t, sub.Sync(), "after the last message")
	})
}

// TestConformanceFlowControlQoS2: a QoS 2 message counts against the
// Receive Maximum until its PUBCOMP, not its PUBREC [MQTT-3.3.4-9], and
// the exchanges of the messages sent later complete as the first did.
func TestConformanceFlowControlQoS2(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		sub, _ := m5.Open(t, b.addr, &m5.Connect{ClientID: "slow", CleanStart: true,
			Properties: m5.Properties{ReceiveMaximum: m5.Ptr[uint16](1)}}, m5.Options{ManualAcks: true})
		sub.Subscribe(nil, m5.Subscription{Filter: "fc2/x", QoS: 2})
		pub := b.client(t, "pub")
		const n = 3
		for i := range n {
			pub.Publish(&m5.Publish{Topic: "fc2/x", QoS: 2, Payload: []byte(strconv.Itoa(i))})
		}
		for i := range n {
			p := expectDelivery(t, sub, "fc2/x", strconv.Itoa(i), 2)
			sub.Ack(p)
			rel := sub.ExpectAck(m5.PUBREL, p.PacketID)
			expectCleanAck(t, rel, nil)
			expectNoPublish(t, sub.Sync(), "before the PUBCOMP (Receive Maximum 1)")
			sub.Complete(rel)
		}
		expectNoPublish(t, sub.Sync(), "after the last message")
	})
}

// TestConformanceReceiveMaximumInbound: a client that has more QoS 2
// messages unacknowledged than the Receive Maximum the broker announced
// is disconnected with 0x93 Receive Maximum exceeded (section 3.3.4), or
// at least has that message refused.
func TestConformanceReceiveMaximumInbound(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		pub, ack := b.open(t, "greedy", nil)
		if ack.Properties.ReceiveMaximum == nil {
			t.Skip("no Receive Maximum announced (65,535): too many messages for a test")
		}
		limit := int(*ack.Properties.ReceiveMaximum)
		for i := 1; i <= limit; i++ {
			pub.Send(&m5.Publish{Topic: "rmi/x", QoS: 2, PacketID: uint16(i)})
			if a := pub.ExpectAck(m5.PUBREC, uint16(i)); a.Reason >= 0x80 {
				t.Fatalf("message %d of %d refused: %s", i, limit, m5.Describe(a))
			}
		}
		pub.Send(&m5.Publish{Topic: "rmi/x", QoS: 2, PacketID: uint16(limit + 1)})
		// Section 3.3.4 says DISCONNECT 0x93; Mosquitto refuses that one
		// message instead (PUBREC 0x97 Quota exceeded) and keeps the
		// connection. Both tell the client; silence or acceptance would not.
		p := pub.Expect()
		if a, ok := p.(*m5.Ack); ok && a.Kind == m5.PUBREC && a.PacketID == uint16(limit+1) && a.Reason >= 0x80 {
			return
		}
		if d, ok := p.(*m5.Disconnect); !ok || d.Reason != m5.ReceiveMaximumExceeded {
			t.Errorf("message %d with a Receive Maximum of %d: got %s, want DISCONNECT 0x93 (or the message refused)", limit+1, limit, m5.Describe(p))
		}
	})
}

// publishOfSize is a QoS 1 PUBLISH to topic that is exactly size bytes on
// the wire.
func publishOfSize(topic string, size int) *m5.Publish {
	p := &m5.Publish{Topic: topic, QoS: 1, PacketID: 1}
	overhead := len(m5.MustEncode(p))
	p.Payload = bytes.Repeat([]byte("x"), size-overhead)
	for len(m5.MustEncode(p)) > size { // the Remaining Length took a byte more
		p.Payload = p.Payload[1:]
	}
	p.PacketID = 0
	return p
}

// TestConformanceMaximumPacketSize: a broker started with a Maximum
// Packet Size of 4096 announces it, takes a PUBLISH of exactly 4096 bytes,
// and answers a larger one with DISCONNECT 0x95 Packet too large before
// closing the connection (section 3.2.2.3.6 and 4.13): a bare close or a
// reset tells the client nothing. (Both brokers leave the 1 to 3 bytes of
// the Remaining Length out of the count, and take up to 4098 or 4099
// bytes; 4196 is past that.)
func TestConformanceMaximumPacketSize(t *testing.T) {
	forEachBroker(t, brokerOpts{maxPacketSize: 4096}, func(t *testing.T, b *broker5) {
		c, ack := b.open(t, "big", nil)
		if s := ack.Properties.MaximumPacketSize; s == nil || *s != 4096 {
			t.Errorf("CONNACK %s, want Maximum Packet Size 4096", m5.Describe(ack))
		}
		sub := b.client(t, "sub")
		sub.Subscribe(nil, m5.Subscription{Filter: "mps/#", QoS: 1})

		fits := publishOfSize("mps/fits", 4096)
		expectCleanAck(t, c.Publish(fits)[0], nil)
		expectDelivery(t, sub, "mps/fits", string(fits.Payload), 1)

		c.Send(publishOfSize("mps/big", 4196))
		p, err := c.Next(m5.Timeout)
		if err != nil {
			t.Fatalf("after a packet of 4196 bytes: %v, want DISCONNECT 0x95 Packet too large", err)
		}
		if d, ok := p.(*m5.Disconnect); !ok || d.Reason != m5.PacketTooLarge {
			t.Fatalf("after a packet of 4196 bytes: %s, want DISCONNECT 0x95 Packet too large", m5.Describe(p))
		}
		t.Logf("then the connection ended with %v", c.ExpectClosed())
		expectNoPublish(t, sub.Sync(), "the message that was too large")
	})
}

// TestConformanceClientMaximumPacketSize: the broker does not send a
// client a packet larger than the client's Maximum Packet Size; it drops
// that message for that client [MQTT-3.1.2-24, -25] and goes on with the
// next.
func TestConformanceClientMaximumPacketSize(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		small, _ := b.open(t, "small", &m5.Properties{MaximumPacketSize: m5.Ptr[uint32](256)})
		small.Subscribe(nil, m5.Subscription{Filter: "cmps/#", QoS: 1})
		pub := b.client(t, "pub")
		pub.Publish(&m5.Publish{Topic: "cmps/big", QoS: 1, Payload: bytes.Repeat([]byte("x"), 1000)})
		pub.Publish(&m5.Publish{Topic: "cmps/small", QoS: 1, Payload: []byte("fits")})
		expectDelivery(t, small, "cmps/small", "fits", 1)
	})
}

// TestConformancePublishToSysIsAnswered: a QoS 1 or 2 PUBLISH is always
// answered, even when the broker will not take it (a topic under $SYS,
// which is the broker's): with a PUBACK or PUBREC saying why, or a
// DISCONNECT (section 4.3.2). Left unanswered, the client waits forever
// for its acknowledgement (paho and MQTT.js do), and its packet identifier
// stays in use.
func TestConformancePublishToSysIsAnswered(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		clients := map[byte]*m5.Client{}
		msgs := map[byte]*m5.Publish{}
		for _, qos := range []byte{1, 2} {
			clients[qos] = b.client(t, fmt.Sprintf("sys%d", qos))
			msgs[qos] = &m5.Publish{Topic: "$SYS/broker/fake", QoS: qos, Payload: []byte("x")}
			clients[qos].Send(msgs[qos])
		}
		deadline := time.Now().Add(m5.Timeout) // one wait for both
		for _, qos := range []byte{1, 2} {
			msg := msgs[qos]
			p, err := clients[qos].Next(time.Until(deadline))
			if err != nil {
				t.Errorf("QoS %d PUBLISH to %s: %v, want an acknowledgement or a DISCONNECT", qos, msg.Topic, err)
				continue
			}
			switch p := p.(type) {
			case *m5.Ack:
				if p.PacketID != msg.PacketID || (p.Kind != m5.PUBACK && p.Kind != m5.PUBREC) {
					t.Errorf("QoS %d PUBLISH to %s answered with %s", qos, msg.Topic, m5.Describe(p))
				}
			case *m5.Disconnect:
			default:
				t.Errorf("QoS %d PUBLISH to %s answered with %s", qos, msg.Topic, m5.Describe(p))
			}
		}
	})
}
