package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// The Remote in MQTT 5 (paho.golang). The contract suite runs it too
// (Remote5Mosquitto, Remote5Mochi); these are what only MQTT 5 has.

// v5Device is a device speaking MQTT 5, through paho.golang: what it
// receives goes to a channel.
func v5Device(t *testing.T, addr, clientID string) (*paho5.Client, <-chan *paho5.Publish) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan *paho5.Publish, 256)
	c := paho5.NewClient(paho5.ClientConfig{Conn: nc, OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
		func(pr paho5.PublishReceived) (bool, error) {
			select {
			case received <- pr.Packet:
			default:
				t.Errorf("device %s: more than 256 messages unread", clientID)
			}
			return true, nil
		}}})
	if _, err := c.Connect(t.Context(), &paho5.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("device %s: connect: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho5.Disconnect{}) })
	return c, received
}

func v5Subscribe(t *testing.T, c *paho5.Client, filter string) {
	t.Helper()
	if _, err := c.Subscribe(t.Context(), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("device: subscribe %s: %v", filter, err)
	}
}

// TestRemote5CarriesRequestResponse: a command published through the
// Remote reaches a v5 device with its response topic and correlation data;
// the device's answer reaches the Remote with them, as a command's
// acknowledgement needs.
func TestRemote5CarriesRequestResponse(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + m.Addr()}}, true)
	responses, _ := busSubscribe(t, r, "motehub/response/+")
	device, commands := v5Device(t, m.Addr(), "v5-device")
	v5Subscribe(t, device, "nodes/+/relay/+/set")

	err := r.Publish(t.Context(), bridge.Message{Topic: "nodes/m1/relay/r1/set", Payload: []byte(`{"state":true}`), QoS: 1,
		ResponseTopic: "motehub/response/e1", CorrelationData: []byte("cmd-1")})
	if err != nil {
		t.Fatal(err)
	}
	cmd := hubtest.Receive(t, commands, hubtest.Timeout, "the command")
	if cmd.Properties == nil || cmd.Properties.ResponseTopic != "motehub/response/e1" || string(cmd.Properties.CorrelationData) != "cmd-1" {
		t.Fatalf("the device got %+v with properties %+v, want the response topic and correlation data", cmd, cmd.Properties)
	}
	if _, err := device.Publish(t.Context(), &paho5.Publish{Topic: cmd.Properties.ResponseTopic, QoS: 1, Payload: []byte(`{"ok":true}`),
		Properties: &paho5.PublishProperties{CorrelationData: cmd.Properties.CorrelationData}}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return responses.count() == 1 }, "no response reached the Remote")
	if got := responses.all()[0]; got.Topic != "motehub/response/e1" || string(got.CorrelationData) != "cmd-1" || got.Retain || got.Replay {
		t.Fatalf("the response: %+v, want its correlation data, live", got)
	}
}

// TestRemote5SharedSubscriptions: two Remotes in one group share the
// messages of $share/GROUP/FILTER, each message going to one of them; in
// MQTT 3.1.1 the filter is refused, in words.
func TestRemote5SharedSubscriptions(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	a := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, Protocol: 5}, true)
	b := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, Protocol: 5}, true)
	onA, _ := busSubscribe(t, a, "$share/hubs/s/#")
	onB, _ := busSubscribe(t, b, "$share/hubs/s/#")
	device := hubtest.ConnectMQTT(t, m.Addr(), "sharer")
	const n = 20
	for i := range n {
		hubtest.PublishMQTT(t, device, fmt.Sprintf("s/%d", i), 1, false, nil)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return onA.count()+onB.count() == n }, "the group got %d+%d of %d", onA.count(), onB.count(), n)
	seen := map[string]bool{} // at most n
	for _, msg := range append(onA.all(), onB.all()...) {
		if seen[msg.Topic] {
			t.Fatalf("%s reached both members of the group", msg.Topic)
		}
		seen[msg.Topic] = true
	}
	t.Logf("shared: %d to one Remote, %d to the other", onA.count(), onB.count())

	for _, bad := range []string{"$share/hubs", "$share//s/#", "$share/h+/s", "$queue/s/#"} {
		if _, err := a.Subscribe(bad, func(bridge.Message) {}); err == nil {
			t.Errorf("Subscribe(%q) in MQTT 5: no error", bad)
		}
	}
	v3 := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}}, true)
	if _, err := v3.Subscribe("$share/hubs/s/#", func(bridge.Message) {}); err == nil || !strings.Contains(err.Error(), "shared subscriptions are not supported") {
		t.Fatalf("a shared subscription in MQTT 3.1.1: %v, want it refused", err)
	}
}

// TestRemote5Refusals: a CONNACK refusal is reported with its reason code
// in words (never the password), and a PUBACK refusal wraps ErrRefused.
func TestRemote5Refusals(t *testing.T) {
	e, _, _ := securedBroker(t, Config{})
	bad := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://alice:wrong-password@" + e.Addr().String()}}, false)
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if err := bad.Ready(); err == nil || !strings.Contains(err.Error(), "refused: bad user name or password, reason code 0x86") {
			return fmt.Errorf("Ready = %v, want the CONNACK's reason in words", err)
		}
		return nil
	})
	if msg := bad.Ready().Error(); strings.Contains(msg, "wrong-password") {
		t.Fatalf("Ready shows the password: %s", msg)
	}
	t.Logf("refused: %v", bad.Ready())

	alice := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + e.Addr().String()}, Username: "alice", Password: "alice-secret"}, true)
	err := alice.Publish(t.Context(), bridge.Message{Topic: "nodes/m1/relay/r1", QoS: 1})
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a publish the broker refuses: %v, want ErrRefused", err)
	}
	t.Logf("PUBACK refusal: %v", err)
	if err := alice.Publish(t.Context(), bridge.Message{Topic: "nodes/m1/relay/r1/set", QoS: 1}); err != nil {
		t.Fatalf("a publish alice may make: %v", err)
	}
}

// TestCopyDetector: copies of one message, one per subscription, each with
// its own identifier, are dropped; the same message published again, or
// one without identifiers, is not.
func TestCopyDetector(t *testing.T) {
	pub := func(topic, payload string, id int) *paho5.Publish {
		p := &paho5.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}
		if id > 0 {
			p.Properties = &paho5.PublishProperties{SubscriptionIdentifier: &id}
		}
		return p
	}
	var d copyDetector
	for i, c := range []struct {
		p    *paho5.Publish
		copy bool
	}{
		{pub("a", "1", 1), false},
		{pub("a", "1", 2), true},  // the copy for the second subscription
		{pub("a", "1", 3), true},  // and the third
		{pub("a", "1", 1), false}, // published again
		{pub("a", "1", 2), true},
		{pub("a", "2", 2), false}, // another payload
		{pub("b", "2", 1), false}, // another topic
		{pub("b", "2", 0), false}, // no identifier: never a copy
		{pub("b", "2", 0), false},
	} {
		if got := d.isCopy(c.p); got != c.copy {
			t.Errorf("PUBLISH %d (%s %s): copy %v, want %v", i, c.p.Topic, c.p.Payload, got, c.copy)
		}
	}
}

// TestRemote5FailsOver: the failover of TestRemoteFailsOverBetweenNodes in
// MQTT 5: a new connection on the next node, subscriptions made again.
func TestRemote5FailsOver(t *testing.T) {
	a, b := hubtest.StartMosquitto(t), hubtest.StartMosquitto(t)
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + a.Addr(), "mqtt5://" + b.Addr()}, OnStatus: status.record}, true)
	status.next(t)
	stream, _ := busSubscribe(t, r, "s/#")
	ms := map[string]*hubtest.Mosquitto{a.URL(): a, b.URL(): b}
	first := ms[r.URL()]
	first.Stop()
	if s := status.next(t); s.Up {
		t.Fatalf("status %+v, want down", s)
	}
	if s := status.next(t); !s.Up || !s.Gap || s.URL == first.URL() {
		t.Fatalf("status %+v, want Up with Gap on the other node", s)
	}
	device := hubtest.ConnectMQTT(t, ms[r.URL()].Addr(), "device")
	hubtest.PublishMQTT(t, device, "s/after", 1, false, nil)
	eventuallyTopics(t, stream, "", "s/after")
	// Close ends the link's goroutines (goleak checks in TestMain).
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
