package main

import (
	"io"
	"net"
	"strings"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestUpstreamProtocolFlag: --upstream-protocol 5, or mqtt5:// URLs, make
// the replica speak MQTT 5; anything else is refused, and so are nodes of
// both versions.
func TestUpstreamProtocolFlag(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--upstream", "mqtt://a"}, 0},
		{[]string{"--upstream", "mqtt://a", "--upstream-protocol", "5"}, 5},
		{[]string{"--upstream", "mqtt://a", "--upstream-protocol", "4"}, 4},
		{[]string{"--upstream", "mqtt5://a"}, 0}, // the URL says it
	} {
		o, err := parseOptions(c.args, none, io.Discard)
		if err != nil || o.UpstreamProtocol != c.want {
			t.Errorf("%v: protocol %d, %v; want %d", c.args, o.UpstreamProtocol, err, c.want)
		}
	}
	if _, err := parseOptions([]string{"--upstream", "mqtt://a", "--upstream-protocol", "3"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "want 4 (MQTT 3.1.1) or 5") {
		t.Errorf("--upstream-protocol 3: %v", err)
	}
	if o, err := parseOptions([]string{"--upstream", "mqtt://a"}, func(k string) (string, bool) { return "5", k == "HUB_UPSTREAM_PROTOCOL" }, io.Discard); err != nil || o.UpstreamProtocol != 5 {
		t.Errorf("HUB_UPSTREAM_PROTOCOL=5: %d, %v", o.UpstreamProtocol, err)
	}
	err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--upstream", "mqtt5://a:1883,mqtt://b:1883"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "speak one version") {
		t.Errorf("nodes of both versions: %v", err)
	}
}

// TestReplicaV5ConfirmsByCorrelationData: a replica speaking MQTT 5 to
// Mosquitto. A browser's command reaches a v5 device with the replica's
// response topic and the command's correlation data; the device answers
// there (it never echoes its state), and the browser's command is
// confirmed, with the device's answer, as on the embedded broker.
func TestReplicaV5ConfirmsByCorrelationData(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	h := startHub(t, "--upstream", m.URL(), "--upstream-protocol", "5", "--upstream-linger", linger)
	nc, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	commands := make(chan *paho5.Publish, 16)
	device := paho5.NewClient(paho5.ClientConfig{Conn: nc, OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
		func(pr paho5.PublishReceived) (bool, error) {
			select {
			case commands <- pr.Packet:
			default:
			}
			return true, nil
		}}})
	if _, err := device.Connect(t.Context(), &paho5.Connect{ClientID: "v5-relay", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = device.Disconnect(&paho5.Disconnect{}) })
	if _, err := device.Subscribe(t.Context(), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "nodes/+/relay/+/set", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return metric(t, h, "motehub_bus_subscriptions") >= 1 },
		"the replica is not subscribed to its response topic")

	ws, _ := h.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	ws.Send(`["nodes/m1/relay/r1/set", {"state": true}]`)
	cmd := hubtest.Receive(t, commands, hubtest.Timeout, "the command")
	if cmd.Properties == nil || !strings.HasPrefix(cmd.Properties.ResponseTopic, "motehub/response/") || len(cmd.Properties.CorrelationData) == 0 {
		t.Fatalf("the device got %+v, properties %+v: want a response topic and correlation data", cmd, cmd.Properties)
	}
	if _, err := device.Publish(t.Context(), &paho5.Publish{Topic: cmd.Properties.ResponseTopic, QoS: 1, Payload: []byte(`{"state":true}`),
		Properties: &paho5.PublishProperties{CorrelationData: cmd.Properties.CorrelationData}}); err != nil {
		t.Fatal(err)
	}
	f := ws.Expect("clown.talk/-/ack")
	if p := string(f.Payload); !strings.Contains(p, `"ok":true`) || !strings.Contains(p, `"response":{"state":true}`) {
		t.Fatalf("the command's ack: %s, want ok with the device's response", p)
	}
}
