package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/natstest"
)

// The acceptance for resuming across replicas: a three-node NATS
// cluster, a device publishing a counter through the MQTT gateway of one
// node, replicas on the others. A browser reads some values on replica A,
// A is stopped, and the browser goes to replica B with its last id while
// the device keeps publishing.

// counterTopic is where the device counts.
const counterTopic = "nodes/m1/counter"

// counting publishes 1, 2, 3, ... on counterTopic through the MQTT gateway
// of node, QoS 1, each once the last was acknowledged, until the test ends.
func counting(t *testing.T, c *natstest.Cluster, node int) {
	t.Helper()
	device := hubtest.ConnectMQTT(t, c.Nodes[node].MQTTAddr, "counter-device")
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond) // pacing, not synchronisation
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tok := device.Publish(counterTopic, 1, false, strconv.Itoa(i))
			if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
				t.Errorf("publish %d: %v", i, tok.Error())
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// createDeviceStream makes the stream that captures the devices' topics,
// with a replica on every node.
func createDeviceStream(t *testing.T, c *natstest.Cluster, name string) {
	t.Helper()
	nc, err := nats.Connect(c.NATSURLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Right after the cluster's start, the meta leader may not see every
	// peer yet ("no suitable peers for placement"): ask again, bounded.
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"nodes.>"}, Replicas: 3})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", name, err)
		}
		return nil
	})
}

// jsReplica starts a hub replica on node i of c, reading stream (none:
// plain MQTT).
func jsReplica(t *testing.T, c *natstest.Cluster, i int, stream string) *runningHub {
	t.Helper()
	args := []string{"--upstream", c.Nodes[i].MQTTURL()}
	if stream != "" {
		args = append(args, "--upstream-jetstream", stream, "--upstream-nats", c.Nodes[i].NATSURL())
	}
	return startHub(t, args...)
}

// sseCounter is one SSE message's counter value and id; resync reports a
// resync event instead.
func sseCounter(t *testing.T, s *hubtest.SSE) (n int, id string, resync bool) {
	t.Helper()
	ev := s.NextMessage(t)
	if ev.Event == "resync" {
		return 0, ev.ID, true
	}
	var frame []json.RawMessage
	if err := json.Unmarshal([]byte(ev.Data), &frame); err != nil || len(frame) < 2 {
		t.Fatalf("SSE data %q: %v", ev.Data, err)
	}
	n, err := strconv.Atoi(string(frame[1]))
	if err != nil {
		t.Fatalf("SSE data %q: not a counter", ev.Data)
	}
	return n, ev.ID, false
}

// wsCounter reads the next counter frame of a WebSocket session (ids on),
// or reports a resync.
func wsCounter(t *testing.T, ws *hubtest.WS) (n int, id string, resync bool) {
	t.Helper()
	for {
		f := hubtest.ParseFrame(t, ws.ReadLine())
		switch f.Topic {
		case "clown.talk/-/resync":
			return 0, "", true
		case counterTopic:
			var meta struct{ ID string }
			if err := json.Unmarshal(f.Meta, &meta); err != nil {
				t.Fatalf("frame meta %s: %v", f.Meta, err)
			}
			if n, err := strconv.Atoi(string(f.Payload)); err == nil {
				return n, meta.ID, false
			}
			t.Fatalf("frame payload %s: not a counter", f.Payload)
		}
	}
}

// TestResumeOnAnotherReplicaFromJetStream: with --upstream-jetstream the
// counters a browser receives on B continue those it had on A, with no gap,
// no duplicate and no resync, through both doors (SSE with Last-Event-ID,
// WebSocket with since).
func TestResumeOnAnotherReplicaFromJetStream(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{Nodes: 3})
	createDeviceStream(t, c, "DEVICES")
	a := jsReplica(t, c, 0, "DEVICES")
	b := jsReplica(t, c, 1, "DEVICES")
	counting(t, c, 2)

	sseA := hubtest.DialSSE(t, "http://"+a.HTTP+"/events?filter=nodes/%23", nil)
	wsA, _ := a.session(t, "/ws", `{"subscribe": ["nodes/#"], "ids": true}`)
	var sseLast, wsLast int
	var sseID, wsID string
	for sseLast < 20 {
		var resync bool
		if sseLast, sseID, resync = sseCounter(t, sseA); resync {
			t.Fatal("a resync on A while it followed the stream")
		}
	}
	for wsLast < 20 {
		var resync bool
		if wsLast, wsID, resync = wsCounter(t, wsA); resync {
			t.Fatal("a resync on A's WebSocket")
		}
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	sseA.Close()

	var wg sync.WaitGroup
	wg.Go(func() {
		sseB := hubtest.DialSSE(t, "http://"+b.HTTP+"/events?filter=nodes/%23", http.Header{"Last-Event-ID": {sseID}})
		defer sseB.Close()
		for want := sseLast + 1; want <= sseLast+100; want++ {
			n, _, resync := sseCounter(t, sseB)
			if resync || n != want {
				t.Errorf("SSE on B after %s: got counter %d (resync %v), want %d", sseID, n, resync, want)
				return
			}
		}
	})
	wg.Go(func() {
		wsB, ok := b.session(t, "/ws", fmt.Sprintf(`{"subscribe": ["nodes/#"], "ids": true, "since": %q}`, wsID))
		if string(ok.Payload) == "" {
			t.Error("no config/ok on B")
			return
		}
		for want := wsLast + 1; want <= wsLast+100; want++ {
			n, _, resync := wsCounter(t, wsB)
			if resync || n != want {
				t.Errorf("WebSocket on B since %s: got counter %d (resync %v), want %d", wsID, n, resync, want)
				return
			}
		}
	})
	wg.Wait()
	m := scrape(t, b.HTTP)
	if m["motehub_upstream_jetstream_up"] != 1 || m["motehub_upstream_jetstream_position"] < float64(sseLast+100) ||
		m["motehub_upstream_jetstream_holes_total"] != 0 {
		t.Errorf("B's feed metrics: up %v, position %v, holes %v; want 1, at least %d, 0", m["motehub_upstream_jetstream_up"],
			m["motehub_upstream_jetstream_position"], m["motehub_upstream_jetstream_holes_total"], sseLast+100)
	}
}

// TestResumeOnAnotherReplicaWithoutJetStream: the same on plain MQTT
// replicas: exactly one resync, then the current values and live ones.
func TestResumeOnAnotherReplicaWithoutJetStream(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{Nodes: 3})
	a := jsReplica(t, c, 0, "")
	b := jsReplica(t, c, 1, "")
	counting(t, c, 2)

	sseA := hubtest.DialSSE(t, "http://"+a.HTTP+"/events?filter=nodes/%23", nil)
	var last int
	var id string
	for last < 20 {
		last, id, _ = sseCounter(t, sseA)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	sseA.Close()

	sseB := hubtest.DialSSE(t, "http://"+b.HTTP+"/events?filter=nodes/%23", http.Header{"Last-Event-ID": {id}})
	defer sseB.Close()
	if _, _, resync := sseCounter(t, sseB); !resync {
		t.Fatalf("resuming A's id %s on B: no resync first", id)
	}
	prev := last
	for range 50 {
		n, _, resync := sseCounter(t, sseB)
		if resync {
			t.Fatal("a second resync on B")
		}
		if n <= prev && prev != last {
			t.Fatalf("counter %d after %d on B", n, prev)
		}
		prev = n
	}
	if prev <= last {
		t.Fatalf("B's counters (last %d) are not past A's (%d): not current", prev, last)
	}
}
