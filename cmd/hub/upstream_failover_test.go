package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestUpstreamNodesFlagForms: --upstream takes the nodes of one cluster,
// comma-separated and repeated, from the command line, the environment and
// the --config file; a bad URL among good ones is named by its place, never
// by its password.
func TestUpstreamNodesFlagForms(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	abc := []string{"mqtt://a:1883", "mqtt://b:1883", "mqtt://c:1883"}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{name: "one", args: []string{"--upstream", "mqtt://a:1883"}, want: abc[:1]},
		{name: "commas and repeat", args: []string{"--upstream", "mqtt://a:1883, mqtt://b:1883", "--upstream", "mqtt://c:1883"}, want: abc},
		{name: "environment", env: map[string]string{"HUB_UPSTREAM": "mqtt://a:1883,mqtt://b:1883,mqtt://c:1883"}, want: abc},
		{name: "config file", file: `upstream = "mqtt://a:1883,mqtt://b:1883,mqtt://c:1883"`, want: abc},
		{name: "the command line wins", args: []string{"--upstream", "mqtt://c:1883"}, env: map[string]string{"HUB_UPSTREAM": "mqtt://a:1883"}, want: abc[2:]},
		// A comma inside a password does not cut the URL in two.
		{name: "comma in a password", args: []string{"--upstream", "mqtt://hub:se,cret@a:1883,mqtt://b:1883"}, want: []string{"mqtt://hub:se,cret@a:1883", "mqtt://b:1883"}},
	} {
		args := c.args
		if c.file != "" {
			args = append(args, "--config", writeConfig(t, c.file))
		}
		lookup := none
		if c.env != nil {
			lookup = env(c.env)
		}
		o, err := parseOptions(args, lookup, io.Discard)
		if err != nil || !slices.Equal(o.Upstream, c.want) || o.MQTTAddr != "" {
			t.Errorf("%s: upstream %q, mqtt %q, %v; want %q and the embedded broker off", c.name, o.Upstream, o.MQTTAddr, err, c.want)
		}
	}

	for _, c := range []struct {
		name      string
		args      []string
		env       map[string]string
		want      string
		wantNoPwd bool
	}{
		{name: "a bad one among good ones", args: []string{"--upstream", "mqtt://a:1883,gopher://hub:s3cret@b,mqtt://c:1883"}, want: `URL 2 of 3: bad upstream URL: scheme "gopher"`},
		{name: "a path in the second, repeated", args: []string{"--upstream", "mqtt://a:1883", "--upstream", "mqtt://hub:s3cret@b/x"}, want: "mqtt://hub:xxxxx@b/x: an mqtt:// URL has no path or query"},
		{name: "environment", env: map[string]string{"HUB_UPSTREAM": "mqtt://a:1883,mqtts://hub:s3cret#1@b"}, want: "HUB_UPSTREAM: URL 2 of 2: bad upstream URL: its user:password@ does not parse"},
	} {
		lookup := none
		if c.env != nil {
			lookup = env(c.env)
		}
		_, err := parseOptions(c.args, lookup, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v; want %q, without the password", c.name, err, c.want)
		}
	}

	// The same node twice: refused when the hub starts, naming it.
	err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--upstream", "mqtt://a:1883,mqtt://a"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "mqtt://a:1883 is given twice") {
		t.Errorf("the same node twice: %v", err)
	}
}

// TestReplicaFailsOverToAnotherNode: a replica given two nodes. The node it
// is on stops: the replica is ready on the other within the test's patience,
// its browser is told to resync (messages may have been missed), messages
// from a device on the other node reach the browser, its commands reach that
// device, and the failover is counted.
func TestReplicaFailsOverToAnotherNode(t *testing.T) {
	ms := []*hubtest.Mosquitto{hubtest.StartMosquitto(t), hubtest.StartMosquitto(t)}
	h := startHub(t, "--upstream", ms[0].URL()+","+ms[1].URL(), "--upstream-linger", linger)
	ws, _ := h.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	// Which node serves the replica: only the message of the device on it arrives.
	devices := []paho.Client{hubtest.ConnectMQTT(t, ms[0].Addr(), "device-0"), hubtest.ConnectMQTT(t, ms[1].Addr(), "device-1")}
	topics := []string{"nodes/d0/seq", "nodes/d1/seq"}
	for i, d := range devices {
		hubtest.PublishMQTT(t, d, topics[i], 1, false, []byte("1"))
	}
	first := -1
	for first < 0 {
		first = slices.Index(topics, hubtest.ParseFrame(t, ws.ReadLine()).Topic)
	}
	other := 1 - first
	commands := hubtest.SubscribeMQTT(t, devices[other], "nodes/+/relay/+/set", 1)

	stopped := time.Now()
	ms[first].Stop()
	if f := ws.Expect("clown.talk/-/resync"); !strings.Contains(string(f.Payload), "another node") {
		t.Fatalf("the browser's resync: %s, want it to say the replica moved to another node", f.Payload)
	}
	t.Logf("the browser was told to resync %v after the node stopped", time.Since(stopped).Round(time.Millisecond))
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		status, _, _ := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, "")
		return status == 200
	}, "the replica is not ready on the other node")
	if up, lost, failovers := metric(t, h, "motehub_upstream_up"), metric(t, h, "motehub_upstream_disconnects_total"),
		metric(t, h, "motehub_upstream_failovers_total"); up != 1 || lost != 1 || failovers != 1 {
		t.Errorf("motehub_upstream_up %v, _disconnects_total %v, _failovers_total %v; want 1, 1, 1", up, lost, failovers)
	}
	hubtest.PublishMQTT(t, devices[other], topics[other], 1, false, []byte("2"))
	if f := ws.Expect(topics[other]); string(f.Payload) != "2" {
		t.Fatalf("after the failover the browser got %s", f.Payload)
	}
	ws.Send(`["nodes/m1/relay/r1/set", {"state": true}]`)
	if cmd := hubtest.Receive(t, commands, hubtest.Timeout, "the command after the failover"); cmd.Topic != "nodes/m1/relay/r1/set" {
		t.Fatalf("the device got %q", cmd.Topic)
	}
	hubtest.PublishMQTT(t, devices[other], "nodes/m1/relay/r1", 1, false, []byte(`{"state":true}`))
	if f := ws.Expect("clown.talk/-/ack"); !strings.Contains(string(f.Payload), `"ok":true`) {
		t.Fatalf("the command's ack: %s", f.Payload)
	}
}
