package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// Hub replicas with --upstream in front of a real Mosquitto, started by the
// tests on a free loopback port.

// linger is short in these tests, so that a replica drops what its
// browsers stopped watching within the test's patience.
const linger = "300ms"

func startReplica(t *testing.T, m *hubtest.Mosquitto, args ...string) *runningHub {
	t.Helper()
	return startHub(t, append([]string{"--upstream", m.URL(), "--upstream-linger", linger}, args...)...)
}

// metric reads one sample of /metrics ("name" or "name{labels}").
func metric(t *testing.T, h *runningHub, name string) float64 {
	t.Helper()
	return scrape(t, h.HTTP)[name]
}

// TestReplicasInFrontOfMosquitto: two replicas on one Mosquitto. A command
// from a browser on A reaches a device; the device's answer reaches a
// browser on B and confirms the command on A. Each replica gets from the
// broker only what its own browsers watch; a filter covered by another
// costs no subscription; and when browsers go, the replica's subscriptions
// follow, once the linger is over.
func TestReplicasInFrontOfMosquitto(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	a, b := startReplica(t, m), startReplica(t, m)
	device := hubtest.ConnectMQTT(t, m.Addr(), "relay-device")
	commands := hubtest.SubscribeMQTT(t, device, "nodes/+/relay/+/set", 1)

	onA, _ := a.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	onB, _ := b.session(t, "/ws", `{"subscribe": ["nodes/+/relay/#"]}`)
	// Read before any message, while nothing is on its way.
	receivedA, receivedB := metric(t, a, "motehub_messages_received_total"), metric(t, b, "motehub_messages_received_total")
	onA.Send(`["nodes/m1/relay/r1/set", {"state": true}]`)
	if cmd := hubtest.Receive(t, commands, hubtest.Timeout, "the command from replica A"); cmd.Topic != "nodes/m1/relay/r1/set" || cmd.Payload != `{"state":true}` {
		t.Fatalf("the device got %q %s", cmd.Topic, cmd.Payload)
	}
	hubtest.PublishMQTT(t, device, "nodes/m1/relay/r1", 1, false, []byte(`{"state":true}`))
	if f := onB.Expect("nodes/m1/relay/r1"); string(f.Payload) != `{"state":true}` {
		t.Fatalf("the browser on B saw %s", f.Payload)
	}
	if f := onA.Expect("clown.talk/-/ack"); !strings.Contains(string(f.Payload), `"ok":true`) {
		t.Fatalf("the command on A: %s, want a confirmation", f.Payload)
	}

	// What the broker sends each replica: A watches nodes/#, B only relays.
	for i := range 5 {
		hubtest.PublishMQTT(t, device, "other/x", 1, false, []byte(strconv.Itoa(i)))
	}
	for i := range 3 {
		hubtest.PublishMQTT(t, device, "nodes/m1/temperature", 1, false, []byte(strconv.Itoa(20+i)))
	}
	hubtest.PublishMQTT(t, device, "nodes/m1/relay/done", 1, false, []byte("1")) // both want it, and it comes last
	onA.Expect("nodes/m1/relay/done")
	onB.Expect("nodes/m1/relay/done")
	// A browser may see the marker before its replica has counted it.
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if got := metric(t, a, "motehub_messages_received_total") - receivedA; got != 6 {
			return fmt.Errorf("replica A received %v messages from the broker, want 6 (the command, the relay's state, 3 temperatures and the marker)", got)
		}
		if got := metric(t, b, "motehub_messages_received_total") - receivedB; got != 3 {
			return fmt.Errorf("replica B received %v messages from the broker, want 3 (the command, the relay's state and the marker)", got)
		}
		return nil
	})

	// A second browser on A inside nodes/# costs no subscription; when the
	// first goes, A narrows its subscription to the second one's filter.
	narrow := hubtest.DialSSE(t, "http://"+a.HTTP+"/events?filter=nodes/m1/%23", nil)
	if n := metric(t, a, "motehub_bus_subscriptions"); n != 1 {
		t.Fatalf("replica A holds %v subscriptions upstream, want 1: nodes/# covers nodes/m1/#", n)
	}
	_ = onA.Conn.Close()
	// Every message a hub takes from the broker gets the next event id, so
	// a gap between the ids of two markers is the nodes/m2 message published
	// between them. (Not the metrics: a browser may see a message before its
	// hub has counted it.)
	round := 0
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		round++
		hubtest.PublishMQTT(t, device, fmt.Sprintf("nodes/m1/marker/%d/a", round), 1, false, []byte("1"))
		hubtest.PublishMQTT(t, device, "nodes/m2/temperature", 1, false, []byte("1"))
		hubtest.PublishMQTT(t, device, fmt.Sprintf("nodes/m1/marker/%d/b", round), 1, false, []byte("1"))
		before, after := narrow.NextMessage(t), narrow.NextMessage(t)
		return eventSeq(t, after.ID) == eventSeq(t, before.ID)+1
	}, "replica A still gets nodes/m2 from the broker after its only browser on nodes/# left")
	// The gauge settles on its own.
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if n := metric(t, a, "motehub_bus_subscriptions"); n != 1 {
			return fmt.Errorf("replica A holds %v subscriptions upstream, want 1 (nodes/m1/#)", n)
		}
		return nil
	})

	_ = onB.Conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return metric(t, b, "motehub_bus_subscriptions") == 0 },
		"replica B is still subscribed upstream after its last browser left")
}

// eventSeq is the sequence number of an event id, "<epoch>-<seq>".
func eventSeq(t *testing.T, id string) uint64 {
	t.Helper()
	i := strings.LastIndexByte(id, '-')
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if i < 0 || err != nil {
		t.Fatalf("event id %q: want <epoch>-<seq>", id)
	}
	return seq
}

// TestResumeAcrossReplicas: event ids stay honest with several replicas. A
// stream that resumes on the replica that issued its id gets what it
// missed; on another replica, or on the same one after it stopped following
// the stream's topics, it is told to resync, never replayed a wrong log.
func TestResumeAcrossReplicas(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	a, b := startReplica(t, m), startReplica(t, m)
	device := hubtest.ConnectMQTT(t, m.Addr(), "thermometer")
	events := func(h *runningHub) string { return "http://" + h.HTTP + "/events?filter=nodes/%23" }

	stream := hubtest.DialSSE(t, events(a), nil)
	hubtest.PublishMQTT(t, device, "nodes/m1/temperature", 1, false, []byte("21"))
	seen := stream.NextMessage(t)
	stream.Close()
	received := metric(t, a, "motehub_messages_received_total")
	hubtest.PublishMQTT(t, device, "nodes/m1/temperature", 1, false, []byte("22"))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return metric(t, a, "motehub_messages_received_total") > received },
		"replica A did not get the message published while its stream was away")

	resumed := hubtest.DialSSE(t, events(a), http.Header{"Last-Event-ID": {seen.ID}})
	if ev := resumed.NextMessage(t); ev.Event != "" || ev.Data != `["nodes/m1/temperature",22]` {
		t.Fatalf("resuming on A after %s: %+v, want the missed message", seen.ID, ev)
	}
	resumed.Close()

	elsewhere := hubtest.DialSSE(t, events(b), http.Header{"Last-Event-ID": {seen.ID}})
	if ev := elsewhere.NextMessage(t); ev.Event != "resync" || !strings.Contains(ev.Data, "unknown epoch") {
		t.Fatalf("resuming A's id on B: %+v, want a resync", ev)
	}
	elsewhere.Close()

	hubtest.Eventually(t, hubtest.Timeout, func() bool { return metric(t, a, "motehub_bus_subscriptions") == 0 },
		"replica A still follows nodes/# with no stream left")
	late := hubtest.DialSSE(t, events(a), http.Header{"Last-Event-ID": {seen.ID}})
	if ev := late.NextMessage(t); ev.Event != "resync" || !strings.Contains(ev.Data, "not following") {
		t.Fatalf("resuming on A after it stopped following nodes/#: %+v, want a resync", ev)
	}
}

// TestUpstreamGoesAndComesBack: Mosquitto stopped mid-stream and started
// again. Meanwhile /readyz says 503 naming the upstream and commands fail
// with "unavailable"; once it is back the replica resubscribes, /readyz
// says 200, browsers are told to resync, and messages flow again.
func TestUpstreamGoesAndComesBack(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	h := startReplica(t, m)
	ws, _ := h.session(t, "/ws", `{"subscribe": ["nodes/#"], "ack": true}`)
	stream := hubtest.DialSSE(t, "http://"+h.HTTP+"/events?filter=nodes/%23", nil)
	device := hubtest.ConnectMQTT(t, m.Addr(), "streamer")
	for i := range 20 {
		hubtest.PublishMQTT(t, device, "nodes/m1/seq", 1, false, []byte(strconv.Itoa(i)))
	}
	for i := range 20 {
		want := fmt.Sprintf(`["nodes/m1/seq",%d]`, i)
		if line := ws.ReadLine(); line != want {
			t.Fatalf("WebSocket line %d: %s, want %s", i, line, want)
		}
		if ev := stream.NextMessage(t); ev.Data != want {
			t.Fatalf("SSE message %d: %s, want %s", i, ev.Data, want)
		}
	}

	m.Stop()
	readyz := func() (int, string) {
		status, _, body := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, "")
		return status, body
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		status, body := readyz()
		return status == 503 && strings.Contains(body, `"upstream"`)
	}, "/readyz does not report the upstream down")
	ws.Send(`["nodes/m1/relay/r1/set", {"state": false}]`)
	answers := map[string]string{} // the command's ack and its error frame, in either order
	for range 2 {
		f := hubtest.ParseFrame(t, ws.ReadLine())
		answers[f.Topic] = string(f.Payload)
	}
	if e := answers["clown.talk/-/error"]; !strings.Contains(e, `"code":"unavailable"`) {
		t.Errorf("a command while the upstream is down: error frame %q, want unavailable", e)
	}
	if a := answers["clown.talk/-/ack"]; !strings.Contains(a, `"ok":false`) || !strings.Contains(a, "unavailable") {
		t.Errorf("the command's ack: %q, want a failure", a)
	}
	if status, _, body := get(t, "POST", "http://"+h.HTTP+"/api/publish", http.Header{"Content-Type": {"application/json"}}, `["nodes/m1/relay/r1/set", {"state": false}]`); status != 503 || errorCode(body) != "unavailable" {
		t.Fatalf("POST /api/publish while the upstream is down: %d %s", status, body)
	}

	m.Restart()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { status, _ := readyz(); return status == 200 }, "/readyz not ready after the upstream came back")
	if f := ws.Expect("clown.talk/-/resync"); !strings.Contains(string(f.Payload), "lost") {
		t.Fatalf("the WebSocket's resync: %s", f.Payload)
	}
	// SSE: the resync notice, the last values, and the id to go on from.
	var values []string
	for resynced := false; ; {
		ev, err := stream.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("no resync on the SSE stream: %v", err)
		}
		switch {
		case ev.Event == "resync":
			resynced = true
		case resynced && ev.Data != "":
			values = append(values, ev.Data)
		}
		if resynced && ev.HasID {
			break
		}
	}
	if fmt.Sprint(values) != `[["nodes/m1/seq",19]]` {
		t.Errorf("the resync brought the values %v, want the last one before the gap", values)
	}
	device = hubtest.ConnectMQTT(t, m.Addr(), "streamer-again")
	hubtest.PublishMQTT(t, device, "nodes/m1/seq", 1, false, []byte("20"))
	if f := ws.Expect("nodes/m1/seq"); string(f.Payload) != "20" {
		t.Fatalf("after the upstream came back the WebSocket got %s", f.Payload)
	}
	if ev := stream.NextMessage(t); ev.Data != `["nodes/m1/seq",20]` {
		t.Fatalf("after the upstream came back SSE got %s", ev.Data)
	}
	if up, lost := metric(t, h, "motehub_upstream_up"), metric(t, h, "motehub_upstream_disconnects_total"); up != 1 || lost != 1 {
		t.Errorf("motehub_upstream_up %v, motehub_upstream_disconnects_total %v; want 1 and 1", up, lost)
	}
}

// TestUpstreamOptions: --upstream turns the embedded broker off, and
// --data unless given (then it holds the replica's history); it refuses
// what needs the embedded broker.
func TestUpstreamOptions(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	o, err := parseOptions([]string{"--upstream", "mqtt://broker:1883"}, none, io.Discard)
	if err != nil || o.MQTTAddr != "" || o.DataDir != "" {
		t.Fatalf("--upstream alone: mqtt %q, data %q, %v; want both off", o.MQTTAddr, o.DataDir, err)
	}
	for _, args := range [][]string{
		{"--upstream", "mqtt://b", "--mqtt", "127.0.0.1:1883"},
		{"--upstream", "mqtt://b", "--demo"},
	} {
		if _, err := parseOptions(args, none, io.Discard); err == nil || !strings.Contains(err.Error(), "--upstream") {
			t.Errorf("%v: %v, want a refusal naming --upstream", args, err)
		}
	}
	if o, err := parseOptions([]string{"--upstream", "mqtt://b", "--data", "dir"}, none, io.Discard); err != nil || o.DataDir != "dir" {
		t.Errorf("--upstream with --data (the replica's own history): data %q, %v", o.DataDir, err)
	}
	if _, err := parseOptions([]string{"--upstream", "mqtt://b", "--mqtt="}, none, io.Discard); err != nil {
		t.Errorf("--upstream with --mqtt= (as docker-compose.yml has it): %v", err)
	}
	if err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--upstream", "gopher://b"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--upstream") {
		t.Errorf("an upstream URL of an unknown scheme: %v", err)
	}
}
