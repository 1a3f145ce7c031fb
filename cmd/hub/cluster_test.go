package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/natstest"
)

// Hub replicas in front of a real three-node NATS cluster (its MQTT
// gateway, JetStream on), built and started by internal/natstest on
// loopback ports.

// TestReplicasOnANATSCluster: replica A on node 0, replica B on node 1, a
// device on node 2. The device's telemetry reaches browsers on both
// replicas; a command from a browser on either reaches the device, and the
// device's state confirms it on the replica that sent it.
func TestReplicasOnANATSCluster(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{})
	a := startHub(t, "--upstream", c.Nodes[0].MQTTURL(), "--upstream-linger", linger)
	b := startHub(t, "--upstream", c.Nodes[1].MQTTURL(), "--upstream-linger", linger)
	device := newClusterDevice(t, c, 2, "relay-device")

	onA, _ := a.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	onB, _ := b.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	framesA, framesB := readFrames(t, onA), readFrames(t, onB)
	waitForRoutes(t, device, framesA, framesB)

	// A '.' in a topic travels as part of its level ("//" in NATS).
	device.mustPublish("nodes/m1.v2/temperature", "21.5")
	for name, frames := range map[string]<-chan arrived{"A": framesA, "B": framesB} {
		if f := expectFrame(t, frames, "nodes/m1.v2/temperature"); string(f.Payload) != "21.5" {
			t.Fatalf("the browser on %s got %s", name, f.Payload)
		}
	}

	for i, sender := range []struct {
		name   string
		ws     *hubtest.WS
		frames <-chan arrived
	}{{"A", onA, framesA}, {"B", onB, framesB}} {
		state := strconv.FormatBool(i == 0)
		sender.ws.Send(`["nodes/m1/relay/r1/set", {"state": ` + state + `}]`)
		cmd := hubtest.Receive(t, device.commands, hubtest.Timeout, "command from replica "+sender.name)
		if cmd.Topic != "nodes/m1/relay/r1/set" || cmd.Payload != `{"state":`+state+`}` {
			t.Fatalf("the device got %q %s from replica %s", cmd.Topic, cmd.Payload, sender.name)
		}
		device.mustPublish("nodes/m1/relay/r1", `{"state":`+state+`}`)
		if f := expectFrame(t, sender.frames, "clown.talk/-/ack"); !strings.Contains(string(f.Payload), `"ok":true`) {
			t.Fatalf("the command on %s: %s, want a confirmation", sender.name, f.Payload)
		}
	}
}

// TestReplicaFailsOverAcrossNATSNodes: replica A is given all three nodes
// and a device on another node publishes a counter. The node A is on is
// killed mid-stream: A moves to another node without a restart, /readyz
// comes back to 200 (or never left it), the browser is told to resync and
// then gets every value again; a command sent just after the kill gets an
// answer (confirmed, or failed), never silence. The node restarted later
// changes nothing for A. The test reports the time from the kill to A ready
// again and the values the browser missed.
//
// Twice: with nats-server's defaults, where the gateway gives up on
// JetStream after 5 s, within a leader election (4 to 9 s), so that it may
// refuse A's subscription on the new node (A asks again until it is
// granted, then resyncs its browser once more); and with
// docker-compose.yml's js_api_timeout of 15 s, where A gives up first
// (10 s) and tries again.
func TestReplicaFailsOverAcrossNATSNodes(t *testing.T) {
	for _, c := range []struct {
		name string
		mqtt []string
	}{
		{"nats-defaults", nil},
		{"js_api_timeout=15s", []string{"js_api_timeout: 15s"}},
	} {
		t.Run(c.name, func(t *testing.T) { failOverAcrossNATSNodes(t, c.mqtt) })
	}
}

// failOverAcrossNATSNodes is TestReplicaFailsOverAcrossNATSNodes on a
// cluster whose nodes' mqtt blocks have mqttConfig too.
func failOverAcrossNATSNodes(t *testing.T, mqttConfig []string) {
	c := natstest.StartCluster(t, natstest.Options{MQTT: mqttConfig})
	a := startHub(t, "--upstream", strings.Join(c.MQTTURLs(), ","), "--upstream-linger", linger,
		"--upstream-client-id-prefix", "replica-a-")
	first := nodeOfClient(t, c, "replica-a-")
	// The device is on the node A would try last: A moves to a node
	// that is neither the device's nor the dead one, and the messages
	// cross the cluster.
	device := newClusterDevice(t, c, (first+2)%3, "counter-device")
	ws, _ := a.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	frames := readFrames(t, ws)
	waitForRoutes(t, device, frames)
	readyz := func() int {
		status, _, _ := get(t, "GET", "http://"+a.HTTP+"/readyz", nil, "")
		return status
	}

	const counter = "nodes/m1/counter"
	for i := range 20 {
		device.mustPublish(counter, strconv.Itoa(i))
	}
	for i := range 20 {
		if f := expectFrame(t, frames, counter); string(f.Payload) != strconv.Itoa(i) {
			t.Fatalf("value %d: the browser got %s", i, f.Payload)
		}
	}

	// The device goes on publishing, 50 values a second, on a goroutine of
	// its own, and follows the command it gets.
	var (
		mu     sync.Mutex
		sent   []int // values whose PUBACK the device got
		failed int   // values whose publish failed (the device was cut off)
	)
	stopDevice := make(chan struct{})
	var deviceDone sync.WaitGroup
	deviceDone.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for next := 20; ; next++ {
			select {
			case <-stopDevice:
				return
			case <-tick.C:
			}
			err := device.publish(counter, strconv.Itoa(next))
			mu.Lock()
			if err != nil {
				failed++
			} else {
				sent = append(sent, next)
			}
			mu.Unlock()
			select {
			case cmd := <-device.commands:
				if cmd.Topic == "nodes/m1/relay/r1/set" {
					_ = device.publish("nodes/m1/relay/r1", `{"state":true}`)
				}
			default:
			}
		}
	})
	stop := sync.OnceFunc(func() { close(stopDevice); deviceDone.Wait() })
	t.Cleanup(stop)

	killed := time.Now()
	c.Kill(first)
	ws.Send(`["nodes/m1/relay/r1/set", {"state": true}]`)

	// The test watches the browser's frames and A's readiness.
	var (
		seen         []int          // values the browser got after the first resync, each once
		resync, ack  *hubtest.Frame // the last resync
		resyncs      int
		redelivered  int  // earlier values delivered again after a later resync
		lastResync   int  // the index in seen of the first value after the last resync
		resentOK     bool // a resync came just before: the current value may come again
		resyncAt     time.Duration
		notReady     bool // /readyz said 503 at some point
		readyAgainAt time.Duration
	)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	deadline := time.After(90 * time.Second)
	for resync == nil || ack == nil || len(seen) < 10 || (notReady && readyAgainAt == 0) {
		select {
		case <-deadline:
			t.Fatalf("after %v: resync %v, ack %v, /readyz 503 seen %v and 200 again after %v, values seen after the resync %d",
				time.Since(killed), resync != nil, ack != nil, notReady, readyAgainAt, len(seen))
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the WebSocket closed")
			}
			switch f.Topic {
			case counter:
				v, err := strconv.Atoi(string(f.Payload))
				if err != nil {
					t.Fatalf("a counter frame %s", f.Payload)
				}
				switch {
				case resync == nil:
				case len(seen) > 0 && v <= seen[len(seen)-1]:
					switch {
					case resentOK && v == seen[len(seen)-1]:
						// A resync sends the current value again.
					case resyncs > 1:
						// A later resync is a refused subscription granted
						// at last: NATS may then deliver again what it had
						// delivered on the first (QoS 1 is at least once).
						redelivered++
					default:
						t.Fatalf("after the resync the browser got %v, then %d", seen, v)
					}
				default:
					seen = append(seen, v)
				}
				resentOK = false
			case "clown.talk/-/resync":
				if resync == nil {
					resyncAt = f.at.Sub(killed)
				}
				resync, resentOK, lastResync = &f.Frame, true, len(seen)
				resyncs++
			case "clown.talk/-/ack":
				ack = &f.Frame
			}
		case <-poll.C:
			switch status := readyz(); {
			case status != 200:
				notReady, readyAgainAt = true, 0
			case notReady && readyAgainAt == 0:
				readyAgainAt = time.Since(killed)
			}
		}
	}
	stop()

	var notice struct{ Code, Reason string }
	if err := json.Unmarshal(resync.Payload, &notice); err != nil || notice.Code != "broker-gap" {
		t.Errorf("the browser's resync: %s, want the code broker-gap", resync.Payload)
	}
	var answer struct {
		OK    bool
		Error string
	}
	if err := json.Unmarshal(ack.Payload, &answer); err != nil || (!answer.OK && answer.Error == "") {
		t.Errorf("the command sent just after the kill: %s, want a confirmation or a failure that says why", ack.Payload)
	}
	// Once the values come again, they all come, in order: every value the
	// device sent from the first one seen on, up to the last one seen. (A
	// value whose publish failed may have arrived too.)
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Errorf("after the resync the browser got %v: %d after %d", seen, seen[i], seen[i-1])
		}
	}
	// From the last resync on, nothing is missing (before it, the browser
	// was told that something may be).
	fromLast := seen[min(lastResync, len(seen)-1)]
	for _, v := range sent {
		if v >= fromLast && v <= seen[len(seen)-1] && !slices.Contains(seen, v) {
			t.Errorf("after the last resync the browser got %v, without %d, which the device sent", seen, v)
		}
	}
	missed := 0
	for _, v := range sent {
		if v < seen[0] {
			missed++
		}
	}
	failovers := metric(t, a, "motehub_upstream_failovers_total")
	if failovers < 1 {
		t.Errorf("motehub_upstream_failovers_total %v, want at least 1", failovers)
	}
	t.Logf("node %d killed: /readyz 503 seen %v, 200 again %v after the kill; resync %v after (%d in all); the browser missed %d values the device had sent (and %d the device could not send); command: %s; failovers %v; A's log:\n\t%s",
		first, notReady, readyAgainAt.Round(time.Millisecond), resyncAt.Round(time.Millisecond), resyncs, missed, failed, ack.Payload, failovers, upstreamEvents(a.Log.String()))

	// The node comes back: A stays where it is, and everything still works.
	// The values the device sent before may still be on their way, and
	// NATS may deliver some of them again (QoS 1 is at least once: a
	// consumer whose leader moved sends what it had no acknowledgement
	// for); the new values come, in order, after whatever came before.
	last := sent[len(sent)-1]
	c.Restart(first)
	for i := last + 1; i <= last+5; i++ {
		device.mustPublish(counter, strconv.Itoa(i))
	}
	again := 0
	for next := last + 1; next <= last+5; {
		f := expectFrame(t, frames, counter) // each within hubtest.Timeout: bounded by what the device sent
		n, err := strconv.Atoi(string(f.Payload))
		switch {
		case err != nil || n > next:
			t.Fatalf("after the node came back the browser got %s, want %d", f.Payload, next)
		case n == next:
			next++
		case n < seen[len(seen)-1]:
			again++ // an earlier value delivered again
		}
	}
	if again+redelivered > 0 {
		t.Logf("NATS delivered %d earlier values again after a later resync, and %d after the node came back", redelivered, again)
	}
	ws.Send(`["nodes/m1/relay/r1/set", {"state": false}]`)
	// The first command may reach the device late (it had no ack from the
	// device when the test moved on): it is skipped.
	for cmd := hubtest.Receive(t, device.commands, hubtest.Timeout, "command after the node came back"); cmd.Payload != `{"state":false}`; cmd = hubtest.Receive(t, device.commands, hubtest.Timeout, "command after the node came back") {
		if cmd.Payload != `{"state":true}` {
			t.Fatalf("the device got %q %s after the node came back", cmd.Topic, cmd.Payload)
		}
	}
	device.mustPublish("nodes/m1/relay/r1", `{"state":false}`)
	if f := expectFrame(t, frames, "clown.talk/-/ack"); !strings.Contains(string(f.Payload), `"ok":true`) {
		t.Fatalf("the command after the node came back: %s", f.Payload)
	}
	if status := readyz(); status != 200 {
		t.Errorf("/readyz %d after the node came back", status)
	}
}

// upstreamEvents are the hub's log lines of its upstream connection after
// the first connect (losses, refusals, connects), for the test's report.
func upstreamEvents(log string) string {
	var events []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "component=upstream") && (strings.Contains(line, "level=WARN") || strings.Contains(line, "gap=true")) {
			events = append(events, strings.TrimSpace(line[strings.Index(line, "level="):]))
		}
	}
	return strings.Join(events, "\n\t")
}

// nodeOfClient is the node that serves the MQTT client whose id starts
// with prefix.
func nodeOfClient(t *testing.T, c *natstest.Cluster, prefix string) int {
	t.Helper()
	node := -1
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		for i := range c.Nodes {
			ids, err := c.MQTTClientIDs(i)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(id, prefix) }) {
				node = i
				return nil
			}
		}
		return fmt.Errorf("no node serves an MQTT client %s...", prefix)
	})
	return node
}

// arrived is a frame and when the test's reader got it.
type arrived struct {
	hubtest.Frame
	at time.Time
}

// readFrames reads ws's frames on a goroutine of its own, so that a test
// can wait for them with a deadline while it does other things. The
// goroutine ends, and the channel closes, when the connection does; the
// test's cleanup closes it and waits.
func readFrames(t *testing.T, ws *hubtest.WS) <-chan arrived {
	frames := make(chan arrived, 4096) // far more than a test sends; a full one fails the test
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(frames)
		for {
			line, err := ws.TryReadLine(time.Hour)
			if err != nil {
				return
			}
			var parts []json.RawMessage
			f := arrived{at: time.Now()}
			if json.Unmarshal([]byte(line), &parts) != nil || len(parts) < 2 || json.Unmarshal(parts[0], &f.Topic) != nil {
				t.Errorf("line %q is not a Clown.Talk frame", line)
				return
			}
			f.Payload = parts[1]
			select {
			case frames <- f:
			default:
				t.Errorf("the test's buffer of frames is full; %s lost", line)
				return
			}
		}
	})
	t.Cleanup(func() {
		_ = ws.Conn.Close()
		wg.Wait()
	})
	return frames
}

// expectFrame waits for the next frame on topic, skipping others.
func expectFrame(t *testing.T, frames <-chan arrived, topic string) hubtest.Frame {
	t.Helper()
	deadline := time.After(hubtest.Timeout)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("the WebSocket closed while waiting for a frame on %q", topic)
			}
			if f.Topic == topic {
				return f.Frame
			}
		case <-deadline:
			t.Fatalf("no frame on %q within %v", topic, hubtest.Timeout)
		}
	}
}

// waitForRoutes publishes probes from the device until each browser got
// one: a subscription made on one node of a NATS cluster reaches the
// others' interest just after its SUBACK.
func waitForRoutes(t *testing.T, device *clusterDevice, browsers ...<-chan arrived) {
	t.Helper()
	for i, frames := range browsers {
		hubtest.Eventually(t, 2*hubtest.Timeout, func() bool {
			// A node whose JetStream is still starting may drop the
			// device's connection: it connects again and tries again.
			if err := device.publish("nodes/probe/route", "1"); err != nil {
				t.Logf("the device: %v; connecting again", err)
				if err := device.connect(); err != nil {
					t.Logf("the device: %v", err)
				}
				return false
			}
			select {
			case f := <-frames:
				return f.Topic == "nodes/probe/route"
			case <-time.After(100 * time.Millisecond):
				return false
			}
		}, "no message from the device reached browser %d", i)
	}
}

// clusterDevice is a device on one node of the cluster, subscribed to its
// commands (QoS 1). A node whose JetStream is electing leaders after
// another node died may close the connection of a device whose QoS 1
// publish waits too long: then the device connects again, as a real one
// would, and subscribes again.
type clusterDevice struct {
	t        *testing.T
	addr, id string
	client   paho.Client
	commands chan hubtest.Message
}

func newClusterDevice(t *testing.T, c *natstest.Cluster, node int, id string) *clusterDevice {
	t.Helper()
	d := &clusterDevice{t: t, addr: c.Nodes[node].MQTTAddr, id: id, commands: make(chan hubtest.Message, 64)}
	if err := d.connect(); err != nil {
		t.Fatalf("the device on node %d: %v", node, err)
	}
	t.Cleanup(func() { d.client.Disconnect(100) })
	return d
}

// connect connects (again) and subscribes to the device's commands.
func (d *clusterDevice) connect() error {
	if d.client != nil {
		d.client.Disconnect(0)
	}
	client, err := hubtest.TryConnectMQTT(d.addr, d.id)
	if err != nil {
		return err
	}
	d.client = client
	tok := client.Subscribe("nodes/+/relay/+/set", 1, func(_ paho.Client, m paho.Message) {
		select {
		case d.commands <- hubtest.Message{Topic: m.Topic(), Payload: string(m.Payload())}:
		default:
			d.t.Errorf("the device's command buffer is full; %s lost", m.Topic())
		}
	})
	if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		return fmt.Errorf("subscribing to commands: %v", tok.Error())
	}
	// NATS refuses a subscription (SUBACK 0x80) whose JetStream consumer it
	// could not make in time: a real device would try again.
	for filter, code := range tok.(*paho.SubscribeToken).Result() {
		if code >= 0x80 {
			return fmt.Errorf("subscribing to %s: refused (SUBACK %#x)", filter, code)
		}
	}
	return nil
}

// publish publishes at QoS 1 and waits for the PUBACK. When that fails the
// device connects again (trying for 20 s) for the next one, and publish
// reports the failure: the message may or may not have arrived. One
// goroutine at a time may use a device.
func (d *clusterDevice) publish(topic, payload string) error {
	tok := d.client.Publish(topic, 1, false, payload)
	if tok.WaitTimeout(hubtest.Timeout) && tok.Error() == nil {
		return nil
	}
	err := fmt.Errorf("publishing %s: %v", topic, tok.Error())
	deadline := time.Now().Add(2 * hubtest.Timeout)
	for cerr := d.connect(); cerr != nil; cerr = d.connect() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w; and it cannot connect again: %v", err, cerr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// mustPublish publishes, failing the test when the message did not go.
func (d *clusterDevice) mustPublish(topic, payload string) {
	d.t.Helper()
	if err := d.publish(topic, payload); err != nil {
		d.t.Fatalf("the device: %v", err)
	}
}

// TestMQTT5ReplicaOnNATS: NATS's MQTT gateway speaks 3.1.1 only. A replica
// told to speak MQTT 5 to it is refused at CONNECT ("unacceptable protocol
// version of 5" in the node's log), and /readyz says 503 naming the node: it
// never pretends to be ready.
func TestMQTT5ReplicaOnNATS(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{Nodes: 1})
	h := launchHub(t, "--upstream", c.Nodes[0].MQTTURL(), "--upstream-protocol", "5") // never "ready"
	var last string
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		status, _, body := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, "")
		last = body
		if status != 503 || !strings.Contains(body, c.Nodes[0].MQTTURL()) {
			return fmt.Errorf("/readyz %d %s; want 503 naming the node", status, body)
		}
		return nil
	})
	t.Logf("/readyz of an MQTT 5 replica on NATS: %s", last)
	if !strings.Contains(c.Output(), "unacceptable protocol version of 5") {
		t.Errorf("the node did not refuse an MQTT 5 CONNECT")
	}
}
