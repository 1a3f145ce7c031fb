package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
	m5 "github.com/motehub/motehub/internal/mqtt5test"
)

// The MQTT 5 conformance suite (issue 13): what a real v5 client (MQTT.js,
// paho v5, Home Assistant) relies on, checked on the wire with a client of
// our own (internal/mqtt5test, which shares no code with mochi), against
// the embedded broker and against Debian's Mosquitto. Each case runs once
// per broker, each run on a broker of its own, in parallel. Where the two
// may differ (the value of a maximum), a case asserts per broker and says
// why; where a case cannot run on one, it skips that broker with the reason.
//
// The files: conformance_test.go (the brokers, CONNECT and CONNACK),
// conformance_pubsub_test.go (publish, subscribe, retained, properties,
// flow control, sizes), conformance_session_test.go (sessions, the Will,
// keep alive).

// broker5 is one MQTT broker a conformance case runs against.
type broker5 struct {
	name string
	addr string
	// maxPacketSize is the Maximum Packet Size it was started with.
	maxPacketSize uint32
	mosquitto     bool
	// connections counts the broker's open MQTT connections, when it can
	// be read (Embedded's Stats).
	connections func() int
}

// brokerOpts is how a case wants its broker started.
type brokerOpts struct {
	// maxPacketSize, default conformanceMaxPacket.
	maxPacketSize uint32
}

// conformanceMaxPacket is the Maximum Packet Size every broker is started
// with unless a case asks otherwise: the embedded broker's default.
const conformanceMaxPacket = 1 << 20

var conformanceBrokers = []struct {
	name  string
	start func(t *testing.T, o brokerOpts) *broker5
}{
	{"Embedded", func(t *testing.T, o brokerOpts) *broker5 {
		e := startTest(t, Config{MaxPacketSize: o.maxPacketSize})
		return &broker5{name: "Embedded", addr: e.Addr().String(), maxPacketSize: o.maxPacketSize,
			connections: func() int { return e.Stats().Connections["mqtt"] }}
	}},
	{"Mosquitto", func(t *testing.T, o brokerOpts) *broker5 {
		m := hubtest.StartMosquitto(t, fmt.Sprintf("max_packet_size %d", o.maxPacketSize))
		return &broker5{name: "Mosquitto", addr: m.Addr(), maxPacketSize: o.maxPacketSize, mosquitto: true}
	}},
}

// forEachBroker runs fn as a subtest per broker, in parallel, each with a
// broker of its own.
func forEachBroker(t *testing.T, o brokerOpts, fn func(t *testing.T, b *broker5)) {
	t.Parallel()
	if o.maxPacketSize == 0 {
		o.maxPacketSize = conformanceMaxPacket
	}
	for _, impl := range conformanceBrokers {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			fn(t, impl.start(t, o))
		})
	}
}

// open connects a v5 client with a clean start and the given properties
// (nil: none) and expects its CONNACK to be Success.
func (b *broker5) open(t *testing.T, id string, props *m5.Properties) (*m5.Client, *m5.Connack) {
	t.Helper()
	cp := &m5.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}
	if props != nil {
		cp.Properties = *props
	}
	return m5.Open(t, b.addr, cp, m5.Options{})
}

// client is open, for a caller that does not need the CONNACK.
func (b *broker5) client(t *testing.T, id string) *m5.Client {
	t.Helper()
	c, _ := b.open(t, id, nil)
	return c
}

// awaitClients returns once the broker has dealt with the end of every
// connection but n (the Will, the end of the session): a test that goes on
// then does not race the broker's own goroutines. The embedded broker ends
// a connection on goroutines of its own: its count of connections is
// polled (a connection is untracked once mochi is done with it).
// Mosquitto is one thread that handles events in the order they come (its
// epoll ready list is first come, first served): whatever a test sends
// after a connection ended is handled after that end, so there is nothing
// to wait for.
func (b *broker5) awaitClients(t *testing.T, n int) {
	t.Helper()
	if b.connections == nil {
		return
	}
	deadline := time.Now().Add(m5.Timeout)
	for got := b.connections(); got != n; got = b.connections() {
		if time.Now().After(deadline) {
			t.Fatalf("%d MQTT connections after %v, want %d", got, m5.Timeout, n)
		}
		time.Sleep(5 * time.Millisecond) // polling, as hubtest.Eventually does
	}
}

// expectNoPublish fails when a PUBLISH is among ps (what Sync returned).
func expectNoPublish(t *testing.T, ps []m5.Packet, what string) {
	t.Helper()
	for _, p := range ps {
		if p.Type() == m5.PUBLISH {
			t.Errorf("%s: got %s", what, m5.Describe(p))
		}
	}
}

// expectCleanAck checks an acknowledgement of the broker's: Success, and
// none of the user properties sent (those of the packet it answers)
// copied into it.
func expectCleanAck(t *testing.T, a *m5.Ack, sent []m5.UserProperty) {
	t.Helper()
	if a.Reason != m5.Success {
		t.Errorf("%v reason %v, want 0x00 Success: %s", a.Kind, a.Reason, m5.Describe(a))
	}
	for _, u := range a.Properties.User {
		if slices.Contains(sent, u) {
			t.Errorf("%v carries the user property %q=%q of the packet it answers: %s", a.Kind, u.Key, u.Value, m5.Describe(a))
		}
	}
}

// TestConformanceConnackProperties: the CONNACK of a clean start says what
// the broker supports, and says it right: every optional feature both have
// (QoS 2, retain, wildcards, subscription identifiers, shared
// subscriptions) left at its default "available", the Maximum Packet Size
// it was started with, and a Topic Alias Maximum above 0 (both accept
// aliases: a broker that does without announcing it leaves v5 clients,
// which only use what is announced, without them).
func TestConformanceConnackProperties(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		c, ack := b.open(t, "props", &m5.Properties{
			SessionExpiry:  m5.Ptr[uint32](0),
			ReceiveMaximum: m5.Ptr[uint16](10), MaximumPacketSize: m5.Ptr[uint32](1 << 20),
			User: []m5.UserProperty{{Key: "client", Value: "conformance"}},
		})
		p := ack.Properties
		t.Logf("CONNACK: %s", m5.Describe(ack))
		if ack.SessionPresent {
			t.Error("Session Present on a clean start") // [MQTT-3.2.2-2]
		}
		if p.MaximumQoS != nil {
			t.Errorf("Maximum QoS %d: both brokers support QoS 2", *p.MaximumQoS)
		}
		for name, v := range map[string]*byte{
			"Retain Available": p.RetainAvailable, "Wildcard Subscription Available": p.WildcardSubAvailable,
			"Subscription Identifier Available": p.SubIDAvailable, "Shared Subscription Available": p.SharedSubAvailable,
		} {
			if v != nil && *v != 1 {
				t.Errorf("%s %d: both brokers support it", name, *v)
			}
		}
		if p.MaximumPacketSize == nil {
			// Clients keep to the maximum announced (section 3.2.2.3.6), so
			// they can only keep to one that is.
			t.Errorf("no Maximum Packet Size: the broker refuses packets above %d bytes without saying so", b.maxPacketSize)
		} else if *p.MaximumPacketSize != b.maxPacketSize {
			t.Errorf("Maximum Packet Size %d, want %d (its configured limit)", *p.MaximumPacketSize, b.maxPacketSize)
		}
		if p.TopicAliasMaximum == nil || *p.TopicAliasMaximum == 0 {
			t.Error("no Topic Alias Maximum (0: clients may not use topic aliases), though the broker accepts them")
		}
		if p.AssignedClientID != nil {
			t.Errorf("Assigned Client Identifier %q for a client that has one", *p.AssignedClientID)
		}
		if p.SessionExpiry != nil {
			t.Errorf("Session Expiry Interval %d in answer to 0", *p.SessionExpiry)
		}
		c.Send(&m5.Pingreq{})
		if r := c.Expect(); r.Type() != m5.PINGRESP {
			t.Errorf("PINGREQ answered with %s", m5.Describe(r))
		}
	})
}

// TestConformanceAssignedClientID: a CONNECT with an empty client
// identifier and a clean start gets one, in the CONNACK [MQTT-3.2.2-16].
func TestConformanceAssignedClientID(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		_, ack := b.open(t, "", nil)
		if id := ack.Properties.AssignedClientID; id == nil || *id == "" {
			t.Errorf("no Assigned Client Identifier: %s", m5.Describe(ack))
		}
	})
}

// TestConformanceSessionExpiryCapped: a client asking for a session that
// never expires (0xFFFFFFFF) on a broker with a maximum gets the maximum in
// the CONNACK's Session Expiry Interval (section 3.2.2.3.2). motehub
// bounds everything it keeps (DESIGN.md, "Bounded by design": sessions with
// an expiry), so the embedded broker must answer with a smaller value.
func TestConformanceSessionExpiryCapped(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		if b.mosquitto {
			t.Skip("Mosquitto 2.0 has no maximum session expiry to announce (persistent_client_expiration is not sent to clients)")
		}
		_, ack := b.open(t, "forever", &m5.Properties{SessionExpiry: m5.Ptr[uint32](0xFFFFFFFF)})
		if se := ack.Properties.SessionExpiry; se == nil || *se == 0xFFFFFFFF {
			t.Errorf("a session that never expires was accepted as such: %s", m5.Describe(ack))
		}
	})
}

// rawExchange writes b on a new connection and returns everything the
// broker sends until it closes the connection, and how it closed.
func rawExchange(t *testing.T, addr string, b []byte) ([]byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, m5.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(m5.Timeout))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, err = io.Copy(&got, conn)
	if err == nil {
		err = io.EOF
	}
	return got.Bytes(), err
}

// TestConformanceProtocolLevels: a 3.1.1 CONNECT gets a 3.1.1 CONNACK; a
// CONNECT with protocol level 6, which neither broker knows, gets the
// 3.1.1 CONNACK with return code 0x01 "unacceptable protocol level", and
// the connection closed [MQTT-3.1.2-2 of 3.1.1]. A broker cannot answer a
// level it does not know in that level's form, so it answers in 3.1.1
// form, with no properties and no v5 reason code (0x82 Protocol Error or
// 0x84 Unsupported Protocol Version read as a 3.1.1 return code is
// garbage to the client).
func TestConformanceProtocolLevels(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		// CONNECT "MQTT" level 4, clean session, keep alive 60, client "a".
		got, _ := rawExchange(t, b.addr, []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'a',
			0xE0, 0x00}) // then DISCONNECT, so that the broker closes
		if !bytes.HasPrefix(got, []byte{0x20, 0x02, 0x00, 0x00}) {
			t.Errorf("3.1.1 CONNECT answered with % X, want 20 02 00 00", got)
		}
		// The same with level 6.
		got, err := rawExchange(t, b.addr, []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 1, 'a'})
		if want := []byte{0x20, 0x02, 0x00, 0x01}; !bytes.Equal(got, want) {
			t.Errorf("level 6 CONNECT answered with % X, want % X then the connection closed", got, want)
		}
		if err != io.EOF && !isReset(err) {
			t.Errorf("after the refusal: %v, want the connection closed", err)
		}
	})
}

// isReset reports whether err is the peer resetting the connection.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestConformanceUnsupportedAuthMethod: a CONNECT with an Authentication
// Method the broker does not support is refused (0x8C Bad authentication
// method, or 0x87 Not authorized) and the connection closed
// [MQTT-4.12.0-1]. Neither broker here supports enhanced authentication;
// one that accepts the client anyway lets it believe it was authenticated
// by a method nobody checked.
func TestConformanceUnsupportedAuthMethod(t *testing.T) {
	forEachBroker(t, brokerOpts{}, func(t *testing.T, b *broker5) {
		c := m5.Dial(t, b.addr, m5.Options{})
		c.Send(&m5.Connect{ClientID: "scram", CleanStart: true, Properties: m5.Properties{
			AuthMethod: m5.Ptr("SCRAM-SHA-256"), AuthData: []byte("n,,n=user,r=abc")}})
		p := c.Expect()
		ack, ok := p.(*m5.Connack)
		if !ok {
			t.Fatalf("got %s, want a CONNACK", m5.Describe(p))
		}
		if ack.Reason != m5.BadAuthenticationMethod && ack.Reason != m5.NotAuthorized {
			t.Fatalf("CONNACK %s, want 0x8C Bad authentication method (or 0x87)", m5.Describe(ack))
		}
		c.ExpectClosed()
	})
}
