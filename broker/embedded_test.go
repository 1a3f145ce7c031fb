package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startTest(t testing.TB, cfg Config) *Embedded {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Open()
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

// recorder collects what a Bus subscription delivers.
type recorder struct {
	mu     sync.Mutex
	topics []string
}

func (r *recorder) fn(m bridge.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics = append(r.topics, m.Topic)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.topics...)
}

func subscribe(t *testing.T, e *Embedded, filter string) (*recorder, func()) {
	t.Helper()
	r := &recorder{}
	cancel, err := e.Subscribe(filter, r.fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return r, cancel
}

// TestSubscribeFollowsMQTTMatching: the Bus sees exactly what an MQTT
// subscriber of the same filter would, once per message, where mochi's inline
// subscriptions alone would not ('#' seeing $SYS, "a/#" missing "a").
func TestSubscribeFollowsMQTTMatching(t *testing.T) {
	e := startTest(t, Config{})
	all, _ := subscribe(t, e, "#")
	sys, _ := subscribe(t, e, "$SYS/#")
	a, _ := subscribe(t, e, "a/#")
	plus, _ := subscribe(t, e, "+/b")

	for _, topic := range []string{"$SYS/test", "a", "a/b", "ab", "x/b"} {
		// Publish is synchronous: every subscription has run when it returns.
		if err := e.Publish(t.Context(), bridge.Message{Topic: topic, Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, r *recorder, want string) {
		t.Helper()
		var got []string
		for _, topic := range r.got() {
			if !strings.HasPrefix(topic, "$SYS/broker/") { // the broker's own $SYS ticks
				got = append(got, topic)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s saw %q, want %q", name, got, want)
		}
	}
	check("#", all, "a a/b ab x/b")
	check("$SYS/#", sys, "$SYS/test")
	check("a/#", a, "a a/b")
	check("+/b", plus, "a/b x/b")
}

func TestSubscribeRetainedOnceThenCancel(t *testing.T) {
	e := startTest(t, Config{})
	device := hubtest.ConnectMQTT(t, e.Addr().String(), "retainer")
	hubtest.PublishMQTT(t, device, "r", 1, true, []byte("parent"))
	hubtest.PublishMQTT(t, device, "r/1", 1, true, []byte("child"))

	r, cancel := subscribe(t, e, "r/#")
	if got := strings.Join(r.got(), " "); got != "r r/1" && got != "r/1 r" {
		t.Fatalf("retained messages on subscribe: %q, want r and r/1 once each", got)
	}
	cancel()
	if err := e.Publish(t.Context(), bridge.Message{Topic: "r/2", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); len(got) != 2 {
		t.Fatalf("after cancel the subscription still saw %q", got[2:])
	}
}

// TestMQTTClientsMeetTheHub: a message from an MQTT client reaches a Bus
// subscription, and a Bus publish reaches an MQTT subscriber.
func TestMQTTClientsMeetTheHub(t *testing.T) {
	e := startTest(t, Config{})
	got := make(chan bridge.Message, 1)
	cancel, err := e.Subscribe("sensors/+/temperature", func(m bridge.Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	device := hubtest.ConnectMQTT(t, e.Addr().String(), "thermo")
	hubtest.PublishMQTT(t, device, "sensors/t1/temperature", 1, false, []byte(`[21.5,"°C"]`))
	m := hubtest.Receive(t, got, hubtest.Timeout, "message on the Bus")
	if m.Topic != "sensors/t1/temperature" || string(m.Payload) != `[21.5,"°C"]` || m.QoS != 1 {
		t.Fatalf("Bus got %+v", m)
	}

	commands := hubtest.SubscribeMQTT(t, device, "relay/+/set", 1)
	if err := e.Publish(t.Context(), bridge.Message{Topic: "relay/r1/set", Payload: []byte(`{"state":true}`), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if c := hubtest.Receive(t, commands, hubtest.Timeout, "command"); c.Topic != "relay/r1/set" || c.Payload != `{"state":true}` {
		t.Fatalf("device got %+v", c)
	}
}

// TestReservedInlineClientIDRefused: a network client may not take the id of
// the hub's own inline client; it gets a refused CONNACK, and the hub's
// subscriptions keep working.
func TestReservedInlineClientIDRefused(t *testing.T) {
	e := startTest(t, Config{})
	r, _ := subscribe(t, e, "still/#")
	_, err := hubtest.TryConnectMQTT(e.Addr().String(), "inline")
	if err == nil || !strings.Contains(err.Error(), "identifier rejected") {
		t.Fatalf("connect as 'inline': %v, want identifier rejected", err)
	}
	device := hubtest.ConnectMQTT(t, e.Addr().String(), "honest")
	hubtest.PublishMQTT(t, device, "still/works", 1, false, []byte("1"))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(r.got()) == 1 }, "the hub's subscription stopped working")
}

func TestStartFailsClearlyOnTakenPort(t *testing.T) {
	e := startTest(t, Config{})
	_, err := Start(Config{Addr: e.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "listen for MQTT on "+e.Addr().String()) {
		t.Fatalf("Start on a taken port: %v", err)
	}
}

// rawClient opens a TCP connection and, when id is not empty, sends CONNECT
// and SUBSCRIBE to "#", then never reads: a device that hung.
func rawClient(t testing.TB, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if id == "" {
		return conn
	}
	var buf bytes.Buffer
	connect := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id},
	}
	subscribe := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: "#"}},
	}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := subscribe.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestCloseWithStuckClientsIsBounded: clients that stopped reading with full
// socket buffers, and connections that never sent CONNECT, cannot hold up
// Close (mochi alone writes a DISCONNECT to each without a deadline, and
// waits for connections it never registered).
func TestCloseWithStuckClientsIsBounded(t *testing.T) {
	e, err := Start(Config{Addr: "127.0.0.1:0", CloseTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.Open()
	subscribed := make(chan struct{}, 1)
	cancel, err := e.Subscribe("ready/#", func(bridge.Message) {
		select {
		case subscribed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	const stuck = 5
	for i := range stuck {
		rawClient(t, e.Addr().String(), "stuck-"+string(rune('a'+i)))
	}
	for range 5 {
		rawClient(t, e.Addr().String(), "") // never says CONNECT
	}
	// Wait until the stuck clients are registered with their subscriptions:
	// a healthy client's subscription round trip comes after theirs.
	probe := hubtest.ConnectMQTT(t, e.Addr().String(), "probe")
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return atomic.LoadInt64(&e.server.Info.ClientsConnected) >= stuck+1
	}, "stuck clients did not connect")
	hubtest.PublishMQTT(t, probe, "ready/now", 1, false, nil)
	hubtest.Receive(t, subscribed, hubtest.Timeout, "probe message")

	// Fill their socket buffers: each stuck client's writer blocks.
	payload := bytes.Repeat([]byte("x"), 64<<10)
	for range 100 {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "flood", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	err = e.Close(context.Background())
	took := time.Since(start)
	if took > 4*time.Second {
		t.Fatalf("Close took %v with %d stuck clients; the bound is 2 s", took, stuck)
	}
	t.Logf("Close with %d stuck clients took %v (err: %v)", stuck, took, err)
	if err := e.Publish(t.Context(), bridge.Message{Topic: "after", Payload: nil}); err != ErrClosed {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(context.Background()); err != nil && !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("a second Close must not panic or hang; got %v", err)
	}
}

// TestClientsWaitForOpen: until Open, a device's connection waits in the
// backlog without an answer; Open lets it in.
func TestClientsWaitForOpen(t *testing.T) {
	e, err := Start(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	conn := rawClient(t, e.Addr().String(), "early-bird")
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || !isTimeout(err) {
		t.Fatalf("before Open the broker answered (%d bytes, %v)", n, err)
	}
	e.Open()
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil || b[0]>>4 != packets.Connack {
		t.Fatalf("after Open: first byte %#x, %v; want a CONNACK", b[0], err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestRetainedScansDoNotRace: subscriptions (which scan the retained
// messages) while other clients publish retained messages, and the hub's
// own subscriptions and retained publishes, are free of data races (mochi
// alone races here: mochi-mqtt/server#200); run with -race.
func TestRetainedScansDoNotRace(t *testing.T) {
	e := startTest(t, Config{})
	addr := e.Addr().String()
	writer := hubtest.ConnectMQTT(t, addr, "retainer")
	reader := hubtest.ConnectMQTT(t, addr, "scanner")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			writer.Publish(fmt.Sprintf("r/%d/v", i%40), 0, true, []byte("1")).WaitTimeout(time.Second)
		}
	}()
	for i := range 60 {
		filter := []string{"r/#", "r/+/v", "+/+/v"}[i%3]
		if tok := reader.Subscribe(filter, 0, nil); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		reader.Unsubscribe(filter).WaitTimeout(hubtest.Timeout)
		cancel, err := e.Subscribe("r/#", func(bridge.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		_ = e.Publish(t.Context(), bridge.Message{Topic: "r/hub", Payload: []byte("1"), Retain: true})
	}
	<-done
}

// TestCloseWhileClientsLeave: clients coming and going while the broker
// closes must not hang Close. mochi's own listener shutdown deadlocks when
// a client leaves at the wrong moment (mochi-mqtt/server#488); the hub's
// listeners disconnect their clients another way.
func TestCloseWhileClientsLeave(t *testing.T) {
	connect := func() []byte {
		var buf bytes.Buffer
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: 4,
			Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60},
		}
		if err := pk.ConnectEncode(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	const rounds, churners = 60, 32
	var closes time.Duration
	for round := range rounds {
		e, err := Start(Config{Addr: "127.0.0.1:0", CloseTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		e.Open()
		addr := e.Addr().String()
		stop := make(chan struct{})
		var churned atomic.Int64
		var wg sync.WaitGroup
		for range churners {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						return // the listener is closed
					}
					_ = conn.SetDeadline(time.Now().Add(hubtest.Timeout))
					if _, err := conn.Write(connect); err == nil {
						_, _ = conn.Read(make([]byte, 4)) // the CONNACK, or the end
					}
					_ = conn.Close()
					churned.Add(1)
				}
			})
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return churned.Load() >= 20 }, "clients did not come and go")

		closed := make(chan error, 1)
		start := time.Now()
		go func() { closed <- e.Close(context.Background()) }()
		select {
		case <-closed:
			closes += time.Since(start)
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close still running after 10 s while clients came and went", round)
		}
		close(stop)
		wg.Wait()
	}
	t.Logf("%d rounds, Close took %v on average", rounds, (closes / rounds).Round(time.Microsecond))
}

// mqttConn is a bare MQTT 3.1.1 client for what paho hides: choosing packet
// identifiers, and leaving messages unacknowledged.
type mqttConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialMQTTConn(t testing.TB, addr, id string) *mqttConn {
	c, connack := dialMQTTConnWith(t, addr, packets.ConnectParams{Clean: true, ClientIdentifier: id})
	if connack.ReasonCode != 0 {
		t.Fatalf("CONNECT refused with %#x", connack.ReasonCode)
	}
	return c
}

// dialMQTTConnWith connects with connect's parameters (a keep alive of 60 s
// unless it says otherwise) and returns the CONNACK.
func dialMQTTConnWith(t testing.TB, addr string, connect packets.ConnectParams) (*mqttConn, packets.Packet) {
	c := &mqttConn{t: t, conn: rawClient(t, addr, "")}
	c.r = bufio.NewReader(c.conn)
	connect.ProtocolName = []byte("MQTT")
	connect.UsernameFlag, connect.PasswordFlag = len(connect.Username) > 0, len(connect.Password) > 0
	if connect.Keepalive == 0 {
		connect.Keepalive = 60
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: connect})
	connack := c.read()
	if connack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d, want a CONNACK", connack.FixedHeader.Type)
	}
	return c, connack
}

func (c *mqttConn) send(pk packets.Packet) {
	c.t.Helper()
	var buf bytes.Buffer
	pk.ProtocolVersion = 4
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		pk.FixedHeader.Qos = 1
		err = pk.UnsubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err == nil {
		_, err = c.conn.Write(buf.Bytes())
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet, decoded when it is one the tests look into.
func (c *mqttConn) read() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	header, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := binary.ReadUvarint(c.r) // MQTT's remaining length is this varint
	if err != nil {
		c.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(header); err != nil {
		c.t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// brief names a packet's type, identifier and reason codes.
func brief(pk packets.Packet) string {
	return fmt.Sprintf("%s id %d codes %v", packets.PacketNames[pk.FixedHeader.Type], pk.PacketID, pk.ReasonCodes)
}

// TestPacketIdentifierSpacesAreSeparate: a client's SUBSCRIBE or
// UNSUBSCRIBE may reuse an identifier the broker has in flight to it (the
// two sides number their packets independently); both must work, and the
// broker's messages must still complete.
func TestPacketIdentifierSpacesAreSeparate(t *testing.T) {
	e := startTest(t, Config{})
	c := dialMQTTConn(t, e.Addr().String(), "independent")
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "t", Qos: 1}}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Suback || pk.ReasonCodes[0] != 1 {
		t.Fatalf("subscribing to t: %s", brief(pk))
	}
	var inflight []uint16 // the broker's, left unacknowledged
	for i := range 3 {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "t", QoS: 1, Payload: []byte{byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
		pk := c.read()
		if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 1 {
			t.Fatalf("got %s QoS %d, want a QoS 1 PUBLISH", brief(pk), pk.FixedHeader.Qos)
		}
		inflight = append(inflight, pk.PacketID)
	}

	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: inflight[0],
		Filters: packets.Subscriptions{{Filter: "u", Qos: 1}}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Suback || pk.PacketID != inflight[0] || pk.ReasonCodes[0] != 1 {
		t.Fatalf("SUBSCRIBE with the identifier of a message in flight to the client: %s, want a SUBACK granting QoS 1", brief(pk))
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: inflight[1],
		Filters: packets.Subscriptions{{Filter: "t"}}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Unsuback || pk.PacketID != inflight[1] {
		t.Fatalf("UNSUBSCRIBE: %s, want an UNSUBACK", brief(pk))
	}
	for _, topic := range []string{"t", "u"} {
		if err := e.Publish(t.Context(), bridge.Message{Topic: topic, QoS: 1, Payload: []byte(topic)}); err != nil {
			t.Fatal(err)
		}
	}
	if pk := c.read(); pk.FixedHeader.Type != packets.Publish || pk.TopicName != "u" {
		t.Fatalf("after unsubscribing t and subscribing u, got %q first", pk.TopicName)
	} else {
		inflight = append(inflight, pk.PacketID)
	}

	cl, ok := e.server.Clients.Get("independent")
	if !ok {
		t.Fatal("the client is gone")
	}
	if n := cl.State.Inflight.Len(); n != len(inflight) {
		t.Fatalf("%d messages in flight, want %d: the broker lost track of its own", n, len(inflight))
	}
	for _, id := range inflight {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return cl.State.Inflight.Len() == 0 },
		"the broker's messages are still in flight after their PUBACKs")
}
