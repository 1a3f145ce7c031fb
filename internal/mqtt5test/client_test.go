package mqtt5test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeServer is the server side of one connection, played by the test
// with bytes.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dialFake connects a Client to a listener of the test and returns both
// ends; the CONNECT is sent and read, and connack (if not "") written.
func dialFake(t *testing.T, cp *Connect, opts Options, connack string) (*Client, *fakeServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := Dial(t, ln.Addr().String(), opts)
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s := &fakeServer{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.Send(cp)
	s.expect(hexOf(MustEncode(cp)))
	if connack != "" {
		s.write(connack)
	}
	return c, s
}

func hexOf(b []byte) string { return fmt.Sprintf("% X", b) }

func (s *fakeServer) write(hex string) {
	s.t.Helper()
	if _, err := s.conn.Write(unhex(s.t, hex)); err != nil {
		s.t.Fatal(err)
	}
}

// expect reads the client's next packet and compares it with want.
func (s *fakeServer) expect(want string) {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(Timeout))
	got, err := ReadPacket(s.r, 0)
	if err != nil {
		s.t.Fatalf("server expected %s: %v", want, err)
	}
	if !bytes.Equal(got, unhex(s.t, want)) {
		s.t.Fatalf("server got % X, want %s", got, want)
	}
}

// TestClientAcknowledgesByDefault: PUBACK for QoS 1, PUBREC then PUBCOMP
// for QoS 2, and the PUBREL is answered, not queued.
func TestClientAcknowledgesByDefault(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a"}, Options{}, "20 03 00 00 00")
	c.ExpectConnack()
	s.write("32 06 00 01 74 00 05 00") // QoS 1, id 5
	s.expect("40 02 00 05")
	s.write("34 06 00 01 74 00 06 00") // QoS 2, id 6
	s.expect("50 02 00 06")
	s.write("62 02 00 06")
	s.expect("70 02 00 06")
	s.write("D0 00")
	if p := c.ExpectPublish(); p.QoS != 1 || p.PacketID != 5 {
		t.Fatalf("first: %s", Describe(p))
	}
	if p := c.ExpectPublish(); p.QoS != 2 || p.PacketID != 6 {
		t.Fatalf("second: %s", Describe(p))
	}
	if p := c.Expect(); p.Type() != PINGRESP {
		t.Fatalf("after the PUBREL: %s, want the PINGRESP", Describe(p))
	}
	if n := c.Inflight(); n != 0 {
		t.Fatalf("%d in flight after every ack", n)
	}
}

// TestClientManualAcks: nothing is acknowledged until the test does, and
// an acknowledgement lets the server send the next message within the
// Receive Maximum.
func TestClientManualAcks(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a", Properties: Properties{ReceiveMaximum: Ptr[uint16](1)}},
		Options{ManualAcks: true}, "20 03 00 00 00")
	c.ExpectConnack()
	s.write("32 06 00 01 74 00 01 00")
	p := c.ExpectPublish()
	if c.Inflight() != 1 {
		t.Fatalf("in flight: %d, want 1", c.Inflight())
	}
	c.Ack(p)
	s.expect("40 02 00 01")
	s.write("34 06 00 01 74 00 02 00")
	q := c.ExpectPublish()
	c.Ack(q)
	s.expect("50 02 00 02")
	s.write("62 02 00 02")
	rel := c.ExpectAck(PUBREL, 2)
	c.Complete(rel)
	s.expect("70 02 00 02")
	if c.Inflight() != 0 {
		t.Fatalf("in flight: %d, want 0", c.Inflight())
	}
}

// TestClientResolvesTopicAliases: an alias set with a topic stands for it
// afterwards.
func TestClientResolvesTopicAliases(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a", Properties: Properties{TopicAliasMaximum: Ptr[uint16](2)}},
		Options{}, "20 03 00 00 00")
	c.ExpectConnack()
	s.write("30 0A 00 03 61 2F 62 03 23 00 02 31") // "a/b", alias 2, payload "1"
	s.write("30 07 00 00 03 23 00 02 32")          // "", alias 2, payload "2"
	for _, want := range []string{"1", "2"} {
		p := c.ExpectPublish()
		if p.Topic != "a/b" || string(p.Payload) != want {
			t.Fatalf("got %s, want a/b %s", Describe(p), want)
		}
	}
}

// TestClientCatchesViolations: each server breaks one rule of the session,
// and the client's stream ends with a Violation that says which.
func TestClientCatchesViolations(t *testing.T) {
	for _, c := range []struct {
		name    string
		connect Connect
		opts    Options
		send    []Packet // sent by the client after the CONNACK
		server  string   // what the server sends after the CONNACK
		want    string
	}{
		{"a packet before the CONNACK", Connect{ClientID: "a"}, Options{}, nil, "!D0 00", "before the CONNACK"},
		{"a second CONNACK", Connect{ClientID: "a"}, Options{}, nil, "20 03 00 00 00", "second CONNACK"},
		{"an alias without a Topic Alias Maximum", Connect{ClientID: "a"}, Options{}, nil,
			"30 08 00 01 74 03 23 00 01 31", "above the client's Topic Alias Maximum of 0"},
		{"an alias never set", Connect{ClientID: "a", Properties: Properties{TopicAliasMaximum: Ptr[uint16](5)}}, Options{}, nil,
			"30 06 00 00 03 23 00 01", "Topic Alias 1 used before it was set"},
		{"a packet above the Maximum Packet Size", Connect{ClientID: "a", Properties: Properties{MaximumPacketSize: Ptr[uint32](16)}}, Options{}, nil,
			"30 0F 00 01 74 00" + strings.Repeat(" 78", 11), "Maximum Packet Size of 16"},
		{"more in flight than the Receive Maximum", Connect{ClientID: "a", Properties: Properties{ReceiveMaximum: Ptr[uint16](2)}},
			Options{ManualAcks: true}, nil, "32 06 00 01 74 00 01 00 32 06 00 01 74 00 02 00 32 06 00 01 74 00 03 00", "Receive Maximum of 2"},
		{"a resend on the same connection", Connect{ClientID: "a"}, Options{ManualAcks: true}, nil,
			"32 06 00 01 74 00 01 00 3A 06 00 01 74 00 01 00", "while the one before with it is unacknowledged"},
		{"a SUBACK for no SUBSCRIBE", Connect{ClientID: "a"}, Options{}, nil, "90 04 00 07 00 00", "SUBACK 7 answers no SUBSCRIBE"},
		{"a SUBACK with a code too few", Connect{ClientID: "a"}, Options{},
			[]Packet{&Subscribe{PacketID: 3, Subscriptions: []Subscription{{Filter: "a"}, {Filter: "b"}}}},
			"90 04 00 03 00 00", "1 reason codes for 2 topic filters"},
		{"a PUBACK granting QoS 1", Connect{ClientID: "a"}, Options{}, []Packet{&Publish{Topic: "t", QoS: 1}},
			"40 03 00 01 01", "not allowed in a server's PUBACK"},
	} {
		t.Run(c.name, func(t *testing.T) {
			connack := "20 03 00 00 00"
			server := c.server
			if rest, early := strings.CutPrefix(server, "!"); early {
				connack, server = rest, ""
			}
			cl, s := dialFake(t, &c.connect, c.opts, connack)
			for _, p := range c.send {
				cl.Send(p)
			}
			if server != "" {
				s.write(server)
			}
			var err error
			for err == nil {
				_, err = cl.Next(Timeout)
			}
			var v *Violation
			if !errors.As(err, &v) || !strings.Contains(v.Error(), c.want) {
				t.Fatalf("got %v, want a Violation saying %q", err, c.want)
			}
		})
	}
}

// TestClientSeesHowTheConnectionEnds: a DISCONNECT then a clean close.
func TestClientSeesHowTheConnectionEnds(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a"}, Options{}, "20 03 00 00 00")
	c.ExpectConnack()
	s.write("E0 01 8E")
	_ = s.conn.Close()
	if d := c.ExpectDisconnect(); d.Reason != SessionTakenOver {
		t.Fatalf("got %s", Describe(d))
	}
	if err := c.ExpectClosed(); err != io.EOF {
		t.Fatalf("closed with %v, want EOF", err)
	}
}

// TestClientDisconnectWaitsForTheServer: Disconnect returns once the
// server, having read the DISCONNECT, has closed its side.
func TestClientDisconnectWaitsForTheServer(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a"}, Options{}, "20 03 00 00 00")
	c.ExpectConnack()
	served := make(chan error, 1)
	go func() { // the server's side; the test waits for it below
		_ = s.conn.SetReadDeadline(time.Now().Add(Timeout))
		got, err := ReadPacket(s.r, 0)
		if err == nil && !bytes.Equal(got, []byte{0xE0, 0}) {
			err = errors.New("not a DISCONNECT: " + hexOf(got))
		}
		if err == nil {
			_, err = s.r.ReadByte() // the client's half-close
			if err == io.EOF {
				err = nil
			}
		}
		_ = s.conn.Close()
		served <- err
	}()
	if err := c.Disconnect(&Disconnect{}); err != io.EOF {
		t.Errorf("Disconnect: %v, want EOF", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestClientPauseReading: a paused client reads at most the packet it was
// waiting for, and the rest once resumed.
func TestClientPauseReading(t *testing.T) {
	c, s := dialFake(t, &Connect{ClientID: "a"}, Options{}, "20 03 00 00 00")
	c.ExpectConnack()
	c.PauseReading()
	s.write("D0 00 D0 00 D0 00")
	got := 0
	// Paused, nothing more comes: the bounded wait is the check, as there is
	// nothing to wait for.
	for {
		if _, err := c.Next(300 * time.Millisecond); err != nil {
			break
		}
		got++
	}
	if got > 1 {
		t.Fatalf("%d packets read while paused", got)
	}
	c.ResumeReading()
	for ; got < 3; got++ {
		if p := c.Expect(); p.Type() != PINGRESP {
			t.Fatalf("got %s", Describe(p))
		}
	}
}
