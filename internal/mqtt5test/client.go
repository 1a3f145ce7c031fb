package mqtt5test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// Timeout is how long the Expect methods wait for a packet that should come
// at once: generous, for a loaded machine running with the race detector.
const Timeout = 10 * time.Second

// ErrTimeout is returned by Next when no packet came in time.
var ErrTimeout = errors.New("no packet in time")

// Violation is a packet, or a sequence of packets, from the server that
// breaks the specification. It ends the client's stream.
type Violation struct {
	Msg string
	Raw []byte // the offending packet's bytes, when there is one
}

func (e *Violation) Error() string {
	if len(e.Raw) == 0 {
		return "server broke the MQTT 5 specification: " + e.Msg
	}
	return fmt.Sprintf("server broke the MQTT 5 specification: %s (bytes % x)", e.Msg, truncate(e.Raw, 64))
}

// ClosedError is the end of the connection: Err is io.EOF when the server
// closed it cleanly (FIN), or the read error (a reset, say), or
// net.ErrClosed when the client closed it.
type ClosedError struct{ Err error }

func (e *ClosedError) Error() string { return fmt.Sprintf("connection closed: %v", e.Err) }
func (e *ClosedError) Unwrap() error { return e.Err }

// Options tune a Client. The zero value is the usual test client.
type Options struct {
	// ManualAcks leaves every acknowledgement of the server's PUBLISHes to
	// the test (Ack, Complete, or Send). By default the client sends PUBACK
	// for QoS 1, PUBREC for QoS 2, and PUBCOMP for each PUBREL (which it
	// then does not queue), as soon as it reads them.
	ManualAcks bool
}

// Client is a connection to an MQTT 5 server. The Expect, Await, Publish,
// Subscribe and Sync methods fail the test on error and must be called from
// the test's goroutine; Next returns errors instead. Packets are read by a
// goroutine of the client into an unbounded queue, so a test reads them at
// its own pace; only one goroutine should consume them.
type Client struct {
	t     testing.TB
	conn  net.Conn
	opts  Options
	nonce string // tells this client's Sync topic from others'

	wmu sync.Mutex // serialises writes: the test's and the automatic acks

	mu     sync.Mutex
	queue  []Packet
	err    error // why the stream ended; set once
	notify chan struct{}
	done   chan struct{} // closed when the reader has returned
	paused chan struct{} // while not nil, the reader waits for it to close
	closed chan struct{} // closed by Close

	// The session's state, for the checks of the package documentation.
	connect       *Connect
	connacked     bool
	inflight      map[uint16]bool // the server's QoS 1 and 2 PUBLISHes not yet acknowledged
	aliases       map[uint16]string
	pendingSubs   map[uint16]int // SUBSCRIBE id -> number of filters
	pendingUnsubs map[uint16]int
	nextID        uint16
	syncs         int
	syncReady     bool

	closeOnce sync.Once
}

// Dial opens a TCP connection to addr and starts reading; nothing is sent.
// The connection is closed when the test ends.
func Dial(t testing.TB, addr string, opts Options) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	c := &Client{
		t: t, conn: conn, opts: opts, nonce: hex.EncodeToString(nonce),
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
		inflight: map[uint16]bool{}, aliases: map[uint16]string{},
		pendingSubs: map[uint16]int{}, pendingUnsubs: map[uint16]int{},
	}
	go c.readLoop()
	t.Cleanup(c.Close)
	return c
}

// Open dials addr, sends cp and expects a CONNACK with reason Success.
func Open(t testing.TB, addr string, cp *Connect, opts Options) (*Client, *Connack) {
	t.Helper()
	c := Dial(t, addr, opts)
	c.Send(cp)
	ack := c.ExpectConnack()
	if ack.Reason != Success {
		t.Fatalf("CONNECT of %q refused: %s", cp.ClientID, Describe(ack))
	}
	return c, ack
}

// Close closes the connection at once, without DISCONNECT (for the server,
// an abnormal end: it sends the Will), and waits for the reader goroutine.
// Calling it again does nothing.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.conn.Close()
	})
	<-c.done
}

// PauseReading stops the client reading from the connection, after the
// packet it may be reading, until ResumeReading: a slow client. What the
// server sends meanwhile fills the sockets' buffers, then waits in the
// server (or is lost there).
func (c *Client) PauseReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused == nil {
		c.paused = make(chan struct{})
	}
}

// ResumeReading ends PauseReading.
func (c *Client) ResumeReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused != nil {
		close(c.paused)
		c.paused = nil
	}
}

// Disconnect sends d, half-closes the connection and waits for the server
// to close its side, so that the server has read the DISCONNECT before the
// connection ends (closing at once could reset it with d unread). It
// returns how the connection ended (see ClosedError); packets the server
// sent meanwhile are dropped.
func (c *Client) Disconnect(d *Disconnect) error {
	c.t.Helper()
	c.Send(d)
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	deadline := time.Now().Add(Timeout)
	for {
		_, err := c.Next(time.Until(deadline))
		if err == nil {
			continue
		}
		c.Close()
		var closed *ClosedError
		if errors.As(err, &closed) {
			return closed.Err
		}
		c.t.Fatalf("after DISCONNECT: %v", err)
		return err
	}
}

// Send encodes p and writes it. A PUBLISH of QoS 1 or 2, a SUBSCRIBE or an
// UNSUBSCRIBE with PacketID 0 gets the next free identifier, written into p.
func (c *Client) Send(p Packet) {
	c.t.Helper()
	if err := c.send(p); err != nil {
		c.t.Fatalf("send %v: %v", p.Type(), err)
	}
}

// SendRaw writes b as it is: a packet the encoder would refuse, or half of one.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	if err := c.write(b); err != nil {
		c.t.Fatalf("send % x: %v", truncate(b, 32), err)
	}
}

func (c *Client) send(p Packet) error {
	c.mu.Lock()
	switch p := p.(type) {
	case *Connect:
		c.connect = p
	case *Publish:
		if p.QoS > 0 && p.PacketID == 0 {
			p.PacketID = c.newID()
		}
	case *Subscribe:
		if p.PacketID == 0 {
			p.PacketID = c.newID()
		}
		c.pendingSubs[p.PacketID] = len(p.Subscriptions)
	case *Unsubscribe:
		if p.PacketID == 0 {
			p.PacketID = c.newID()
		}
		c.pendingUnsubs[p.PacketID] = len(p.Filters)
	case *Ack:
		// The server may send the next message as soon as it reads this:
		// the count goes down before the write.
		if p.Kind == PUBACK || p.Kind == PUBCOMP || (p.Kind == PUBREC && p.Reason >= 0x80) {
			delete(c.inflight, p.PacketID)
		}
	}
	c.mu.Unlock()
	b, err := Encode(p)
	if err != nil {
		return err
	}
	return c.write(b)
}

func (c *Client) newID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

func (c *Client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	_, err := c.conn.Write(b)
	return err
}

func (c *Client) readLoop() {
	defer close(c.done)
	br := bufio.NewReader(c.conn)
	for {
		c.mu.Lock()
		paused := c.paused
		c.mu.Unlock()
		if paused != nil {
			select {
			case <-paused:
			case <-c.closed:
				c.finish(&ClosedError{Err: net.ErrClosed})
				return
			}
		}
		c.mu.Lock()
		maxSize := 0
		if c.connect != nil && c.connect.Properties.MaximumPacketSize != nil {
			maxSize = int(*c.connect.Properties.MaximumPacketSize)
		}
		c.mu.Unlock()
		raw, err := ReadPacket(br, maxSize)
		now := time.Now()
		if err != nil {
			var tooLarge *TooLargeError
			if errors.As(err, &tooLarge) || errors.Is(err, ErrMalformed) {
				c.finish(&Violation{Msg: err.Error()}) // the message has the bytes
			} else {
				c.finish(&ClosedError{Err: err})
			}
			return
		}
		p, err := Decode(raw)
		if err != nil {
			c.finish(&Violation{Msg: err.Error()})
			return
		}
		p.meta().Received = now
		if err := c.check(p); err != nil {
			c.finish(err)
			return
		}
		if !c.opts.ManualAcks {
			ack, keep := autoAck(p)
			if ack != nil {
				if err := c.send(ack); err != nil {
					c.finish(&ClosedError{Err: err})
					return
				}
			}
			if !keep {
				continue
			}
		}
		c.mu.Lock()
		c.queue = append(c.queue, p)
		c.mu.Unlock()
		c.wake()
	}
}

// autoAck is the acknowledgement the client sends by itself for p, if any,
// and whether p is queued for the test: a PUBREL, answered, is not.
func autoAck(p Packet) (ack *Ack, keep bool) {
	switch p := p.(type) {
	case *Publish:
		switch p.QoS {
		case 1:
			return &Ack{Kind: PUBACK, PacketID: p.PacketID}, true
		case 2:
			return &Ack{Kind: PUBREC, PacketID: p.PacketID}, true
		}
	case *Ack:
		if p.Kind == PUBREL {
			return &Ack{Kind: PUBCOMP, PacketID: p.PacketID}, false
		}
	}
	return nil, true
}

func (c *Client) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// finish ends the stream with err, unless it has already ended.
func (c *Client) finish(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.wake()
}

// check applies the rules that need the session's state, and resolves topic aliases.
func (c *Client) check(p Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	violation := func(format string, args ...any) error {
		return &Violation{Msg: fmt.Sprintf(format, args...), Raw: p.meta().Raw}
	}
	if !c.connacked {
		switch p.Type() {
		case CONNACK:
			c.connacked = true
			return nil
		case AUTH:
			return nil
		}
		return violation("a %v before the CONNACK", p.Type()) // [MQTT-3.2.0-1]
	}
	var props *Properties
	if c.connect != nil {
		props = &c.connect.Properties
	} else {
		props = &Properties{}
	}
	switch p := p.(type) {
	case *Connack:
		return violation("a second CONNACK")
	case *Publish:
		if a := p.Properties.TopicAlias; a != nil {
			limit := uint16(0)
			if props.TopicAliasMaximum != nil {
				limit = *props.TopicAliasMaximum
			}
			if *a > limit {
				return violation("Topic Alias %d, above the client's Topic Alias Maximum of %d", *a, limit) // [MQTT-3.3.2-9]
			}
			if p.Topic != "" {
				c.aliases[*a] = p.Topic
			} else if topic, ok := c.aliases[*a]; ok {
				p.Topic = topic
			} else {
				return violation("Topic Alias %d used before it was set", *a) // section 3.3.2.3.4
			}
		}
		if p.QoS > 0 {
			if c.inflight[p.PacketID] {
				// A server resends only when a session resumes, on a new connection [MQTT-4.4.0-1].
				return violation("PUBLISH with packet identifier %d while the one before with it is unacknowledged (dup=%v)", p.PacketID, p.Dup)
			}
			c.inflight[p.PacketID] = true
			limit := 65535
			if props.ReceiveMaximum != nil {
				limit = int(*props.ReceiveMaximum)
			}
			if len(c.inflight) > limit {
				return violation("%d unacknowledged QoS 1 and 2 PUBLISHes, above the client's Receive Maximum of %d", len(c.inflight), limit) // [MQTT-3.3.4-9]
			}
		}
	case *Suback:
		n, ok := c.pendingSubs[p.PacketID]
		if !ok {
			return violation("SUBACK %d answers no SUBSCRIBE", p.PacketID)
		}
		delete(c.pendingSubs, p.PacketID)
		if len(p.Reasons) != n {
			return violation("SUBACK with %d reason codes for %d topic filters", len(p.Reasons), n) // [MQTT-3.8.4-6]
		}
	case *Unsuback:
		n, ok := c.pendingUnsubs[p.PacketID]
		if !ok {
			return violation("UNSUBACK %d answers no UNSUBSCRIBE", p.PacketID)
		}
		delete(c.pendingUnsubs, p.PacketID)
		if len(p.Reasons) != n {
			return violation("UNSUBACK with %d reason codes for %d topic filters", len(p.Reasons), n) // [MQTT-3.10.4-5]
		}
	}
	return nil
}

// Next returns the next packet from the server, waiting up to timeout. Its
// errors: ErrTimeout, a *ClosedError once every packet read before the end
// has been returned, or a *Violation.
func (c *Client) Next(timeout time.Duration) (Packet, error) {
	return c.await(timeout, func(Packet) bool { return true })
}

// await returns the first packet, queued or to come, that match accepts;
// the others stay queued in order.
func (c *Client) await(timeout time.Duration, match func(Packet) bool) (Packet, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for i, p := range c.queue {
			if match(p) {
				c.queue = slices.Delete(c.queue, i, i+1)
				c.mu.Unlock()
				return p, nil
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-c.notify:
		case <-timer.C:
			return nil, ErrTimeout
		}
	}
}

// Expect returns the next packet, failing the test when none comes within
// Timeout or the stream ended.
func (c *Client) Expect() Packet {
	c.t.Helper()
	p, err := c.Next(Timeout)
	if err != nil {
		c.t.Fatalf("expected a packet: %v", err)
	}
	return p
}

// Await returns the first packet that match accepts, leaving the others
// queued, failing the test when none comes within Timeout.
func (c *Client) Await(what string, match func(Packet) bool) Packet {
	c.t.Helper()
	p, err := c.await(Timeout, match)
	if err != nil {
		c.t.Fatalf("expected %s: %v%s", what, err, c.queued())
	}
	return p
}

// queued describes what is queued, for failure messages.
func (c *Client) queued() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return ""
	}
	s := "; queued instead:"
	for _, p := range c.queue {
		s += "\n\t" + Describe(p)
	}
	return s
}

func expectType[T Packet](c *Client) T {
	c.t.Helper()
	p := c.Expect()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("expected a %T, got %s", zero, Describe(p))
	}
	return v
}

// ExpectConnack expects the next packet to be a CONNACK.
func (c *Client) ExpectConnack() *Connack { c.t.Helper(); return expectType[*Connack](c) }

// ExpectPublish expects the next packet to be a PUBLISH.
func (c *Client) ExpectPublish() *Publish { c.t.Helper(); return expectType[*Publish](c) }

// ExpectSuback expects the next packet to be a SUBACK.
func (c *Client) ExpectSuback() *Suback { c.t.Helper(); return expectType[*Suback](c) }

// ExpectDisconnect expects the next packet to be a DISCONNECT.
func (c *Client) ExpectDisconnect() *Disconnect { c.t.Helper(); return expectType[*Disconnect](c) }

// ExpectAck expects the next packet to be a PUBACK, PUBREC, PUBREL or
// PUBCOMP (kind) for packet identifier id.
func (c *Client) ExpectAck(kind Type, id uint16) *Ack {
	c.t.Helper()
	a := expectType[*Ack](c)
	if a.Kind != kind || a.PacketID != id {
		c.t.Fatalf("expected %v %d, got %s", kind, id, Describe(a))
	}
	return a
}

// AwaitAck returns the PUBACK, PUBREC, PUBREL or PUBCOMP (kind) for packet
// identifier id, leaving other packets queued.
func (c *Client) AwaitAck(kind Type, id uint16) *Ack {
	c.t.Helper()
	return c.Await(fmt.Sprintf("%v %d", kind, id), func(p Packet) bool {
		a, ok := p.(*Ack)
		return ok && a.Kind == kind && a.PacketID == id
	}).(*Ack)
}

// AwaitPublish returns the first PUBLISH on topic, leaving other packets queued.
func (c *Client) AwaitPublish(topic string) *Publish {
	c.t.Helper()
	return c.Await("a PUBLISH on "+topic, func(p Packet) bool {
		m, ok := p.(*Publish)
		return ok && m.Topic == topic
	}).(*Publish)
}

// ExpectClosed expects the server to close the connection, with no packet
// before, and returns how it ended: io.EOF for a clean close, or the read
// error (a reset).
func (c *Client) ExpectClosed() error {
	c.t.Helper()
	p, err := c.Next(Timeout)
	if p != nil {
		c.t.Fatalf("expected the connection to close, got %s", Describe(p))
	}
	var closed *ClosedError
	if !errors.As(err, &closed) {
		c.t.Fatalf("expected the connection to close: %v", err)
	}
	return closed.Err
}

// Publish sends p and completes its exchange: nothing more for QoS 0; the
// PUBACK for QoS 1; the PUBREC, then PUBREL and the PUBCOMP for QoS 2 (the
// PUBREL only when the PUBREC is not an error). It returns the server's
// acknowledgements, for the test to judge; other packets stay queued.
func (c *Client) Publish(p *Publish) []*Ack {
	c.t.Helper()
	c.Send(p)
	switch p.QoS {
	case 1:
		return []*Ack{c.AwaitAck(PUBACK, p.PacketID)}
	case 2:
		rec := c.AwaitAck(PUBREC, p.PacketID)
		if rec.Reason >= 0x80 {
			return []*Ack{rec}
		}
		c.Send(&Ack{Kind: PUBREL, PacketID: p.PacketID})
		return []*Ack{rec, c.AwaitAck(PUBCOMP, p.PacketID)}
	}
	return nil
}

// Subscribe subscribes with subs (and props, if given) and returns the
// SUBACK, failing the test when a filter is refused.
func (c *Client) Subscribe(props *Properties, subs ...Subscription) *Suback {
	c.t.Helper()
	p := &Subscribe{Subscriptions: subs}
	if props != nil {
		p.Properties = *props
	}
	c.Send(p)
	ack := c.Await(fmt.Sprintf("SUBACK %d", p.PacketID), func(q Packet) bool {
		s, ok := q.(*Suback)
		return ok && s.PacketID == p.PacketID
	}).(*Suback)
	for i, r := range ack.Reasons {
		if r >= 0x80 {
			c.t.Fatalf("SUBSCRIBE %q refused: %s", subs[i].Filter, Describe(ack))
		}
	}
	return ack
}

// Unsubscribe unsubscribes from filters and returns the UNSUBACK.
func (c *Client) Unsubscribe(filters ...string) *Unsuback {
	c.t.Helper()
	p := &Unsubscribe{Filters: filters}
	c.Send(p)
	return c.Await(fmt.Sprintf("UNSUBACK %d", p.PacketID), func(q Packet) bool {
		s, ok := q.(*Unsuback)
		return ok && s.PacketID == p.PacketID
	}).(*Unsuback)
}

// Ack acknowledges the server's PUBLISH p: PUBACK for QoS 1, PUBREC for
// QoS 2 (then Complete answers the PUBREL). For Options.ManualAcks.
func (c *Client) Ack(p *Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.Send(&Ack{Kind: PUBACK, PacketID: p.PacketID})
	case 2:
		c.Send(&Ack{Kind: PUBREC, PacketID: p.PacketID})
	}
}

// Complete answers the server's PUBREL rel with PUBCOMP. For Options.ManualAcks.
func (c *Client) Complete(rel *Ack) {
	c.t.Helper()
	c.Send(&Ack{Kind: PUBCOMP, PacketID: rel.PacketID})
}

// Sync makes sure the server has processed everything this client sent
// before, and sent everything that ordering puts before a message published
// now: it publishes a QoS 0 marker to a topic of this client's own (which
// it subscribes to the first time) and reads until the marker comes back.
// It returns the packets read before the marker. "Nothing arrived" checks
// use it instead of waiting: a broker delivers one client's messages to
// another in order, so a message due before the marker comes before it.
func (c *Client) Sync() []Packet {
	c.t.Helper()
	topic := "mqtt5test/sync/" + c.nonce
	if !c.syncReady {
		c.Subscribe(nil, Subscription{Filter: topic})
		c.syncReady = true
	}
	c.syncs++
	marker := fmt.Sprintf("sync %d", c.syncs)
	c.Send(&Publish{Topic: topic, Payload: []byte(marker)})
	var before []Packet
	for {
		p := c.Expect()
		if m, ok := p.(*Publish); ok && m.Topic == topic && string(m.Payload) == marker {
			return before
		}
		before = append(before, p)
	}
}

// Inflight is how many of the server's QoS 1 and 2 PUBLISHes are
// unacknowledged.
func (c *Client) Inflight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight)
}
