package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

type ackPayload struct {
	Topic    string
	ID       string
	OK       bool
	MS       int64
	Error    string
	State    json.RawMessage
	Response json.RawMessage
}

func expectAck(t *testing.T, ws *hubtest.WS) ackPayload {
	t.Helper()
	f := ws.Expect("clown.talk/-/ack")
	var a ackPayload
	if err := json.Unmarshal(f.Payload, &a); err != nil {
		t.Fatalf("ack payload %s: %v", f.Payload, err)
	}
	return a
}

// ackSession opens a WebSocket that asked for acknowledgements.
func ackSession(t *testing.T, h *realHub, subscribe string) *hubtest.WS {
	t.Helper()
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"ack": true, "subscribe": ` + subscribe + `}]`)
	if f := ws.Expect("clown.talk/-/config/ok"); !strings.Contains(string(f.Payload), `"ack":true`) {
		t.Fatalf("config/ok %s: want ack true", f.Payload)
	}
	return ws
}

// TestAckConfirmedByTheDevice: a command is confirmed when the device
// reports the state asked for, in the Clown.Talk style (state on the command
// topic without /set) and in the HARDWARIO style (.../state after
// .../state/set); the client sees the state, then the ack.
func TestAckConfirmedByTheDevice(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "ack-device")
	commands := hubtest.SubscribeMQTT(t, device, "+/+/set", 1)
	ledCommands := hubtest.SubscribeMQTT(t, device, "led/-/state/set", 1)
	ws := ackSession(t, h, `["#"]`)

	ws.Send(`["relay/r1/set", {"state": true}]`)
	cmd := hubtest.Receive(t, commands, hubtest.Timeout, "relay command")
	hubtest.PublishMQTT(t, device, "relay/r1", 1, true, []byte(`{"state": true, "since": 12}`)) // more fields than asked is fine
	if f := ws.Expect("relay/r1"); !strings.Contains(string(f.Payload), `"state":true`) {
		t.Fatalf("state line %s", f.Payload)
	}
	if a := expectAck(t, ws); !a.OK || a.Topic != "relay/r1/set" || a.Error != "" || a.MS < 0 || a.MS > 10000 {
		t.Fatalf("ack %+v for %s", a, cmd.Topic)
	}

	ws.Send(`["led/-/state/set", true]`)
	hubtest.Receive(t, ledCommands, hubtest.Timeout, "LED command")
	hubtest.PublishMQTT(t, device, "led/-/state", 1, true, []byte(`true`))
	if a := expectAck(t, ws); !a.OK || a.Topic != "led/-/state/set" {
		t.Fatalf("HARDWARIO ack %+v", a)
	}
	if s := h.Hub.Stats(); s.AcksOK != 2 {
		t.Fatalf("stats %+v: want 2 acks ok", s)
	}
}

// TestAckFailures: no answer is a timeout; a device that reports another
// state than asked is reported with that state; neither is confirmed.
func TestAckFailures(t *testing.T) {
	h := startRealHub(t, bridge.Config{AckTimeout: 300 * time.Millisecond})
	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "stubborn-device")
	commands := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)
	ws := ackSession(t, h, `["#"]`)

	ws.Send(`["relay/nobody/set", {"state": true}]`)
	if a := expectAck(t, ws); a.OK || a.Error != "timeout" || a.Topic != "relay/nobody/set" || a.MS < 300 {
		t.Fatalf("unanswered command: %+v, want a timeout after 300 ms", a)
	}

	ws.Send(`["relay/stuck/set", {"state": true}]`)
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.PublishMQTT(t, device, "relay/stuck", 1, false, []byte(`{"state": false}`))
	a := expectAck(t, ws)
	if a.OK || a.Error != "state differs" || string(a.State) != `{"state":false}` {
		t.Fatalf("command answered with another state: %+v", a)
	}
	if s := h.Hub.Stats(); s.AcksTimeout != 1 || s.AcksDiffer != 1 || s.AcksOK != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestAckConcurrentCommands: several commands to one device are each matched
// to the echo that shows their state, whatever order the echoes come in.
func TestAckConcurrentCommands(t *testing.T) {
	h := startRealHub(t, bridge.Config{AckTimeout: 2 * time.Second})
	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "busy-device")
	commands := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)
	ws := ackSession(t, h, `[]`)

	ws.Send("[\"relay/r/set\", {\"state\": true}]\n[\"relay/r/set\", {\"state\": false}]\n")
	hubtest.Receive(t, commands, hubtest.Timeout, "first command")
	hubtest.Receive(t, commands, hubtest.Timeout, "second command")
	// The device reports false first (the second command), then true.
	hubtest.PublishMQTT(t, device, "relay/r", 1, false, []byte(`{"state":false}`))
	hubtest.PublishMQTT(t, device, "relay/r", 1, false, []byte(`{"state":true}`))
	first, second := expectAck(t, ws), expectAck(t, ws)
	if !first.OK || !second.OK {
		t.Fatalf("acks %+v %+v: both commands were confirmed by their own echo", first, second)
	}

	// Two equal commands, two echoes: both confirmed, oldest first.
	ws.Send("[\"relay/q/set\", {\"state\": true}]\n[\"relay/q/set\", {\"state\": true}]\n")
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.PublishMQTT(t, device, "relay/q", 1, false, []byte(`{"state":true}`))
	if a := expectAck(t, ws); !a.OK {
		t.Fatalf("first equal command: %+v", a)
	}
	hubtest.PublishMQTT(t, device, "relay/q", 1, false, []byte(`{"state":true}`))
	if a := expectAck(t, ws); !a.OK {
		t.Fatalf("second equal command: %+v", a)
	}
	if s := h.Hub.Stats(); s.AcksOK != 4 || s.AcksTimeout+s.AcksDiffer+s.AcksFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// v5Device is an MQTT v5 device written on mochi's packet codec: it answers
// each command on its request's response topic with its correlation data.
type v5Device struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialV5(t *testing.T, addr, filter string) *v5Device {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(hubtest.Timeout))
	d := &v5Device{conn: conn, r: bufio.NewReader(conn)}
	d.send(t, func(b *bytes.Buffer) error {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "v5-valve"}}
		return pk.ConnectEncode(b)
	})
	if pk := d.read(t); pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("v5 device: want CONNACK, got type %d", pk.FixedHeader.Type)
	}
	d.send(t, func(b *bytes.Buffer) error {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: filter}}}
		return pk.SubscribeEncode(b)
	})
	if pk := d.read(t); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("v5 device: want SUBACK, got type %d", pk.FixedHeader.Type)
	}
	return d
}

func (d *v5Device) send(t *testing.T, encode func(*bytes.Buffer) error) {
	t.Helper()
	var b bytes.Buffer
	if err := encode(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := d.conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// read returns the next packet, decoded when it is a PUBLISH.
func (d *v5Device) read(t *testing.T) packets.Packet {
	t.Helper()
	var pk packets.Packet
	hb, err := d.r.ReadByte()
	if err == nil {
		err = pk.FixedHeader.Decode(hb)
	}
	if err == nil {
		pk.FixedHeader.Remaining, _, err = packets.DecodeLength(d.r)
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if err == nil {
		_, err = io.ReadFull(d.r, body)
	}
	if err == nil && pk.FixedHeader.Type == packets.Publish {
		pk.ProtocolVersion = 5
		err = pk.PublishDecode(body)
	}
	if err != nil {
		t.Fatalf("v5 device read: %v", err)
	}
	return pk
}

// TestAckByMQTTv5Response: a v5 device that answers on the command's response
// topic with its correlation data confirms it; the answer comes with the ack.
func TestAckByMQTTv5Response(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	valve := dialV5(t, h.Broker.Addr().String(), "valve/+/set")
	ws := ackSession(t, h, `["valve/#"]`)

	ws.Send(`["valve/v1/set", {"open": 40}]`)
	req := valve.read(t)
	if req.TopicName != "valve/v1/set" || req.Properties.ResponseTopic == "" || len(req.Properties.CorrelationData) == 0 {
		t.Fatalf("command at the v5 device: %q, response topic %q, correlation %q", req.TopicName, req.Properties.ResponseTopic, req.Properties.CorrelationData)
	}
	valve.send(t, func(b *bytes.Buffer) error {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5,
			Mods:      packets.Mods{AllowResponseInfo: true}, // mochi's encoder writes correlation data only then
			TopicName: req.Properties.ResponseTopic, Payload: []byte(`{"open":40,"done":true}`),
			Properties: packets.Properties{CorrelationData: req.Properties.CorrelationData}}
		return pk.PublishEncode(b)
	})
	if a := expectAck(t, ws); !a.OK || a.Topic != "valve/v1/set" || string(a.Response) != `{"open":40,"done":true}` {
		t.Fatalf("ack %+v", a)
	}
}

// TestAckOnlyWhenAsked: without ack, commands go out and no ack comes; with
// ack, a command the broker does not take is reported, and the number of
// commands waiting per client is bounded.
func TestAckOnlyWhenAsked(t *testing.T) {
	h := startRealHub(t, bridge.Config{MaxPendingCommands: 1})
	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "quiet-device")
	commands := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)

	plain := hubtest.DialWS(t, h.URL, nil)
	plain.Send(`["clown.talk/-/config/set", {"subscribe": ["marker"]}]`)
	plain.Expect("clown.talk/-/config/ok")
	plain.Send(`["relay/r/set", {"state": true}]`)
	hubtest.Receive(t, commands, hubtest.Timeout, "command without ack")
	hubtest.PublishMQTT(t, device, "relay/r", 1, false, []byte(`{"state":true}`))
	hubtest.PublishMQTT(t, device, "marker", 1, false, []byte(`1`))
	if line := plain.ReadLine(); line != `["marker",1]` {
		t.Fatalf("a client that did not ask for acks got %s", line)
	}

	ws := ackSession(t, h, `[]`)
	ws.Send(`["relay/a/set", {"state": true}]`)
	ws.Send(`["relay/b/set", {"state": true}]`)
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"limit"`) {
		t.Fatalf("second waiting command: %s, want a limit error", f.Payload)
	}

	hubtest.PublishMQTT(t, device, "relay/a", 1, false, []byte(`{"state":true}`))
	if a := expectAck(t, ws); !a.OK || a.Topic != "relay/a/set" {
		t.Fatalf("ack %+v", a)
	}

	if err := h.Broker.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ws.Send(`["relay/c/set", {"state": true}]`)
	if a := expectAck(t, ws); a.OK || a.Error != "unavailable" {
		t.Fatalf("command to a closed broker: ack %+v, want unavailable", a)
	}
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"unavailable"`) {
		t.Fatalf("command to a closed broker: %s", f.Payload)
	}
}

// TestAckOncePerCommandWithItsID: a command may carry the client's own id,
// which its ack names; every command gets exactly one ack, a refused one too.
func TestAckOncePerCommandWithItsID(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "id-device")
	commands := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)
	ws := ackSession(t, h, `[]`)

	ws.Send(`["relay/a/set", {"state": true}, {"id": "c1"}]`)
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.PublishMQTT(t, device, "relay/a", 1, false, []byte(`{"state":true}`))
	if a := expectAck(t, ws); !a.OK || a.ID != "c1" || a.Topic != "relay/a/set" {
		t.Fatalf("ack %+v, want ok for c1", a)
	}

	ws.Send(`["relay/+/set", {"state": true}, {"id": "c2"}]`)
	if a := expectAck(t, ws); a.OK || a.ID != "c2" || a.Error != "bad-topic" {
		t.Fatalf("a refused command: ack %+v, want bad-topic for c2", a)
	}
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"bad-topic"`) {
		t.Fatalf("the refusal's error frame: %s", f.Payload)
	}
	ws.Send(`["lamp/status", "not a command", {"id": "c3"}]`) // no /set: no ack
	ws.Send(`["relay/b/set", {"state": false}, {"id": "c4"}]`)
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.PublishMQTT(t, device, "relay/b", 1, false, []byte(`{"state":false}`))
	if a := expectAck(t, ws); a.ID != "c4" {
		t.Fatalf("the next ack is for %q, want c4 (a publish that is no command gets none)", a.ID)
	}
}
